"""invoke_async's queue on a real Redis: a call a dead worker had taken (its process gone, or
its server out of the cluster) runs again elsewhere, a clean stop hands back what it took, and
a live worker's calls are left alone."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

import pytest
import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name
from zato.coord.async_invoke import MAX_DEATHS, AsyncTaker, decode, died_under, push, signed, worker_id
from zato.coord.keys import Keys
from zato.coord.signing import call_key

KEY = call_key("the-test-cluster-secret", "async")  # any key: what matters is that writer and reader share it


@pytest.fixture
def env():
    cluster = cluster_name("async")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield cluster, client
    cleanup_redis(cluster)
    client.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_workers_calls_run_again_and_live_ones_are_left(env) -> None:
    """s1 left the cluster (no member key): its worker is dead wherever it ran. s2 is live.
    On s3 (this host), a worker whose process is gone is dead, a live process is not."""
    cluster, client = env
    keys = Keys(cluster)
    client.set(keys.member("s2"), "{}")  # s2 is a live member; s1 is not
    dead_pid = _dead_pid()
    for n in range(1, 5):
        push(client, cluster, "jobs.run", {"n": n}, f"K{n}", key=KEY)
    gone_server = AsyncTaker(client, cluster, worker_id("s1", 11))
    live_server = AsyncTaker(client, cluster, worker_id("s2", 22))
    gone_process = AsyncTaker(client, cluster, worker_id("s3", dead_pid))
    sibling = AsyncTaker(client, cluster, worker_id("s3", os.getppid()))  # a live process here
    reaper = AsyncTaker(client, cluster, worker_id("s3", os.getpid()))
    takers = (gone_server, live_server, gone_process, sibling, reaper)
    for taker in takers:
        taker.register()
    taken = [decode(t.take(0.1)).cid for t in takers[:4]]
    assert taken == ["K1", "K2", "K3", "K4"]
    assert reaper.reap() == 2  # s1's and the dead process's calls; s2's and the sibling's stay
    again = sorted(decode(reaper.take(0.1)).cid for _ in range(2))
    assert again == ["K1", "K3"]
    assert reaper.take(0.1) is None
    assert client.smembers(keys.async_workers) == {t.worker_id for t in (live_server, sibling, reaper)}
    live_server.close()  # a clean stop hands back the call it took and did not run
    assert decode(reaper.take(0.1)).cid == "K2"
    assert live_server.worker_id not in client.smembers(keys.async_workers)


def test_when_every_other_server_is_live_only_dead_processes_here_are_reaped(env) -> None:
    """The usual case, answered by one EXISTS over the member keys: s1 and s2 are live, so
    their workers' calls stay; a dead process on this host (s3) still has its calls run again."""
    cluster, client = env
    keys = Keys(cluster)
    client.set(keys.member("s1"), "{}")
    client.set(keys.member("s2"), "{}")
    for n in range(1, 4):
        push(client, cluster, "jobs.run", {"n": n}, f"K{n}", key=KEY)
    takers = [AsyncTaker(client, cluster, worker_id(s, pid)) for s, pid in (("s1", 11), ("s2", 22))]
    takers.append(AsyncTaker(client, cluster, worker_id("s3", _dead_pid())))
    for taker in takers:
        taker.register()
        taker.take(0.1)
    reaper = AsyncTaker(client, cluster, worker_id("s3", os.getpid()))
    assert reaper.reap() == 1
    assert decode(reaper.take(0.1)).cid == "K3"
    assert [client.llen(keys.async_processing(t.worker_id)) for t in takers[:2]] == [1, 1]


def test_names_this_project_does_not_write_are_left_alone(env) -> None:
    cluster, client = env
    keys = Keys(cluster)
    client.sadd(keys.async_workers, "no-pid-here", "s9:abc")
    push(client, cluster, "jobs.run", {}, "K9", key=KEY)
    client.lmove(keys.async_queue, keys.async_processing("no-pid-here"), "LEFT", "RIGHT")
    reaper = AsyncTaker(client, cluster, worker_id("s3", os.getpid()))
    assert reaper.reap() == 0
    assert client.llen(keys.async_processing("no-pid-here")) == 1


def test_a_payload_json_cannot_hold_is_refused_at_once(env) -> None:
    cluster, client = env
    from zato.common.errors import CoordError

    with pytest.raises(CoordError, match="not JSON-serialisable"):
        push(client, cluster, "jobs.run", {"when": object()}, "K3", key=KEY)
    assert client.llen(Keys(cluster).async_queue) == 0


def test_a_list_left_under_a_reused_pid_goes_back_to_the_queue(env) -> None:
    """A server restarted on the same host may give a worker the pid a dead worker had: the
    new worker hands that list back when it starts, instead of sitting on it."""
    cluster, client = env
    keys = Keys(cluster)
    me = worker_id("s3", os.getpid())
    push(client, cluster, "jobs.run", {}, "K7", key=KEY)
    client.lmove(keys.async_queue, keys.async_processing(me), "LEFT", "RIGHT")  # the old process took it
    taker = AsyncTaker(client, cluster, me)
    assert taker.register() == 1
    assert decode(taker.take(0.1)).cid == "K7"
    assert taker.register() == 0  # already known: what it took now stays its own
    assert client.llen(keys.async_processing(me)) == 1


def test_a_call_under_which_workers_keep_dying_is_parked_not_run_for_ever(env, caplog) -> None:
    """A service that ends its process (os._exit, a crash, the worker's timeout) would take
    down one worker after another: its third dead worker parks it, whole, with its count."""
    cluster, client = env
    keys = Keys(cluster)
    push(client, cluster, "jobs.crash", {"n": 1}, "K1", key=KEY)
    reaper = AsyncTaker(client, cluster, worker_id("s3", os.getpid()))
    for deaths in range(1, MAX_DEATHS + 1):
        victim = AsyncTaker(client, cluster, worker_id("s3", _dead_pid()))
        victim.register()
        call = decode(victim.take(0.1))
        assert (call.cid, call.deaths) == ("K1", deaths - 1)
        with caplog.at_level(logging.ERROR, logger="zato.async"):
            assert reaper.reap() == (0 if deaths == MAX_DEATHS else 1)
    assert client.llen(keys.async_queue) == 0
    parked = decode(client.lindex(keys.async_parked, 0))
    assert (parked.service, parked.payload, parked.cid, parked.deaths) == ("jobs.crash", {"n": 1}, "K1", 3)
    assert signed(KEY, parked.raw)  # the reapers count deaths without a key: still the call that was signed
    assert f"call K1 of service jobs.crash parked in {keys.async_parked}: 3 workers died" in caplog.text


def test_two_reapers_of_one_dead_worker_hand_each_call_back_once(env) -> None:
    cluster, client = env
    keys = Keys(cluster)
    for n in range(300):
        push(client, cluster, "jobs.run", {"n": n}, f"K{n}", key=KEY)
    dead = AsyncTaker(client, cluster, worker_id("s3", _dead_pid()))
    dead.register()
    for _ in range(300):
        dead.take(0.1)
    here = [AsyncTaker(client, cluster, worker_id("s3", pid)) for pid in (os.getpid(), os.getppid(), 1)]
    threads = [threading.Thread(target=t.reap) for t in here]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = [decode(raw) for raw in client.lrange(keys.async_queue, 0, -1)]
    assert sorted(c.cid for c in again) == sorted(f"K{n}" for n in range(300))  # each once
    assert {c.deaths for c in again} == {1}


def test_a_call_with_callbacks_round_trips_and_odd_callbacks_make_it_malformed(env) -> None:
    """What Redis holds is not trusted: `"callbacks": "abc"` must not become three callbacks."""
    cluster, client = env
    push(client, cluster, "jobs.run", {"n": 1}, "K1", ("jobs.done", "jobs.audit"), key=KEY)
    call = decode(client.lpop(Keys(cluster).async_queue))
    assert (call.service, call.cid, call.callbacks) == ("jobs.run", "K1", ("jobs.done", "jobs.audit"))
    for odd in ("abc", [1], {"a": 1}):
        raw = json.dumps({"service": "jobs.run", "payload": None, "cid": "K2", "callbacks": odd})
        assert decode(raw) is None, odd
    endless = '{"service": "jobs.run", "payload": null, "cid": "K3", "deaths": Infinity}'
    assert decode(endless) is None and died_under(endless) == (endless, 0)  # was OverflowError


def test_a_pattern_target_recorded_twice_counts_once_and_its_final_is_queued_once(env) -> None:
    """A target runs again when its worker died before it acked: its outcome, its on-target
    callbacks and the run's final callbacks must not come twice (zato.coord.patterns)."""
    from zato.coord import patterns

    cluster, client = env
    keys = Keys(cluster)
    run = patterns.start(
        client, cluster, patterns.FANOUT, "shop.ask", [("shop.a", {"n": 1}), ("shop.b", {"n": 2})], "KCID",
        ("shop.each",), ("shop.all",), key=KEY,
    )  # fmt: skip
    calls = [decode(raw) for raw in client.lrange(keys.async_queue, 0, -1)]
    assert [(c.service, c.payload, c.cid, c.step.index, c.step.total) for c in calls] == [
        ("shop.a", {"n": 1}, "KCID", 0, 2),
        ("shop.b", {"n": 2}, "KCID", 1, 2),
    ]
    assert {c.step.run for c in calls} == {run}
    client.delete(keys.async_queue)
    first, second = (c.step for c in calls)
    a = patterns.outcome(first, "shop.a", True, {"price": 1}, None)
    assert patterns.record(client, cluster, first, a, key=KEY) == 1
    assert patterns.record(client, cluster, first, a, key=KEY) == 0  # run again: not counted
    b = patterns.outcome(second, "shop.b", False, None, "ValueError: down")
    assert patterns.record(client, cluster, second, b, key=KEY) == 2
    assert patterns.record(client, cluster, second, b, key=KEY) == 0  # after the run ended too
    queued = [decode(raw) for raw in client.lrange(keys.async_queue, 0, -1)]
    assert [c.service for c in queued] == ["shop.each", "shop.each", "shop.all"]
    assert all(signed(KEY, c.raw) for c in [*calls, *queued])  # the final one too, outcomes put in by Redis
    assert [c.payload["target"] for c in queued[:2]] == ["shop.a", "shop.b"]
    assert queued[0].payload["phase"] == "on-target" and queued[0].payload["response"] == {"price": 1}
    assert [(o["target"], o["ok"], o["exception"]) for o in queued[2].payload] == [
        ("shop.a", True, None),
        ("shop.b", False, "ValueError: down"),
    ]
    assert client.exists(keys.pattern_outcomes(run)) == 0 and client.ttl(keys.pattern_done(run)) > 0


def test_a_call_whose_pattern_this_project_did_not_write_is_malformed(env) -> None:
    assert decode(json.dumps({"service": "a", "cid": "K", "pattern": {"run": "r"}})) is None
    step = {"kind": "fanout", "run": "r", "index": 2, "total": 2, "source": "s", "cid": "K",
            "req_ts_utc": "", "on_target": [], "on_final": ["f"]}  # fmt: skip
    assert decode(json.dumps({"service": "a", "cid": "K", "pattern": step})) is None  # index past total
    step["index"] = 1
    assert decode(json.dumps({"service": "a", "cid": "K", "pattern": step})).step.index == 1


def test_only_calls_signed_with_the_key_verify(env) -> None:
    """A worker runs a queued call only if it verifies (zato.server.async_worker): one written
    by someone without the cluster secret, or a signed one with another service, payload,
    CID or callbacks, does not; nor does a final callback's head put on another service."""
    from zato.coord import patterns

    cluster, client = env
    queue = Keys(cluster).async_queue
    push(client, cluster, "jobs.run", {"n": 1}, "K1", ("jobs.done",), key=KEY)
    raw = client.lpop(queue)
    assert signed(KEY, raw) and not signed(call_key("another-cluster-secret", "async"), raw)
    doc = json.loads(raw)
    for field, value in (("service", "jobs.other"), ("payload", {"n": 2}), ("cid", "K2"), ("callbacks", [])):
        assert not signed(KEY, json.dumps({**doc, field: value})), field
    assert not signed(KEY, json.dumps({k: v for k, v in doc.items() if k != "sig"}))
    assert not signed(KEY, json.dumps({**doc, "outcomes": True}))  # would leave the payload unsigned
    assert signed(KEY, json.dumps({**doc, "deaths": 2}))  # the reapers' count: not signed
    assert not signed(KEY, "[1]") and not signed(KEY, "{")
    step = patterns.Step(patterns.FANOUT, "R", 0, 1, "shop.ask", "KCID", "now", (), ("shop.all",))
    done = patterns.outcome(step, "shop.a", True, 1, None)
    assert patterns.record(client, cluster, step, done, key=KEY) == 2
    final = json.loads(client.lpop(queue))
    assert final["service"] == "shop.all" and signed(KEY, json.dumps(final))
    assert not signed(KEY, json.dumps({**final, "service": "jobs.run"}))
