"""The server's fencing check for actions connectors ask of it: an action under epoch e is
refused once a newer epoch exists. Where the newest epoch comes from is injected (the
cluster's Redis in a server, a fake in tests), so the decision is tested without sockets.

Concurrent checks share reads, and fencing stays as strict as one read per action. An action
may rely only on a read that is sent after the action arrived (a read sent earlier may have
been answered before a takeover the action came after). So checks join the next read, the one
not sent yet. The first to join sends it once the read before it has been answered. Everyone
who joined meanwhile gets its answer. Under a channel's concurrent invocations a worker reads
the epoch once for many actions instead of once for each (a Redis GET took about 29% of a
worker's CPU at prefetch 50); a lone action still reads once, at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from zato.common.errors import CoordUnavailable


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    newest: int


class _Read:
    """One read of the newest epoch, shared by every check that joined it before it was sent."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()  # gevent's own in a worker (monkey-patched)
        self.value = 0
        self.error: BaseException | None = None


class EpochGate:
    def __init__(self, newest: Callable[[], int]):
        self._newest = newest  # raises CoordError when it cannot say
        self._lock = threading.Lock()
        self._next: _Read | None = None  # the read later arrivals join: not sent yet
        self._sent: _Read | None = None  # the read on its way (at most one at a time)

    def check(self, epoch: int) -> Verdict:
        newest = self.newest()
        return Verdict(epoch >= newest, newest)

    def newest(self) -> int:
        """The newest epoch as read after this call began (CoordError when it cannot be read)."""
        with self._lock:
            read = self._next
            leader = read is None
            if read is None:
                read = self._next = _Read()
            ahead = self._sent
        if leader:
            self._lead(read, ahead)
        else:
            read.done.wait()
        if read.error is not None:
            raise read.error
        return read.value

    def _lead(self, read: _Read, ahead: _Read | None) -> None:
        try:
            if ahead is not None:
                ahead.done.wait()  # one read in flight at a time: later ones can share more
            with self._lock:
                self._next, self._sent = None, read  # who arrives from now on joins the next one
            read.value = self._newest()
        except Exception as e:  # CoordError when Redis cannot say: every joiner's answer too
            read.error = e
            raise
        except BaseException:  # this request's greenlet was killed: its joiners are not
            read.error = CoordUnavailable("reading the lease epoch: the shared read was interrupted")
            raise
        finally:
            with self._lock:
                if self._next is read:
                    self._next = None
                if self._sent is read:
                    self._sent = None
            read.done.set()
