"""Redis's wall clock: the one clock every host of a cluster reads alike.

Member entries carry their signed write time, and readers refuse one too far from now
(zato.coord.membership): a copy of a stopped server's entry stops counting. Stamped and
checked with each host's own clock, a host whose clock is off by more than that bound (no
NTP, a VM resumed with its old time) had its servers refused by every other host while they
served on, outside the load balancer and the cluster. Stamped and checked with Redis's
clock, the hosts' own clocks do not matter.

`now(client)` is this host's time.time() plus the offset to Redis's TIME, measured with one
TIME round trip (the midpoint of the call taken as the moment Redis answered) at most every
SYNC_EVERY seconds, and again after a failed measurement. A Redis whose ACL refuses TIME
(a user made from an older docs/redis-acl.md): this host's clock instead, said once.

The offset is also measured again as soon as this host's wall clock has moved more than STEP
apart from its monotonic clock since the last measurement: the wall clock was stepped (an NTP
step, a VM resumed with its old time and set right, a suspend), and the offset measured before
is off by the step. Before, it was used until SYNC_EVERY had passed: after a step of 10 minutes
an LB controller on that host refused every member entry as more than 60 s old and drained
every server, and the host's own entries and internal calls were refused by the other hosts,
for up to 30 s.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

import redis

from zato.common.errors import CoordError
from zato.coord.client import translate

logger = logging.getLogger(__name__)

SYNC_EVERY = 30.0  # seconds between measurements of the offset (Redis's and our clock drift apart slowly)
RETRY_AFTER = 5.0  # estimate(): seconds after a failed measurement before the next try
# How far this host's wall clock may move apart from its monotonic one between measurements
# before the offset is measured again. Slewing (NTP, chrony) moves both alike; a step moves the
# wall clock alone, and so does a suspend (the monotonic clock stops meanwhile).
STEP = 1.0


class _Offset:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.measured_at: float | None = None  # monotonic; None: never measured
        self.wall_at = 0.0  # time.time() at that measurement: a step of the wall clock is seen
        self.refused = False  # the ACL refuses TIME: offset 0 for good
        self.failed_at: float | None = None  # monotonic: estimate()'s last failed measurement


_offsets: weakref.WeakKeyDictionary[redis.Redis, _Offset] = weakref.WeakKeyDictionary()
# Guards _offsets only, never a call to Redis: in a server's gevent worker it is a real lock
# (this module is imported by the arbiter, before the worker's monkey-patching), and a
# greenlet waiting for TIME while holding it blocked every other greenlet that came to it,
# and with them the whole worker, for good. Callers due at once each measure (one round trip
# each, every SYNC_EVERY s): any of their measurements will do.
_lock = threading.Lock()


def now(client: redis.Redis) -> float:
    """Redis's wall clock now (epoch seconds), as estimated here; CoordError when the offset
    is due for a measurement and Redis cannot be reached."""
    with _lock:
        offset = _offsets.get(client)
        if offset is None:
            offset = _offsets[client] = _Offset()
    if _due(offset) and not offset.refused:
        _measure(client, offset)
    return time.time() + offset.seconds


def _due(offset: _Offset) -> bool:
    """Never measured, measured SYNC_EVERY ago, or this host's wall clock stepped since."""
    if offset.measured_at is None:
        return True
    elapsed = time.monotonic() - offset.measured_at
    return elapsed >= SYNC_EVERY or abs(time.time() - offset.wall_at - elapsed) > STEP


def estimate(client: redis.Redis) -> float:
    """now(), but never an error: while Redis cannot be reached, this host's clock plus the
    last offset measured (none: this host's clock). A failed measurement is tried again after
    RETRY_AFTER, not at every call: a connector stamps every call it makes with this, and each
    try waits for Redis's socket timeout."""
    with _lock:
        offset = _offsets.get(client)
    failed_at = offset.failed_at if offset is not None else None
    if offset is None or failed_at is None or time.monotonic() - failed_at >= RETRY_AFTER:
        try:
            value = now(client)
        except CoordError:
            with _lock:
                offset = _offsets.setdefault(client, _Offset())
                offset.failed_at = time.monotonic()
        else:
            offset = _offsets.get(client)
            if offset is not None:
                offset.failed_at = None
            return value
    return time.time() + offset.seconds


def _measure(client: redis.Redis, offset: _Offset) -> None:
    before = time.time()
    with translate("reading Redis's clock (TIME)"):
        try:
            seconds, micros = client.time()
        except redis.exceptions.NoPermissionError as e:
            if offset.refused:  # another caller measured at the same time, and said so
                return
            offset.refused = True
            logger.warning(
                "Redis refuses TIME to this user (%s): member entries are stamped and checked with "
                "this host's clock, which must then be NTP-synchronised with the other hosts'; add "
                "+time to the user's ACL rules (docs/redis-acl.md)",
                e,
            )
            return
    after = time.time()
    offset.seconds = seconds + micros / 1e6 - (before + after) / 2
    offset.wall_at, offset.measured_at = after, time.monotonic()
