"""The server's fencing check for actions connectors ask of it: an action under epoch e is
refused once a newer epoch exists. Where the newest epoch comes from is injected (the
cluster's Redis in a server, a fake in tests), so the decision is tested without sockets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    newest: int


class EpochGate:
    def __init__(self, newest: Callable[[], int]):
        self._newest = newest  # raises CoordError when it cannot say

    def check(self, epoch: int) -> Verdict:
        newest = self._newest()
        return Verdict(epoch >= newest, newest)
