"""A request that ends its worker is named in the log, and not run again on that server.

A gevent worker serves many requests at once. When the code of one of them ends the process
(a crash in a C extension, the kernel's out-of-memory killer, `os._exit`), every request the
worker held is cut, and the load balancer replays the idempotent ones on the next server
(zato/lb/render.py: `retry-on empty-response`). Replayed, the request that ended its worker
ends the next one too. Measured on a quickstart of two servers with two workers each: one GET
whose service calls `os._exit` ran four times (HAProxy's `retries 3`) and ended every worker of
the cluster; the log said only "Worker (pid:N) exited with code 1", four times, and the client
got "the server handling the request was lost before it answered; the request may have run",
which invites it to send it again.

So the server's arbiter makes a table in shared memory before its first worker (an anonymous
shared mapping, which every worker it forks inherits), and gives each worker a slot of it
(pre_fork). A worker keeps in its slot how many requests it is serving and the record (pid,
CID, method, path, start) of the last one to begin, blanked when that one ends. When a worker
ends while its slot holds a record and one request in flight, that request was the only one
in the worker: what ended it ran in its code (or came from outside, like a `kill -9`). With more
than one in flight, the culprit cannot be told from the others, which the load balancer
replays and the other servers answer: the log says how many there were and none is refused.
(Knowing which greenlet runs at each moment takes a greenlet switch hook: Python code on every
switch of the worker's greenlets, for a rare crash; docs/benchmarks.md says what was measured.)

A request that comes with a CID found in the slot of a worker that has ended with it alone in
flight (its process gone or a zombie: the load balancer's replay comes within milliseconds,
before the arbiter reaped it, and keeps the X-Zato-CID the load balancer gave it) is answered
500 with the reason and not run; 500 is the one answer the load balancer never replays. When
the arbiter reaps a worker (child_exit) it logs what its slot says and moves such a record to
the table's ring, where later replays find it for KEEP seconds.

Only requests whose method the load balancer replays (the idempotent ones, RFC 9110) are looked
up, in the slots ever taken and the ring's records only. What it costs: docs/benchmarks.md
("A request that ends its worker").

Other servers are not told: with two servers such a request runs at most twice (once on each)
rather than four times, and then its client learns why. Not named: a crash in a worker beyond
the first SLOTS of a server.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import time
from typing import Any, NamedTuple

from zato.common.pidfile import pid_alive

logger = logging.getLogger("zato.server")

SLOT = 256  # bytes of one slot: the count of requests in flight, then a record
SLOTS = 16  # workers of one server with a slot (more are served, their crashes not named)
RING = 16  # records of requests that ended a worker, the oldest overwritten
KEEP = 300.0  # seconds a request that ended a worker is refused (a load balancer's retries take ms)
COUNT = struct.Struct("<I")  # a slot's first bytes: requests in flight in its worker
HEADER = struct.Struct("<II")  # after the ring: slots ever taken, records in the ring
TEXT = COUNT.size  # where a slot's record starts: pid, CID, method, path, start; NUL-ended
METHOD_MAX = 16
PATH_MAX = SLOT - TEXT - 80  # bytes of the path kept: the rest of a record fits in 80 (a CID is 28)
SEP = "\t"


class Record(NamedTuple):
    pid: int  # the worker running it; 0 in the ring
    cid: str
    method: str
    path: str
    at: float  # when it started; in the ring, when its worker ended


def encode(record: Record) -> bytes:
    """A record's text, NUL-ended, within a slot (a long path is cut)."""
    return b"%d\t%s\t%s\t%s\t%.3f\0" % (
        record.pid,
        record.cid.encode("latin-1", "replace"),
        record.method.encode("latin-1", "replace")[:METHOD_MAX],
        record.path.encode("latin-1", "replace")[:PATH_MAX].replace(b"\t", b" "),  # WSGI strings are latin-1
        record.at,
    )


def decode(raw: bytes) -> Record | None:
    """The record in `raw`; None when blank or unreadable (a write under way)."""
    parts = raw.split(b"\0", 1)[0].decode("latin-1").split(SEP)
    if len(parts) != 5:
        return None
    try:
        return Record(int(parts[0]), parts[1], parts[2], parts[3], float(parts[4]))
    except ValueError:
        return None


class Table:
    """The server's table: made by the arbiter before its first worker, inherited by each."""

    def __init__(self, slots: int = SLOTS, ring: int = RING):
        self.map = mmap.mmap(-1, (slots + ring) * SLOT + HEADER.size)  # anonymous, shared
        self.slots, self.ring = slots, ring
        self.slot: int | None = None  # in a worker: its own (set by take() just before the fork)
        self._header = (slots + ring) * SLOT
        self._taken: dict[Any, int] = {}  # the arbiter's: gunicorn's worker object -> its slot
        self._next = 0  # the ring's next record

    def read(self, index: int) -> tuple[int, Record | None]:
        """(requests in flight, record) of slot or ring entry `index`."""
        at = index * SLOT
        return COUNT.unpack_from(self.map, at)[0], decode(self.map[at + TEXT : at + SLOT])

    def write(self, index: int, in_flight: int, text: bytes = b"\0") -> None:
        at = index * SLOT
        COUNT.pack_into(self.map, at, in_flight)
        self.map[at + TEXT : at + TEXT + len(text)] = text

    def _counts(self) -> tuple[int, int]:
        return HEADER.unpack_from(self.map, self._header)

    # the arbiter's side

    def take(self, worker: Any) -> None:
        """pre_fork: a free slot for the worker about to be forked."""
        used = set(self._taken.values())
        self.slot = next((i for i in range(self.slots) if i not in used), None)
        if self.slot is not None:
            self._taken[worker] = self.slot
            self.write(self.slot, 0)
            taken, kept = self._counts()
            HEADER.pack_into(self.map, self._header, max(taken, self.slot + 1), kept)

    def release(self, worker: Any, server: str) -> Record | None:
        """child_exit: the request that was alone in flight when the worker ended (logged, and
        kept in the ring), or None (what there was is logged)."""
        index = self._taken.pop(worker, None)
        if index is None:
            return None
        in_flight, record = self.read(index)
        self.write(index, 0)
        pid = getattr(worker, "pid", 0)
        if in_flight != 1 or record is None:
            last = f" (the last to begin: cid {record.cid}, {record.method} {record.path})" if record else ""
            if in_flight:
                logger.error(
                    "server %s: worker %d ended with %d requests in flight%s; the load balancer replays the "
                    "idempotent ones on another server",
                    server,
                    pid,
                    in_flight,
                    last,
                )
            return None
        now = time.time()
        self.write(self.slots + self._next, 1, encode(record._replace(pid=0, at=now)))
        self._next = (self._next + 1) % self.ring
        taken, kept = self._counts()
        HEADER.pack_into(self.map, self._header, taken, min(self.ring, kept + 1))
        logger.error(
            "server %s: worker %d ended while running cid %s, %s %s (for %.1f s), the only request "
            "in it; if it comes again (a load balancer's replay) it is answered 500 and not run here",
            server,
            record.pid,
            record.cid,
            record.method,
            record.path,
            max(0.0, now - record.at),
        )
        return record

    # a worker's side

    def ended_a_worker(self, cid: str) -> bool:
        """Whether the request `cid` was alone in a worker of this server when it ended."""
        taken, kept = self._counts()  # only what was ever written is searched: a request's cost
        needle = cid.encode("latin-1", "replace")
        for start, end in ((0, taken * SLOT), (self.slots * SLOT, (self.slots + kept) * SLOT)):
            while (found := self.map.find(needle, start, end)) != -1:
                index = found // SLOT
                start = (index + 1) * SLOT
                in_flight, record = self.read(index)
                if record is None or record.cid != cid or index == self.slot or in_flight != 1:
                    continue
                if index >= self.slots:  # the ring: a worker ended while running it
                    if time.time() - record.at < KEEP:
                        return True
                elif not pid_alive(record.pid):  # a slot whose worker ended (gone or a zombie)
                    return True
        return False


class Running:
    """A worker's side: begin() and end() around each request (one greenlet each)."""

    def __init__(self, table: Table):
        self.table = table
        self._index = table.slot  # None: no slot, nothing recorded
        self._pid = os.getpid()
        self._in_flight = 0
        self._shown: object = None  # the request whose record the slot holds (its begin() token)

    def begin(self, cid: str, method: str, path: str) -> object:
        """Records the request; returns the token to give end()."""
        token = object()
        if self._index is not None:
            self._in_flight += 1
            record = Record(self._pid, cid, method, path, time.time())
            self.table.write(self._index, self._in_flight, encode(record))
            self._shown = token
        return token

    def end(self, token: object) -> None:
        if self._index is not None:
            self._in_flight -= 1
            if token is self._shown:  # its record goes: the slot never names a request that ended
                self._shown = None
                self.table.write(self._index, self._in_flight)
            else:
                COUNT.pack_into(self.table.map, self._index * SLOT, self._in_flight)

    def ended_a_worker(self, cid: str) -> bool:
        return self.table.ended_a_worker(cid)
