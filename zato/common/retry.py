"""One way to back off after a failure: start, doubling, capped; reset after a success."""

from __future__ import annotations

from dataclasses import dataclass

START, MAX = 0.5, 10.0  # seconds: the project's one retry/backoff value


@dataclass
class Backoff:
    start: float = START
    cap: float = MAX

    def __post_init__(self) -> None:
        self.delay = self.start

    def next(self) -> float:
        """The delay to wait now; the one after it doubles (up to the cap)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.start
