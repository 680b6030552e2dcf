"""Zato's self.patterns (fanout, parallel, invoke_retry) on a real two-server cluster and Redis,
with the service module a Zato user writes (tests/zato_corpus/patterns_demo.py). Before, a
service using them failed: 'StartFanOut' object has no attribute 'patterns'.

Unlike Zato's, which keeps a fan-out's state in one server's memory, a fan-out here survives
the death of the server running one of its targets: the target runs again elsewhere and the
final callback gets each target's outcome once."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest
import redis
import requests

from tests.support import REDIS_URL, wait_for

CORPUS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zato_corpus")


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=2, workers=1)
    qs.start()
    with open(os.path.join(CORPUS, "patterns_demo.py")) as f:
        qs.deploy("patterns_demo", f.read())
    return qs


class DemoKeys(redis.Redis):
    """The Redis the demo writes to, remembering the ids the tests made (new_id) and each key a
    test read: each demo key ends with a test's own id (a run, a key, a CID), and the module
    deletes the keys of those ids alone at its end. Deleting every demo:patterns:* key removed
    the keys of a test still running in another process when pytest split this module over two
    (`pytest -n 2`, its default distribution): the fan-out test saw its first target's record
    gone (3 runs in 3)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()
        self.ids: set[str] = set()

    def new_id(self, prefix: str = "", n: int = 8) -> str:
        """A test's own id (a run, a key, a CID), its keys deleted at the module's end."""
        new = prefix + (uuid.uuid4().hex[:n].upper() if prefix else uuid.uuid4().hex[:n])
        self.ids.add(new)
        return new

    def get(self, name):
        self.read.add(name)
        return super().get(name)

    def llen(self, name):
        self.read.add(name)
        return super().llen(name)

    def lrange(self, name, start, end):
        self.read.add(name)
        return super().lrange(name, start, end)


@pytest.fixture(scope="module")
def kv():
    client = DemoKeys.from_url(REDIS_URL, decode_responses=True)
    yield client
    ids = client.ids | {key.rsplit(":", 1)[-1] for key in client.read}  # the CIDs a server made
    keys = [key for key in client.scan_iter("demo:patterns:*") if key.rsplit(":", 1)[-1] in ids]
    if keys:
        client.delete(*keys)
    client.close()


def invoke(cluster, base: str, service: str, payload: dict) -> requests.Response:
    """Zato's /zato/api/invoke/{service}, as zato-client's APIClient calls it."""
    s = cluster.settings("server1")
    auth = (s.invoke_username, s.invoke_password)
    return requests.post(f"{base}/zato/api/invoke/{service}", json=payload, auth=auth, timeout=30)


def records(kv, key: str) -> list:
    return [json.loads(x) for x in kv.lrange(f"demo:patterns:{key}", 0, -1)]


def test_a_fanout_gives_each_outcome_and_then_all_of_them(cluster, kv) -> None:
    run = kv.new_id()
    r = invoke(cluster, cluster.lb_url, "patterns.start-fanout", {"run": run})
    assert r.status_code == 200, r.text
    cid = r.json()["cid"]
    assert cid == r.json()["own_cid"]  # as in Zato: the caller's CID unless one is given
    final = wait_for(lambda: records(kv, f"on-final:{cid}"), what="the final callback")
    assert len(final) == 1
    outcomes = sorted(final[0], key=lambda o: o["target"])
    assert [(o["target"], o["ok"], o["response"], o["exception"]) for o in outcomes] == [
        ("patterns.get-price", True, {"shop": "a", "price": 10}, None),
        ("patterns.shop-down", False, None, "ValueError: shop b is down"),
    ]
    assert {o["source"] for o in outcomes} == {"patterns.start-fanout"} and {o["cid"] for o in outcomes} == {
        cid
    }
    assert all(o["req_ts_utc"] <= o["resp_ts_utc"] for o in outcomes)
    each = wait_for(lambda: len(records(kv, f"on-target:{cid}")) == 2 and records(kv, f"on-target:{cid}"))
    assert sorted((o["seen_shop"], o["phase"], o["ok"]) for o in each) == [
        ("a", "on-target", True),
        ("b", "on-target", False),
    ]
    assert {o["channel"] for o in each} == {"invoke-async"}
    assert kv.llen(f"demo:patterns:ran:{run}") == 1


def test_a_parallel_run_gives_each_outcome_under_the_cid_given(cluster, kv) -> None:
    run, cid = kv.new_id(), kv.new_id("K", 27)
    r = invoke(cluster, cluster.server_url("server2"), "patterns.start-parallel", {"run": run, "cid": cid})
    assert r.status_code == 200 and r.json() == {"cid": cid}, r.text
    each = wait_for(lambda: records(kv, f"on-target:{cid}"), what="the on-target callback")
    assert [(o["target"], o["response"], o["phase"]) for o in each] == [
        ("patterns.get-price", {"shop": "c", "price": 7}, "on-target")
    ]


def test_bad_pattern_arguments_are_the_callers_error(cluster, kv) -> None:
    """An unknown callback or an empty target list fails the caller at once, nothing queued."""
    module = """
from zato.server.service import Service

class Bad(Service):
    name = 'patterns.bad'

    def handle(self):
        which = self.request.payload['which']
        if which == 'no-targets':
            self.patterns.fanout.invoke({}, 'patterns.on-final')
        elif which == 'unknown-final':
            self.patterns.fanout.invoke({'patterns.get-price': {}}, 'patterns.nowhere')
        else:
            self.patterns.invoke_retry.invoke('patterns.flaky', {}, repeats=0)
"""
    cluster.deploy("patterns_bad", module)
    on_server1 = cluster.server_url("server1")
    wait_for(lambda: invoke(cluster, on_server1, "patterns.bad", {"which": "retry"}).status_code == 500)
    for which, said in (
        ("no-targets", "fanout: targets must be a dict of service name -> payload"),
        ("unknown-final", "patterns.nowhere"),
        ("retry", "repeats must be a whole number of at least 1"),
    ):
        r = invoke(cluster, on_server1, "patterns.bad", {"which": which})
        assert r.status_code == 500, (which, r.text)
        cid = r.json()["zato_env"]["cid"]
        assert f"service patterns.bad failed; see the server log for cid {cid}" in r.text
        wait_for(lambda m=said: m in cluster.server_logs(), what=said)  # with the traceback
    assert kv.llen("zato:" + cluster.cluster + ":async:queue") == 0


def test_invoke_retry_tries_again_until_the_service_succeeds_or_the_limit(cluster, kv) -> None:
    key = kv.new_id()
    r = invoke(cluster, cluster.lb_url, "patterns.retry", {"key": key, "fail": 2, "repeats": 3})
    assert r.status_code == 200 and r.json() == {"calls": 3}, r.text
    key = kv.new_id()
    r = invoke(cluster, cluster.lb_url, "patterns.retry", {"key": key, "fail": 5, "repeats": 2})
    assert r.status_code == 500, r.text
    assert "retry limit reached: patterns.flaky failed 2 time(s), 0.1 s apart (cid K" in r.text
    assert "flaky call" not in r.text  # the target's own errors stay in the server log
    assert "attempt 2 of 2 to invoke patterns.flaky failed: flaky call 2 of 5" in cluster.server_logs()
    assert kv.get(f"demo:patterns:flaky:{key}") == "2"


def test_invoke_retry_with_async_fallback_tells_its_callback(cluster, kv) -> None:
    key = kv.new_id()
    r = invoke(
        cluster, cluster.lb_url, "patterns.retry", {"key": key, "fail": 2, "repeats": 4, "async": True}
    )
    assert r.status_code == 200, r.text
    done = wait_for(lambda: records(kv, f"retry-done:{key}"), what="the retry callback")
    assert len(done) == 1
    assert (done[0]["ok"], done[0]["response"], done[0]["call_cid"]) == (True, {"calls": 3}, r.json()["cid"])
    assert (done[0]["target"], done[0]["source"], done[0]["retry_repeats"]) == (
        "patterns.flaky",
        "patterns.retry",
        4,
    )
    key = kv.new_id()
    r = invoke(
        cluster, cluster.lb_url, "patterns.retry", {"key": key, "fail": 9, "repeats": 2, "async": True}
    )
    done = wait_for(lambda: records(kv, f"retry-done:{key}"), what="the retry callback of a failure")
    assert (done[0]["ok"], done[0]["response"]) == (False, None)
    assert kv.get(f"demo:patterns:flaky:{key}") == "2"


def test_a_fanout_completes_when_the_server_running_a_target_dies(cluster, kv) -> None:
    """Last in this module: it kills a server. The slow target's server is killed while it
    runs; the target runs again on the other one, and the final callback comes once, with
    each target's outcome once."""
    run = kv.new_id()
    r = invoke(cluster, cluster.server_url("server1"), "patterns.start-fanout", {"run": run, "sleep": 3})
    assert r.status_code == 200, r.text
    cid = r.json()["cid"]
    started = wait_for(lambda: kv.lrange(f"demo:patterns:started:{run}", 0, -1), what="the slow target")
    runner = started[0]
    os.killpg(cluster.pid(runner), signal.SIGKILL)  # the arbiter, its workers, its supervisor
    survivor = "server2" if runner == "server1" else "server1"
    final = wait_for(lambda: records(kv, f"on-final:{cid}"), timeout=60, what="the final callback")
    assert kv.lrange(f"demo:patterns:started:{run}", 0, -1) == [runner, survivor]
    assert kv.lrange(f"demo:patterns:ran:{run}", 0, -1) == [f"a {survivor}"]
    assert len(final) == 1
    outcomes = sorted(final[0], key=lambda o: o["target"])
    assert [(o["target"], o["ok"]) for o in outcomes] == [
        ("patterns.get-price", True),
        ("patterns.shop-down", False),
    ]
