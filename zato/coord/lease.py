"""Connector-server lease and fencing epoch (see DESIGN flow 4).

One key per cluster holds the holder's random token with a TTL; a per-cluster counter (the
epoch) goes up by one each time somebody acquires the lease. Every action done on behalf of
the holder carries its epoch, and servers refuse actions whose epoch is older than the newest.

    acquire   one Lua script: SET lease token NX PX ttl, INCR epoch, write lease:info
    renew     compare-and-extend: PEXPIRE only if the key still holds my token
    release   compare-and-delete, then PUBLISH on the lease channel to wake the standbys

The epoch never goes backwards, even if Redis loses its data: an acquirer passes the highest
epoch it has ever seen and the script takes the larger of that and INCR. That alone has a
limit: a server that never saw epoch N (Redis lost it, e.g. a Sentinel failover to a replica
that never got the INCR) could issue N again. So an epoch is also claimed in the ODB
(zato/odb/epoch.py: one conditional UPDATE, the durable floor) before the holder acts: an
acquisition whose epoch was already claimed gives the Redis lease back and competes again
above the floor. An epoch is never issued twice (tests/hosts/test_redis_failover.py).

Renewals are hedged when the Lease has a spare client (the supervisor gives it one): a
renewal that has not answered within `hedge_after` is sent again on the spare connection and
the first confirmation wins, and successive renewals alternate between the two connections so
both stay connected. One lost packet on a slow link costs TCP a retransmission timeout (often
more than the whole renew budget); measured in the multi-host lab (tests/hosts/
test_slow_link.py, 50 ms +- 10 ms each way and 5% loss): without hedging the holder missed its
renew deadline within seconds and the lease moved; with it the lease stays.

`Lease` is the thin, thread-safe Redis side (one round trip per call, every Redis error
translated into CoordError). `LeaseKeeper` is the loop a supervisor runs in a thread: as a
standby it sleeps until the lease can expire (or is released), as the holder it renews, and
it knows on the monotonic clock whether its hold is still confirmed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from zato.common import jsonenc
from zato.common.errors import CoordError, CoordODBUnavailable, LeaseLost
from zato.config.settings import LeaseSettings
from zato.coord import parse
from zato.coord.client import translate
from zato.coord.health import RedisHealth
from zato.coord.keys import Keys

if TYPE_CHECKING:
    from zato.odb.epoch import EpochFloor

logger = logging.getLogger("zato.lease")
YIELD_POLL = 0.05  # seconds between looks at a free lease a standby lets the others take first
_bad = parse.LogOnce(logger)

# The epoch key as a number, or nil when it holds anything but 1-15 decimal digits or is not a
# string (Redis is shared: a value someone else wrote is not trusted, see zato/coord/parse.py).
# Read so, an epoch key of another type no longer fails _ACQUIRE after its SET of the lease key
# (a lease nobody held, for its TTL, again at every try): it is taken as unknown and written.
_READ_EPOCH = parse.EPOCH_LUA

# KEYS: lease, epoch, info, channel.  ARGV: token, ttl_ms, server, since, min_epoch
_ACQUIRE = (
    _READ_EPOCH
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local epoch = (read_epoch(KEYS[2]) or 0) + 1
  local floor = tonumber(ARGV[5])
  if epoch <= floor then
    epoch = floor + 1
  end
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[3], cjson.encode({server=ARGV[3], epoch=epoch, since=tonumber(ARGV[4])}))
  redis.call('PUBLISH', KEYS[4], cjson.encode({event='acquired', server=ARGV[3], epoch=epoch}))
  return {1, epoch}
end
return {0, redis.call('PTTL', KEYS[1]), read_epoch(KEYS[2]) or 0}
"""
)

# KEYS: lease, epoch.  ARGV: token, ttl_ms, my epoch.  Returns 1 renewed, 0 not my token,
# -1 a newer epoch than mine is in the epoch key (set by hand or forged): this hold ends, so
# the next acquisition issues an epoch above it. An epoch key that is missing or not a number
# is put back (returns 2), and so is one older than mine (3): the caller logs it.
# Both keys in one MGET: the holder renews twice a second, and every command a script runs
# counts in Redis's load like one a client sends.
_RENEW = (
    _READ_EPOCH
    + """
local both = redis.call('MGET', KEYS[1], KEYS[2])
if both[1] ~= ARGV[1] then
  return 0
end
local epoch = epoch_of(both[2])
local put_back = 0
if epoch == nil then
  put_back = 2
elseif epoch < tonumber(ARGV[3]) then
  put_back = 3
elseif epoch > tonumber(ARGV[3]) then
  return -1
end
if put_back > 0 then
  redis.call('SET', KEYS[2], ARGV[3])
end
local renewed = redis.call('PEXPIRE', KEYS[1], ARGV[2])
if renewed == 1 and put_back > 0 then
  return put_back
end
return renewed
"""
)

# KEYS: lease, info, status, channel.  ARGV: token, message
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('PUBLISH', KEYS[4], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease, status.  ARGV: token, json, ttl_ms
_WRITE_STATUS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


REPAIRED_MISSING, REPAIRED_OLDER = 2, 3  # what _RENEW returns when it put the epoch key back


def current_epoch(client: redis.Redis, cluster: str) -> int:
    """The newest fencing epoch of `cluster` (0 before any holder); BadEntry (a CoordError)
    when the key holds anything but a whole number (the holder puts it back at its renewal)."""
    with translate("reading the lease epoch"):
        value = client.get(Keys(cluster).epoch)
    return parse.epoch(value)


@dataclass(frozen=True)
class Holder:
    """Who holds the lease now, for status views (no token: it is the holder's capability)."""

    server: str
    epoch: int
    since: float  # wall-clock seconds, for display only
    ttl_ms: int  # remaining lease time


def read_holder(client: redis.Redis, cluster: str) -> Holder | None:
    """The current holder, or None if nobody holds the lease."""
    keys = Keys(cluster)
    with translate("reading the lease holder"):
        pipe = client.pipeline(transaction=False)
        pipe.pttl(keys.lease)
        pipe.get(keys.lease_info)
        ttl_ms, raw = pipe.execute()
    if ttl_ms is None or ttl_ms < 0 or not raw:
        return None
    try:
        info = jsonenc.loads(raw)
        if not isinstance(info, dict):
            raise parse.BadEntry("not a JSON object")
        return Holder(
            parse.name(info.get("server"), "server"),
            parse.integer(info.get("epoch"), "epoch", 0, parse.MAX_EPOCH),
            parse.number(info.get("since"), "since"),
            int(ttl_ms),
        )
    except (ValueError, parse.BadEntry) as e:
        _bad.warning(f"ignoring the lease info in Redis: {e}")
        return None


def read_supervisor_status(client: redis.Redis, cluster: str) -> dict | None:
    """The JSON the holder's supervisor last wrote (children and their states), or None."""
    with translate("reading the supervisor status"):
        raw = client.get(Keys(cluster).supervisor_status)
    try:
        doc = jsonenc.loads(raw) if raw else None
    except ValueError:
        doc = "not JSON"
    if doc is None:
        return None
    children = doc.get("children", []) if isinstance(doc, dict) else None
    if not isinstance(children, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in children
    ):
        _bad.warning("ignoring the supervisor status in Redis: not an object with a list of children")
        return None
    return doc


@dataclass(frozen=True)
class Attempt:
    acquired: bool
    epoch: int  # mine if acquired, else the newest one in Redis
    ttl_ms: int  # when not acquired: how long the current lease still runs (-2: none)


class Lease:
    """The Redis side of one server's lease: acquire, renew, release, fenced status writes."""

    def __init__(
        self,
        client: redis.Redis,
        cluster: str,
        server: str,
        settings: LeaseSettings,
        spare: redis.Redis | None = None,  # a second connection for hedged renewals
        hedge_after: float = 0.15,
        floor: EpochFloor | None = None,  # the durable floor in the ODB
    ):
        self.client = client
        self.floor = floor
        self._renew_clients = [client] if spare is None else [client, spare]
        self._renewals = 0
        self.hedge_after = hedge_after
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lease-renew") if spare else None
        self.keys = Keys(cluster)
        self.server = server
        self.settings = settings
        self.token = ""
        self.epoch = 0
        self.highest_epoch = 0  # the newest epoch this process has seen (survives a Redis flush)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._write_status = client.register_script(_WRITE_STATUS)

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.ttl * 1000)

    def remaining_ms(self, with_epoch: bool = True) -> int:
        """PTTL of the lease key (-2 when nobody holds it). with_epoch: also learn the newest
        epoch, so that this server keeps epochs rising should Redis lose its data (callers
        that hear acquisitions on the lease channel can skip it). One round trip."""
        with translate("checking the lease"):
            if not with_epoch:
                return int(self.client.pttl(self.keys.lease))
            pipe = self.client.pipeline(transaction=False)
            pipe.pttl(self.keys.lease)
            pipe.get(self.keys.epoch)
            ttl_ms, epoch = pipe.execute(raise_on_error=False)
            if isinstance(ttl_ms, Exception):
                raise ttl_ms
        try:
            if isinstance(epoch, redis.ResponseError):  # WRONGTYPE: not a string at all
                raise parse.BadEntry(f"the lease epoch in Redis ({self.keys.epoch}) cannot be read: {epoch}")
            self.highest_epoch = max(self.highest_epoch, parse.epoch(epoch))
        except parse.BadEntry as e:
            _bad.warning(str(e))
        return int(ttl_ms)

    def prepare(self) -> None:
        """Do ahead of time what the first acquisition of this process would otherwise do
        while the cluster has no holder: open the ODB and check its epoch floor (8-13 ms in a
        supervisor on SQLite, a new connection on PostgreSQL), and learn the floor. A standby
        calls it once before it competes, so a graceful handover pays only the floor's claim.
        An ODB that fails here is left for the acquisition to report (it asks again then)."""
        if self.floor is None:
            return
        try:
            if self.floor.available():
                self.highest_epoch = max(self.highest_epoch, self.floor.read())
        except CoordError as e:
            logger.debug("epoch floor not ready ahead of an acquisition: %s", e)

    def try_acquire(self) -> Attempt:
        floor = self.floor if self.floor is not None and self.floor.available() else None
        if floor is not None:
            self.highest_epoch = max(self.highest_epoch, floor.read())
        token = f"{self.server}:{secrets.token_hex(16)}"
        keys = [self.keys.lease, self.keys.epoch, self.keys.lease_info, self.keys.lease_channel]
        since = round(time.time(), 3)
        args: list[str | int | float] = [token, self.ttl_ms, self.server, since, self.highest_epoch]
        with translate("acquiring the lease"):
            result = self._acquire(keys=keys, args=args)
        if int(result[0]) == 1:
            self.token, self.epoch = token, int(result[1])
            self.highest_epoch = max(self.highest_epoch, self.epoch)
            if floor is not None:
                return self._claim(floor)
            return Attempt(True, self.epoch, self.ttl_ms)
        seen = int(result[2])
        self.highest_epoch = max(self.highest_epoch, seen)
        return Attempt(False, seen, int(result[1]))

    def _claim(self, floor: EpochFloor) -> Attempt:
        """Make the epoch Redis gave durable before acting on it; give the lease back if it
        was issued before (Redis forgot it) or the ODB cannot say."""
        try:
            claimed = floor.claim(self.epoch)
        except CoordError:
            self._give_back()
            raise
        if claimed:
            return Attempt(True, self.epoch, self.ttl_ms)
        logger.warning("epoch %d was issued before (Redis lost it): competing again above it", self.epoch)
        self._give_back()
        self.highest_epoch = max(self.highest_epoch, floor.read())
        return Attempt(False, self.highest_epoch, 0)

    def _give_back(self) -> None:
        try:
            self.release()
        except CoordError:
            self.forget()  # the key expires by itself

    def renew(self) -> None:
        """Extend my lease; LeaseLost if the key no longer holds my token."""
        if not self.token:
            raise LeaseLost("not holding the lease")
        args = [self.token, self.ttl_ms, self.epoch]
        with translate("renewing the lease"):
            ok = self._hedged_renew(args)
        if ok in (REPAIRED_MISSING, REPAIRED_OLDER):
            why = "missing or not a number" if ok == REPAIRED_MISSING else "older than the lease's"
            logger.warning(
                "the cluster's epoch key in Redis (%s) was %s (written by hand, or a failover to a "
                "replica that was behind?); put back to %d",
                self.keys.epoch,
                why,
                self.epoch,
            )
            ok = 1
        if ok != 1:
            self.token = ""
            why = "a newer epoch is in Redis" if ok == -1 else "the lease key holds another token"
            raise LeaseLost(f"lease epoch {self.epoch} is no longer ours: {why}")

    def _hedged_renew(self, args: list) -> int:
        """The renewal on one connection and, if it has not answered within hedge_after, on
        the other too; the first answer wins, the error of the last one if none answers."""
        pool = self._pool
        if pool is None:
            return int(self._renew(keys=[self.keys.lease, self.keys.epoch], args=args))
        self._renewals += 1
        order = self._renew_clients[self._renewals % 2 :] + self._renew_clients[: self._renewals % 2]

        def call(client: redis.Redis) -> int:
            return int(self._renew(keys=[self.keys.lease, self.keys.epoch], args=args, client=client))

        pending: set[Future] = {pool.submit(call, order[0])}
        done, pending = wait(pending, timeout=self.hedge_after, return_when=FIRST_COMPLETED)
        if not any(f.exception() is None for f in done):
            pending.add(pool.submit(call, order[1]))
        error: BaseException | None = None
        while done or pending:
            for f in done:
                if f.exception() is None:
                    return f.result()
                error = f.exception()
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
        raise error or CoordError("renewing the lease: no answer")

    def release(self) -> bool:
        """Give the lease up at once and wake the standbys; False if it was not ours any more."""
        if not self.token:
            return False
        token, self.token = self.token, ""
        keys = [self.keys.lease, self.keys.lease_info, self.keys.supervisor_status, self.keys.lease_channel]
        message = json.dumps({"event": "released", "server": self.server, "epoch": self.epoch})
        with translate("releasing the lease"):
            return bool(int(self._release(keys=keys, args=[token, message])))

    def write_status(self, doc: dict, ttl: float) -> bool:
        """Store the supervisor status, only while the key still holds my token (fenced)."""
        token = self.token
        if not token:
            return False
        keys = [self.keys.lease, self.keys.supervisor_status]
        with translate("writing the supervisor status"):
            ok = self._write_status(keys=keys, args=[token, json.dumps(doc), int(ttl * 1000)])
        return bool(int(ok))

    def forget(self) -> None:
        """Drop the token without touching Redis (after stepping down on a missed deadline)."""
        self.token = ""


class LeaseKeeper:
    """Competes for the lease and, once it holds it, keeps renewing it (run() in a thread).

    valid_epoch() is what the supervisor acts on: the epoch while a renewal started less than
    renew_deadline ago has been confirmed, else None. That check uses only the monotonic
    clock, so a paused or partitioned holder knows it must stop without asking Redis.
    """

    def __init__(
        self,
        lease: Lease,
        health: RedisHealth,
        should_stop: Callable[[], bool],
        wait: Callable[[float], object],
        clock: Callable[[], float] | None = None,  # None: time.monotonic (the protocol tests fake it)
        on_acquired: Callable[[int, float | None], None] | None = None,
        on_confirmed: Callable[[int, float], None] | None = None,
        yields: Callable[[], bool] | None = None,  # True: let the others take a free lease first
    ):
        self.lease = lease
        self.on_acquired = on_acquired  # (epoch, seconds without a holder or None): the takeover log
        self.on_confirmed = on_confirmed  # (epoch, start of the confirmed renewal), after each one
        self.yields = yields or (lambda: False)  # asked when the lease is free (it may ask Redis)
        self.settings = lease.settings
        self.health = health
        # the epoch floor's (zato.odb.epoch): an ODB that does not answer is not a Redis outage
        self.odb_health = RedisHealth(system="ODB")
        self.should_stop = should_stop
        self.wait = wait  # sleeps, returns early when the supervisor stops
        self.clock = time.monotonic if clock is None else clock  # never the wall clock: it steps
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._confirmed_at = 0.0  # start of the last renewal Redis confirmed
        self._pubsub: redis.client.PubSub | None = None
        self._epoch_fresh = False  # subscribed, then read the epoch: acquisitions arrive as messages
        self._seen_end: float | None = None  # when the lease this standby last saw would expire
        self._released_at: float | None = None  # when this standby heard the holder release it
        # A hand-over (zato.connector.handover): valid_epoch() says None at once, so the
        # supervisor stops its connectors; then release_now(), and the next step releases.
        self._handing_over = False
        self._release_due = False
        self._free_since: float | None = None  # when this standby first saw the lease free

    # -- what the supervisor reads -------------------------------------------------------
    def valid_epoch(self) -> int | None:
        with self._lock:
            if self._epoch is None or self._handing_over:
                return None
            if self.clock() - self._confirmed_at >= self.settings.renew_deadline:
                return None
            return self._epoch

    def renew_deadline_at(self) -> float:
        """When (this clock) the hold acted on ends unless a renewal started before then is
        confirmed: the start of the last confirmed renewal plus renew_deadline. Redis set the
        key's TTL after that start, so the lease cannot expire before this plus ttl -
        renew_deadline: the room the supervisor has to stop its connectors."""
        with self._lock:
            return self._confirmed_at + self.settings.renew_deadline

    # -- handing the lease over (zato.connector.handover) ---------------------------------------
    def hand_over(self) -> bool:
        """Stop acting on the lease (valid_epoch() says None from now on) but keep renewing it
        until release_now(): nobody else acts while this server stops its connectors. False if
        this keeper holds nothing."""
        with self._lock:
            if self._epoch is None:
                return False
            self._handing_over = True
        return True

    @property
    def handing_over(self) -> bool:
        return self._handing_over

    def release_now(self) -> None:
        """The connectors stopped after hand_over(): release the lease at the next step, which
        wakes the standbys at once (nothing if the hold ended meanwhile)."""
        with self._lock:
            self._release_due = self._handing_over

    def _yielding(self, now: float) -> bool:
        """Seeing the lease free: True while this standby is to let the others take it first
        (`yields()`, for the lease's TTL after it first saw it free; then it competes too)."""
        if not self.yields():
            self._free_since = None
            return False
        if self._free_since is None:
            self._free_since = now
        return now - self._free_since < self.settings.ttl

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.should_stop():
                if self._epoch is None:
                    self._standby_step()
                else:
                    self._holder_step()
        finally:
            self._close_pubsub()

    def _standby_step(self) -> None:
        asked = self.health.clock()
        try:
            self._drain_releases()
            fresh = self._pubsub is not None and self._epoch_fresh
            remaining = self.lease.remaining_ms(with_epoch=not fresh)
            self._epoch_fresh = self._pubsub is not None
            if remaining >= 0:  # held (again, after any release heard): not what a takeover follows
                self._seen_end = self.clock() + remaining / 1000.0
                self._free_since = self._released_at = None
            elif self._yielding(self.clock()):
                self.health.ok(wrote=False, asked_at=asked)
                self.wait(YIELD_POLL)
                return
            tried = remaining < 0  # its script ran: Redis took a write
            if tried:  # -2: nobody holds it (-1 cannot happen: we always set PX)
                started = self.clock()  # the key's TTL starts after this instant
                attempt = self.lease.try_acquire()
                if attempt.acquired:
                    self.health.ok(asked_at=asked)
                    self.odb_health.ok()
                    hold_from: float | None = started
                    if self.clock() - started >= self.settings.renew_interval:
                        hold_from = self._confirm_slow_acquisition(attempt.epoch, started)
                    if hold_from is not None:
                        self._became_holder(attempt.epoch, hold_from)
                    return
                remaining = attempt.ttl_ms
                if remaining >= 0:  # another server took it first: a holder seen, as above
                    self._seen_end = self.clock() + remaining / 1000.0
            self.health.ok(wrote=tried, asked_at=asked)
            if tried:  # the floor was read (or there is none)
                self.odb_health.ok()
        except CoordODBUnavailable as e:  # Redis answered; the ODB did not (before: "Redis unreachable")
            self.odb_health.failed("lease check: this server takes no lease over until it answers", e)
            self.wait(self.settings.retry_interval)
            return
        except CoordError as e:
            self.health.failed("lease check", e)
            self._close_pubsub()
            self.wait(self.settings.retry_interval)
            return
        # remaining -1 (a key without expiry, set by hand) must not turn into a busy loop
        self._sleep_standby(remaining / 1000.0 + 0.002 if remaining >= 0 else self.settings.retry_interval)

    def _confirm_slow_acquisition(self, epoch: int, started: float) -> float | None:
        """An acquisition that took longer than renew_interval (the ODB's floor, read before it
        and claimed after it, answered slowly) leaves its hold little or no time before the
        renew deadline, timed from its start: the new holder stepped down before its first
        renewal, and the next one did the same (with the ODB 100 ms away no holder acted at
        all). A renewal begun now confirms the lease is still this server's and starts the
        hold afresh from it; None when the lease was lost meanwhile. An error leaves the hold
        timed from `started`, as before."""
        again = self.clock()
        try:
            self.lease.renew()
        except LeaseLost as e:
            logger.warning("lost lease epoch %d while claiming it: %s", epoch, e)
            return None
        except CoordError as e:
            self.health.failed("lease renewal", e)
            return started
        logger.info("the claim of lease epoch %d took %.2f s: its hold starts from a renewal after it",
                    epoch, again - started)  # fmt: skip
        return again

    def _became_holder(self, epoch: int, started: float) -> None:
        with self._lock:
            self._epoch, self._confirmed_at = epoch, started
            self._handing_over = self._release_due = False
        self._free_since = None
        gap, why = self._takeover_gap()
        logger.info("acquired lease epoch %d: %s", epoch, why)
        self._confirmed(epoch, started)
        self._report_takeover(epoch, gap)

    def _takeover_gap(self) -> tuple[float | None, str]:
        """How long the cluster had no holder, as this standby saw it, and why it had none (for
        the log): from the release it heard, else from the last renewal it saw (the expiry it
        saw minus the TTL); None when it saw no holder before."""
        released, seen_end = self._released_at, self._seen_end
        self._released_at = self._seen_end = None
        if released is not None:
            gap = max(0.0, self.clock() - released)
            why = "its holder released it (a graceful stop or a hand-over)"
            return gap, f"{why}, {gap:.2f} s without a holder"
        if seen_end is not None:
            gap = max(0.0, self.clock() - (seen_end - self.settings.ttl))
            return gap, (
                f"its holder stopped renewing it (killed, paused, or cut off from Redis) and it expired,"
                f" {gap:.2f} s without a holder since the last renewal seen"
            )
        return None, "nobody held it when this server looked"

    def _confirmed(self, epoch: int, started: float) -> None:
        if self.on_confirmed is not None:
            self.on_confirmed(epoch, started)

    def _report_takeover(self, epoch: int, gap: float | None) -> None:
        """The takeover log (on_acquired): `gap`, seconds without a holder (_takeover_gap)."""
        if self.on_acquired is None:
            return
        try:
            self.on_acquired(epoch, gap)
        except CoordError as e:
            logger.warning("cannot record the takeover of epoch %d: %s", epoch, e)

    def _holder_step(self) -> None:
        epoch = self._epoch
        if self._release_due:
            self._release_handed_over(epoch)
            return
        if self.clock() - self._confirmed_at >= self.settings.renew_deadline:
            logger.warning(
                "no renewal of lease epoch %s confirmed within %.2fs: stepping down",
                epoch,
                self.settings.renew_deadline,
            )
            self._drop()
            return
        started, asked = self.clock(), self.health.clock()
        try:
            self.lease.renew()
        except LeaseLost as e:
            logger.warning("lost lease: %s", e)
            self._drop()
            return
        except CoordError as e:
            self.health.failed("lease renewal", e)
            left = self._confirmed_at + self.settings.renew_deadline - self.clock()
            self.wait(max(0.0, min(self.settings.renew_interval / 2, left)))
            return
        self.health.ok(asked_at=asked)
        with self._lock:
            confirmed = self._epoch == epoch
            if confirmed:
                self._confirmed_at = started
        if confirmed and epoch is not None:
            self._confirmed(epoch, started)
        self.wait(max(0.0, self.settings.renew_interval - (self.clock() - started)))

    def _release_handed_over(self, epoch: int | None) -> None:
        try:
            released = self.lease.release()
        except CoordError as e:
            self.health.failed("lease release", e)
            released = False
        self._drop()
        self._free_since = None
        how = "released it" if released else "it expires by itself"
        logger.warning("handed lease epoch %s over (%s): the standbys compete now", epoch, how)

    def _drop(self) -> None:
        """Stop holding without touching Redis: the key expires on its own after the TTL,
        which leaves the supervisor time to stop its children before anyone else starts."""
        with self._lock:
            self._epoch = None
            self._handing_over = self._release_due = False
        self.lease.forget()

    def _sleep_standby(self, until_expiry: float) -> None:
        """Sleep until the lease can expire (capped by retry_interval) or is released."""
        timeout = max(0.001, min(until_expiry, self.settings.retry_interval))
        deadline = self.clock() + timeout
        try:
            with translate("waiting on the lease release channel"):
                pubsub = self._subscribe()
                while not self.should_stop():
                    left = deadline - self.clock()
                    if left <= 0:
                        return
                    msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 0.25))
                    if self._heard(msg) == "released":
                        self._released_at = self.clock()
                        logger.info("lease released by its holder: competing now")
                        return
        except CoordError as e:  # unreachable, or refused (a bug): RedisHealth tells which
            self.health.failed("lease release channel", e)
            self._close_pubsub()
            self.wait(max(0.0, deadline - self.clock()))

    def _heard(self, msg: dict | None) -> str:
        """Learn the epoch from a lease channel message; returns its event ("" if none)."""
        if not msg or msg.get("type") != "message":
            return ""
        try:
            body = jsonenc.loads(msg["data"])
            epoch = parse.integer(body.get("epoch", 0), "epoch", 0, parse.MAX_EPOCH)
            self.lease.highest_epoch = max(self.lease.highest_epoch, epoch)
            return str(body.get("event", "released"))
        except (ValueError, TypeError, AttributeError, parse.BadEntry):
            return ""

    def _subscribe(self) -> redis.client.PubSub:
        if self._pubsub is None:
            pubsub = self.lease.client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self.lease.keys.lease_channel)
            self._pubsub, self._epoch_fresh = pubsub, False
        return self._pubsub

    def _drain_releases(self) -> None:
        """What came on the lease channel since the last wait on it: a release that came just as
        that wait ended is heard here (before, the takeover that followed, moments after the
        release, was logged and recorded as an expiry since the last renewal seen)."""
        if self._pubsub is None:
            return
        try:
            with translate("reading the lease release channel"):
                while msg := self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0):
                    if self._heard(msg) == "released":
                        self._released_at = self.clock()
        except CoordError:  # the lease check that follows reports Redis's state
            self._close_pubsub()

    def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub, self._epoch_fresh = None, False
