"""invoke_async through Redis, at least once: a service's call is on the cluster-wide queue
before invoke_async returns, so the server that asked may die at once.

Every worker of every server takes calls with BLMOVE into its own processing list (named
SERVER:PID) and removes each after the service ran. A worker is dead when its process is gone
(checked on its own host, where the pid means something) or when its server left the cluster
(its member key expired: killed, host gone). Any worker's reaper moves a dead worker's list back
to the queue, so a call it had taken runs again elsewhere. A call under which MAX_DEATHS workers
died (its service ends its process: os._exit, a crash, the worker's timeout) is parked in
`async:parked` instead, so that it does not take down one worker after another for ever.
Liveness comes from what the cluster already keeps (membership, the process table): an idle
worker sends one blocking BLMOVE every few seconds and a reap now and then, no heartbeat of its
own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from zato.common import jsonenc
from zato.common.errors import CoordError
from zato.common.pidfile import pid_alive
from zato.coord import parse
from zato.coord.client import blmove, move_now, text, texts, translate
from zato.coord.keys import Keys
from zato.coord.patterns import Step
from zato.coord.signing import SIG, call_verified, queued_call

logger = logging.getLogger("zato.async")
_refused = parse.LogOnce(logger)

MAX_DEATHS = 3  # workers that may die under one call before it is parked instead of run again

# KEYS: a dead worker's list, the queue, the parked list. ARGV: the call as it is at the list's
# end, the call as it goes on (its deaths counted), "1" to park it. Nothing if another reaper
# moved it first. Where it goes checked before the RPOP: a queue or parked list of another
# type (a Redis writer's) failed the push after the pop, and the call was lost.
_HAND_BACK = (
    parse.TYPES_LUA
    + """
if redis.call('LINDEX', KEYS[1], -1) ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then want(KEYS[3], 'list') else want(KEYS[2], 'list') end
redis.call('RPOP', KEYS[1])
if ARGV[3] == '1' then redis.call('RPUSH', KEYS[3], ARGV[2]) else redis.call('LPUSH', KEYS[2], ARGV[2]) end
return 1
"""
)

# KEYS: a worker's processing list, the parked list. ARGV: the call as taken. 1 parked; 0 it
# was not in the list (nothing moved). A call not signed with the cluster's key goes there whole.
_PARK = (
    parse.TYPES_LUA
    + """
want(KEYS[2], 'list')
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""
)

# The oldest parked call to the queue's end, as the caller read it and (maybe) signed it now.
# KEYS: parked, queue. ARGV: the call as read, as queued. 1 moved; 0 the oldest is another now.
_REQUEUE_SIGNED = (
    parse.TYPES_LUA
    + """
want(KEYS[2], 'list')
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""
)


@dataclass(frozen=True)
class AsyncCall:
    raw: str  # as stored (LREM needs the exact text)
    service: str
    payload: Any
    cid: str
    deaths: int = 0  # workers that died while running it
    callbacks: tuple[str, ...] = ()  # services given its response once it ran (Zato's callback=)
    step: Step | None = None  # a target of self.patterns' fanout or parallel (zato.coord.patterns)


def died_under(raw: str) -> tuple[str, int]:
    """The call with one more death counted, and that count (0: not a call; it goes back as is)."""
    try:
        msg = jsonenc.loads(raw)
        deaths = int(msg.get("deaths", 0)) + 1
        msg["deaths"] = deaths
    except (ValueError, TypeError, AttributeError, OverflowError):  # deaths: Infinity
        return raw, 0
    return json.dumps(msg), deaths


def push(
    client: redis.Redis,
    cluster: str,
    service: str,
    payload: Any,
    cid: str,
    callbacks: tuple[str, ...] = (),
    *,
    key: bytes,
) -> None:
    """Queue a call signed with `key` (zato.coord.signing.call_key): only signed calls run."""
    call = {"service": service, "payload": payload, "cid": cid}
    if callbacks:
        call["callbacks"] = list(callbacks)
    try:
        raw = queued_call(key, call)
    except (TypeError, ValueError) as e:
        raise CoordError(f"invoke_async {service}: the payload is not JSON-serialisable: {e}") from None
    with translate("invoke_async"):
        client.rpush(Keys(cluster).async_queue, raw)


def signed(key: bytes, raw: str) -> bool:
    """Whether the queued call `raw` was signed with `key` (a worker runs no other: anyone who
    can write to Redis could queue one, of any service, with any payload)."""
    try:
        doc = jsonenc.loads(raw)
    except ValueError:
        return False
    return isinstance(doc, dict) and call_verified(key, doc)


def decode(raw: str) -> AsyncCall | None:
    try:
        msg = jsonenc.loads(raw)
        given = msg.get("callbacks") or []
        if not isinstance(given, list) or not all(isinstance(name, str) for name in given):
            return None  # not this project's: a call is never half-understood
        callbacks = tuple(given)
        step = None
        if "pattern" in msg:
            step = Step.from_json(msg["pattern"])
            if step is None:
                return None
        return AsyncCall(
            raw,
            str(msg["service"]),
            msg.get("payload"),
            str(msg["cid"]),
            int(msg.get("deaths", 0)),
            callbacks,
            step,
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):  # deaths: Infinity
        return None


def requeue_parked(client: redis.Redis, cluster: str, limit: int | None = None) -> int:
    """Move the calls parked now (at most `limit`; None: all) back to the end of the queue
    (oldest first); returns how many.
    Each keeps its count of deaths: one that ends its worker again is parked after one more."""
    keys = Keys(cluster)
    what = "invoke_async: queueing parked calls again"
    return move_now(client, keys.async_parked, keys.async_queue, ("LEFT", "RIGHT"), limit, what)


def signed_anew(key: bytes, raw: str) -> str:
    """`raw` signed with `key` unless it is already; as it is when it is not a call's JSON object
    (a worker drops that as malformed, as before)."""
    if signed(key, raw):
        return raw
    try:
        doc = jsonenc.loads(raw)
        if not isinstance(doc, dict):
            return raw
        return queued_call(key, {k: v for k, v in doc.items() if k != SIG})
    except (TypeError, ValueError):
        return raw


def requeue_parked_signing(
    client: redis.Redis, cluster: str, key: bytes, limit: int | None = None
) -> tuple[int, int]:
    """requeue_parked, signing with `key` (zato.coord.signing.call_key) each parked call not
    signed with it: a worker parks those (queued by a server of a version before calls were
    signed, during a rolling upgrade, or under another cluster secret, or by any Redis writer).
    Only for calls an operator checked are the cluster's own. Each moved whole; returns (moved,
    of them signed now)."""
    keys = Keys(cluster)
    move = client.register_script(_REQUEUE_SIGNED)
    moved = signed_now = 0
    try:
        with translate("invoke_async: queueing parked calls again, signed"):
            now = int(client.llen(keys.async_parked))
            for _ in range(now if limit is None else min(limit, now)):
                raw = client.lindex(keys.async_parked, 0)
                if raw is None:
                    break
                raw = text(raw)
                out = signed_anew(key, raw)
                if move(keys=[keys.async_parked, keys.async_queue], args=[raw, out]) == 1:
                    moved, signed_now = moved + 1, signed_now + (out != raw)
    except CoordError as e:
        if not moved:
            raise
        raise type(e)(f"{e}; {moved} moved before, the rest stay in {keys.async_parked}") from e
    return moved, signed_now


def parked_count(client: redis.Redis, cluster: str) -> int:
    with translate("invoke_async: counting parked calls"):
        return int(client.llen(Keys(cluster).async_parked))


def worker_id(server: str, pid: int) -> str:
    return f"{server}:{pid}"


def _split(worker: str) -> tuple[str, int] | None:
    server, _, pid = worker.rpartition(":")
    return (server, int(pid)) if server and pid.isdigit() else None


class AsyncTaker:
    """One worker's side: take, ack, and reap dead workers' lists.

    `client` serves the short commands; `take_client` (default: the same) the blocking BLMOVE,
    so it can have a socket timeout above the BLMOVE's own, and the reap: the consumer runs
    both in turn, and a connection busy every few seconds needs no health-check PING (redis-py
    sends one before a command on a connection idle longer than its check interval).
    An idle reap costs two commands whatever the cluster's size: SMEMBERS, and one EXISTS
    over the other servers' member keys.
    """

    def __init__(
        self,
        client: redis.Redis,
        cluster: str,
        worker: str,
        take_client: redis.Redis | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
        on_forget: Callable[[str], None] | None = None,
    ):
        self.client, self.keys, self.worker_id = client, Keys(cluster), worker
        self.on_forget = on_forget  # a worker left the set (what else it left in Redis goes too)
        self.take_client = take_client or client
        self.processing = self.keys.async_processing(worker)
        parts = _split(worker)
        self.server = parts[0] if parts else worker
        self.is_alive = is_alive
        self._hand_back = self.take_client.register_script(_HAND_BACK)
        self._park = self.client.register_script(_PARK)

    def register(self) -> int:
        """Be known to the reapers (once at start, again after Redis came back). A list left
        under this name by an earlier process with the same pid goes back to the queue first;
        returns how many calls that was."""
        with translate("invoke_async register"):
            if self.client.sadd(self.keys.async_workers, self.worker_id):  # new to the set
                return self._from_the_dead(self.processing)
        return 0

    def take(self, timeout: float) -> str | None:
        with translate("invoke_async take"):
            queue = self.keys.async_queue
            return blmove(self.take_client, queue, self.processing, timeout, ("LEFT", "RIGHT"))

    def ack(self, raw: str) -> None:
        with translate("invoke_async ack"):
            self.client.lrem(self.processing, 1, raw)

    def park(self, raw: str) -> bool:
        """Move a taken call to the parked list instead of running it (it is not signed with the
        cluster's key); False when it was no longer in this worker's list."""
        with translate("invoke_async park"):
            return bool(self._park(keys=[self.processing, self.keys.async_parked], args=[raw]))

    def dead_workers(self, workers: set[str]) -> list[str]:
        """Which of `workers` are dead: on this server, by pid; elsewhere, by membership."""
        parsed = {w: _split(w) for w in workers if w != self.worker_id}
        others = sorted({p[0] for p in parsed.values() if p and p[0] != self.server})
        live: dict[str, bool] = {}
        client = self.take_client
        if others and client.exists(*(self.keys.member(s) for s in others)) == len(others):
            live = dict.fromkeys(others, True)  # the usual answer, in one command
        elif others:
            pipe = client.pipeline(transaction=False)
            for server in others:
                pipe.exists(self.keys.member(server))
            live = dict(zip(others, (bool(n) for n in pipe.execute()), strict=True))
        dead = []
        for worker, parts in parsed.items():
            if parts is None:
                continue  # not a name this project writes: left alone
            server, pid = parts
            if not (self.is_alive(pid) if server == self.server else live[server]):
                dead.append(worker)
        return sorted(dead)

    def reap(self) -> int:
        """Move the calls of dead workers back to the queue and forget those workers;
        returns how many calls moved."""
        moved, client = 0, self.take_client
        with translate("invoke_async reap"):
            for worker in self.dead_workers(set(texts(client.smembers(self.keys.async_workers)))):
                back, whole = self._handed_back(self.keys.async_processing(worker))
                moved += back
                if whole:  # else the worker stays known: its list is looked at again next time
                    client.srem(self.keys.async_workers, worker)
                    self._forgotten(worker)
        return moved

    def _from_the_dead(self, key: str) -> int:
        return self._handed_back(key)[0]

    def _handed_back(self, key: str) -> tuple[int, bool]:
        """Hand back a dead worker's calls, each with its death counted; park those under
        which MAX_DEATHS workers died. Returns how many went back to the queue, and False
        when one could not go where it goes (the queue or parked list is of another type: a
        Redis writer's); that call and those before it stay in `key`, said once."""
        moved = 0
        keys = (key, self.keys.async_queue, self.keys.async_parked)
        while (raw := self.take_client.lindex(key, -1)) is not None:
            raw = text(raw)
            again, deaths = died_under(raw)
            park = deaths >= MAX_DEATHS
            try:
                if not self._hand_back(keys=keys, args=(raw, again, "1" if park else "0")):
                    continue  # another reaper took that one first: look again
            except redis.ResponseError as e:
                if not str(e).startswith("WRONGTYPE"):
                    raise
                _refused.warning(f"invoke_async: the calls of a dead worker stay in {key}: {e}")
                return moved, False
            if park:
                call = decode(again)
                logger.error(
                    "invoke_async: call %s of service %s parked in %s: %d workers died while running it",
                    call.cid if call else "?",
                    call.service if call else "?",
                    self.keys.async_parked,
                    deaths,
                )
            else:
                moved += 1
        return moved, True

    def close(self) -> None:
        """A clean stop: hand back what was taken and not run, then forget this worker."""
        with translate("invoke_async close"):
            while self.client.lmove(self.processing, self.keys.async_queue, "RIGHT", "LEFT") is not None:
                pass
            self.client.srem(self.keys.async_workers, self.worker_id)
        self._forgotten(self.worker_id)

    def _forgotten(self, worker: str) -> None:
        if self.on_forget is not None:
            self.on_forget(worker)
