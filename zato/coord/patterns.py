"""Zato's fan-out/fan-in and parallel execution (`self.patterns.fanout`, `.parallel`) over the
invoke_async queue (zato.coord.async_invoke), so a pattern's targets run on any server of the
cluster, at least once, and its callbacks run once every target has been recorded, wherever.

A pattern is one run (a new id): its targets are queued together, in one RPUSH, each
call carrying what its completion needs (the run, its index, how many targets, the callbacks).
The worker that ran a target records its outcome with one script: the first record of that
index counts (a target run again after its worker died is not counted twice), and the same
script queues the on-target callbacks, and after the last target the on-final ones with the
list of every outcome. Those are ordinary invoke_async calls, so they too run at least once.
The outcomes go once the final callbacks are queued; the indexes recorded stay until RUN_TTL
after the last record, so a target run again after that (its worker died before it acked)
counts for nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from zato.common import jsonenc
from zato.common.cid import new_cid
from zato.common.errors import CoordError
from zato.coord.client import translate
from zato.coord.keys import Keys
from zato.coord.signing import OUTCOMES, queued_call, sign_call

RUN_TTL = 7 * 24 * 3600  # seconds a run's records outlive its last one (a target never done)
FANOUT, PARALLEL = "fanout", "parallel"

# KEYS: the run's done-hash, its outcomes list, the async queue. ARGV: the target's index, its
# outcome (JSON), the number of targets, the TTL, how many on-target calls follow, those calls,
# then the on-final calls, each as two halves to put the list of outcomes between.
_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local n_target = tonumber(ARGV[5])
for i = 1, n_target do redis.call('RPUSH', KEYS[3], ARGV[5 + i]) end
if redis.call('LLEN', KEYS[2]) < tonumber(ARGV[3]) then return 1 end
local outcomes = '[' .. table.concat(redis.call('LRANGE', KEYS[2], 0, -1), ',') .. ']'
for i = 6 + n_target, #ARGV, 2 do redis.call('RPUSH', KEYS[3], ARGV[i] .. outcomes .. ARGV[i + 1]) end
redis.call('DEL', KEYS[2])
return 2
"""


@dataclass(frozen=True)
class Step:
    """What a target's call carries: its place in the run and what its completion triggers."""

    kind: str  # fanout | parallel
    run: str
    index: int
    total: int
    source: str  # the service that started the run
    cid: str
    req_ts_utc: str
    on_target: tuple[str, ...]
    on_final: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "run": self.run,
            "index": self.index,
            "total": self.total,
            "source": self.source,
            "cid": self.cid,
            "req_ts_utc": self.req_ts_utc,
            "on_target": list(self.on_target),
            "on_final": list(self.on_final),
        }

    @classmethod
    def from_json(cls, given: Any) -> Step | None:
        """None for anything this module did not write (the call is then malformed)."""
        try:
            names = (given["on_target"], given["on_final"])
            if not all(isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names):
                return None
            step = cls(
                str(given["kind"]),
                str(given["run"]),
                int(given["index"]),
                int(given["total"]),
                str(given["source"]),
                str(given["cid"]),
                str(given["req_ts_utc"]),
                tuple(names[0]),
                tuple(names[1]),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        return step if 0 <= step.index < step.total and step.kind in (FANOUT, PARALLEL) else None


def start(
    client: redis.Redis,
    cluster: str,
    kind: str,
    source: str,
    targets: Sequence[tuple[str, Any]],
    cid: str,
    on_target: tuple[str, ...],
    on_final: tuple[str, ...],
    *,
    key: bytes,
) -> str:
    """Queue every target of a new run at once, each call signed with `key`
    (zato.coord.signing.call_key); returns the run's id."""
    run = new_cid()
    now = utcnow()
    raws = []
    for index, (service, payload) in enumerate(targets):
        step = Step(kind, run, index, len(targets), source, cid, now, on_target, on_final)
        call = {"service": service, "payload": payload, "cid": cid, "pattern": step.to_json()}
        try:
            raws.append(queued_call(key, call))
        except (TypeError, ValueError) as e:
            raise CoordError(f"{kind} target {service}: the payload is not JSON-serialisable: {e}") from None
    with translate(kind):
        client.rpush(Keys(cluster).async_queue, *raws)  # one command: all of them or none
    return run


def outcome(step: Step, target: str, ok: bool, response: Any, exception: str | None) -> dict:
    """One target's outcome as Zato's callbacks receive it."""
    return {
        "source": step.source,
        "target": target,
        "response": response,
        "req_ts_utc": step.req_ts_utc,
        "resp_ts_utc": utcnow(),
        "ok": ok,
        "exception": exception,
        "cid": step.cid,
    }


def record(client: redis.Redis, cluster: str, step: Step, done: dict, *, key: bytes) -> int:
    """Record a target's outcome `done` (from outcome()) and queue what it triggers, signed
    with `key`. Returns 0 if that target was recorded before, 1 if recorded, 2 if it was the
    last one. A final callback's payload is the list of outcomes the script reads from Redis:
    its call signs that it is such a call (OUTCOMES), which service runs and the CID, not the
    payload."""
    keys = Keys(cluster)
    try:
        text = jsonenc.dumps(done)
    except (TypeError, ValueError) as e:  # a response JSON cannot carry: the outcome says so
        done = {**done, "response": None, "ok": False, "exception": f"response is not JSON: {e}"}
        text = jsonenc.dumps(done)
    calls = [
        queued_call(key, {"service": name, "payload": {**done, "phase": "on-target"}, "cid": step.cid})
        for name in step.on_target
    ]
    finals: list[str] = []
    if step.kind == FANOUT:
        for name in step.on_final:
            signed = sign_call(key, json.dumps({"service": name, "cid": step.cid, OUTCOMES: True}))
            head = json.dumps({**signed, "payload": None})  # the payload last: the script puts it there
            finals += [head[: -len("null}")], "}"]
    argv: list[str | int] = [step.index, text, step.total, RUN_TTL, len(calls), *calls, *finals]
    with translate(f"{step.kind} record"):
        script = client.register_script(_RECORD)
        return int(
            script(
                keys=[keys.pattern_done(step.run), keys.pattern_outcomes(step.run), keys.async_queue],
                args=argv,
            )
        )


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat()
