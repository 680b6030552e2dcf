"""A ZeroMQ channel connector's liveness in Redis (its hand-off alive key and token,
zato.coord.handoff.Handoff.beat), and whether it may run what the hand-off's processing list
holds that is not its own.

Alive: refreshed every handoff.BEAT by a thread of its own from the connector's start to its
exit, not from its main loop. Before, the main loop refreshed it, so a loop that did not come
round for LIVE_TTL (10 s) made a live connector look gone: its stop, waiting for the service's
answers to what it runs, is such a loop, and the channel's next connector then ran those
messages again. A live connector that makes no progress must not look alive for ever either
(it would keep the next one from running a killed one's leftovers): the thread refreshes only
while the main loop came round within `stuck_after` (the supervisor's connector_hang_after,
after which it kills a hung connector anyway), or, once the stop began, within the stop's own
bound (its running calls end within the channel's answer timeout).

Alone: the processing list is the channel's, not one connector's. A connector runs what it
holds that is not its own only while no other connector of the channel is alive (an edit's
old one, or, after a takeover, the old holder's, finishing calls its servers accepted before
the epoch moved). One of an older epoch is waited for at most `older_wait` (the answer timeout
and the stop's drain: it can start no call a server would accept, so whatever it still runs
has ended by then); a connector of the same or a newer epoch is waited for as long as it is
alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zato.common.errors import CoordError
from zato.coord import handoff

logger = logging.getLogger("zato.connector.zmq_channel")


class Alive:
    """The alive key's thread (start, progress, stopping, close) and the verdict (alone)."""

    def __init__(  # noqa: PLR0913 - the hand-off, its label and three bounds
        self,
        lists: handoff.Handoff,
        label: str,
        stuck_after: float,
        stop_bound: float,
        older_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.lists, self.label, self._clock = lists, label, clock
        self.stuck_after, self.stop_bound, self.older_wait = stuck_after, stop_bound, older_wait
        self.others: handoff.Others | None = None  # at the last beat; None: not registered (Redis)
        self._until = clock() + stuck_after  # refreshed until then, unless the main loop comes round
        self._stopping = False
        self._said_stuck = False
        self._failing = False  # the last beat failed (said once until one works)
        self._older_since: float | None = None  # when it first saw one of an older epoch alive
        self._older_said = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alive", daemon=True)

    def start(self) -> None:
        """Registered and alive at once (the first beat), then every BEAT in the thread."""
        self._beat()
        self._thread.start()

    def progress(self) -> None:
        """The main loop came round: alive for stuck_after more."""
        if not self._stopping:
            self._until = self._clock() + self.stuck_after

    def stopping(self) -> None:
        """The stop began: alive through it, within its own bound."""
        self._stopping = True
        self._until = self._clock() + self.stop_bound

    def close(self) -> None:
        """Before leave(): no beat may come after it."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._closed.wait(handoff.BEAT):
            self._beat()

    def _beat(self) -> None:
        if self._clock() > self._until:
            if not self._said_stuck:
                logger.warning(
                    "%s: no progress for %.0f s: no longer says in Redis that it is alive (the channel's"
                    " next connector may run what it took)",
                    self.label,
                    self.stop_bound if self._stopping else self.stuck_after,
                )
                self._said_stuck = True
            self.others = None
            return
        try:
            others = self.lists.beat_counts()
        except CoordError as e:
            if not self._failing:
                logger.warning(
                    "%s: cannot say in Redis that it is alive (tried every %g s): %s",
                    self.label,
                    handoff.BEAT,
                    e,
                )
            self._failing, self.others = True, None
            return
        if self._failing:
            logger.info("%s: alive in Redis again", self.label)
        self._failing, self.others = False, others

    def alone(self) -> bool:
        """May this connector run the processing list's leftovers now (main loop)?"""
        others = self.others
        if others is None or others.newer:
            return False
        if not others.older:
            self._older_since, self._older_said = None, False
            return True
        now = self._clock()
        if self._older_since is None:
            self._older_since = now
            logger.info(
                "%s: %d connectors of the channel of an older epoch (the old holder's) still alive:"
                " waiting up to %.0f s for them before running what the hand-off's processing list holds",
                self.label,
                others.older,
                self.older_wait,
            )
        if now - self._older_since < self.older_wait:
            return False
        if not self._older_said:
            logger.warning(
                "%s: %d connectors of an older epoch still alive after %.0f s: running what the"
                " hand-off's processing list holds all the same",
                self.label,
                others.older,
                self.older_wait,
            )
            self._older_said = True
        return True
