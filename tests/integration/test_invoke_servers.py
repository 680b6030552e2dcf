"""Which live server a connector's call goes to: calls made one at a time (an AMQP channel at
prefetch 1, an IBM MQ channel with max_in_flight 1) stay on one server for invoke.STAY seconds
instead of alternating, so each finds its server's worker and connection warm; calls that
overlap still go round-robin over the servers. Two real HTTP servers, registered as live
members in Redis (conn_support.FakeServer)."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.conn_support import SECRET, FakeServer, set_epoch
from tests.support import REDIS_URL, cleanup_redis, cluster_name, wait_for
from zato.common.signing import epoch_key
from zato.connector import invoke
from zato.connector.invoke import Invoker
from zato.coord.signing import member_key


@pytest.fixture
def two():
    cluster = cluster_name("amqp1-servers")
    set_epoch(cluster, 1)
    fakes = [FakeServer(cluster, "fake1"), FakeServer(cluster, "fake2")]
    client = redis.Redis.from_url(REDIS_URL)
    invoker = Invoker(client, cluster, epoch_key(SECRET, 1), 1, members=member_key(SECRET, cluster))
    wait_for(lambda: len(invoker.servers()) == 2, timeout=10, what="both servers live")
    yield invoker, fakes
    invoker.close()
    for fake in fakes:
        fake.close()
    client.close()
    cleanup_redis(cluster)


def test_calls_made_one_at_a_time_stay_on_one_server(two):
    invoker, fakes = two
    for n in range(20):
        assert invoker.invoke("demo.one", str(n).encode(), "text/plain").ok
    got = [len(fake.bodies("demo.one")) for fake in fakes]
    # Round-robin gave each server 10. Staying STAY (1 s) on a server, 20 quick calls move at
    # most once or twice even on a slow machine.
    assert max(got) >= 15, got


def test_calls_that_overlap_go_to_both_servers(two):
    invoker, fakes = two
    for fake in fakes:
        fake.held.add("demo.held")
    calls = [
        threading.Thread(target=invoker.invoke, args=("demo.held", b"x", "text/plain")) for _ in range(2)
    ]
    for call in calls:
        call.start()
    try:
        wait_for(lambda: sum(fake.active for fake in fakes) == 2, timeout=10, what="both calls running")
        assert [fake.active for fake in fakes] == [1, 1]
    finally:
        for fake in fakes:
            fake.release.set()
        for call in calls:
            call.join(10)


def test_a_server_that_fails_mid_stay_loses_the_calls_at_once(two, monkeypatch, caplog):
    """The server calls made one at a time stay on stops taking connections (its process gone,
    its membership entry not expired yet): the call that finds it so goes to the other server,
    and so do the calls after it, without waiting for STAY to run out (30 s here, so every
    call below is made within it however slow the machine)."""
    monkeypatch.setattr(invoke, "STAY", 30.0)
    invoker, fakes = two
    first = [invoker.invoke("demo.one", b"before", "text/plain") for _ in range(3)]
    assert all(r.ok for r in first) and len({r.server for r in first}) == 1, first
    stay = next(fake for fake in fakes if f"127.0.0.1:{fake.port}" == first[-1].server)
    other = next(fake for fake in fakes if fake is not stay)
    stay.httpd.shutdown()  # no more connections; its heartbeat goes on: still a live member
    stay.httpd.server_close()
    assert f"127.0.0.1:{stay.port}" in invoker.servers()
    after = [invoker.invoke("demo.one", b"after", "text/plain") for _ in range(5)]
    assert [(r.ok, r.server) for r in after] == [(True, f"127.0.0.1:{other.port}")] * 5
    assert stay.bodies("demo.one").count(b"after") == 0
    # tried once, by the first call after it failed; the later calls went to the other first
    tried = [
        r for r in caplog.records if r.getMessage().startswith(f"server 127.0.0.1:{stay.port} cannot be")
    ]
    assert len(tried) == 1, [r.getMessage() for r in tried]
    assert invoker.reach.late(time.monotonic()) == [f"127.0.0.1:{stay.port}"]


def test_a_call_that_fails_ends_the_stay_so_its_retry_goes_to_the_other_server(two):
    """One server's service fails (500: a bad deployment there) and the other's works: a
    message retried at once after the failure (a channel's requeue) goes to the other server,
    as round-robin sent it, not back to the failing one for the rest of STAY (which would take
    every try and park the message)."""
    invoker, fakes = two
    first = invoker.invoke("demo.one", b"warm", "text/plain")
    bad = next(fake for fake in fakes if f"127.0.0.1:{fake.port}" == first.server)
    good = next(fake for fake in fakes if fake is not bad)
    bad.fail.add("demo.one")
    tries = [invoker.invoke("demo.one", b"again", "text/plain") for _ in range(4)]
    assert tries[0].server == f"127.0.0.1:{bad.port}" and not tries[0].ok
    assert tries[1].ok and tries[1].server == f"127.0.0.1:{good.port}", tries
    assert sum(not r.ok for r in tries) <= 2, [(r.status, r.server) for r in tries]


def test_a_server_that_refuses_the_credentials_is_passed_over_and_never_fails_a_message(two, caplog):
    """A live server that answers 401 (of another release, whose calls are signed otherwise, or
    of another cluster secret) runs nothing: the next server takes the call, and when every
    server refuses, the call is NoServer (a channel gives its message back uncounted) instead
    of a failed delivery that would count towards parking the message."""
    invoker, (stranger, fake) = two
    stranger.secret = "another-release-or-secret"
    results = [invoker.invoke("demo.one", str(n).encode(), "text/plain") for n in range(10)]
    assert all(r.ok for r in results), results
    assert len(fake.bodies("demo.one")) == 10 and stranger.bodies("demo.one") == []
    said = f"server 127.0.0.1:{stranger.port} refused this connector's credentials (401"
    assert said in caplog.text
    fake.secret = "another-release-or-secret"
    with pytest.raises(invoke.NoServer, match=r"refused the call's credentials \(401"):
        invoker.invoke("demo.one", b"none takes it", "text/plain")
    assert stranger.bodies("demo.one") == [] and len(fake.bodies("demo.one")) == 10


def test_a_server_of_the_release_before_that_refuses_the_credentials_is_passed_over_too(two, caplog):
    """A server of the release before the refusals said so (no X-Zato-Call-Refused; a rolling
    upgrade) answers 401 with its envelope's 'bad or missing X-Zato-Signature': it ran nothing,
    so the call goes to the next server, as with a server of this release."""
    invoker, (stranger, fake) = two
    stranger.secret, stranger.old_release = "another-release-or-secret", True
    results = [invoker.invoke("demo.one", str(n).encode(), "text/plain") for n in range(10)]
    assert all(r.ok for r in results), results
    assert len(fake.bodies("demo.one")) == 10 and stranger.bodies("demo.one") == []
    assert f"server 127.0.0.1:{stranger.port} refused this connector's credentials (401" in caplog.text


def test_a_call_whose_answer_is_cut_after_the_service_ran_is_a_failed_call_not_run_again(two, caplog):
    """Both servers run the service, send the answer's headers and half its body, then close
    the connection (a worker killed after the service ran: its timeout, a crash). Before: the
    cut answer (IncompleteRead) was 'server cannot be reached', so the call went to the other
    server and ran there too, and then was NoServer (a channel gives its message back
    uncounted, to run a third time). Now the call is a failed one (UNUSABLE), run once."""
    invoker, fakes = two
    for fake in fakes:
        fake.cut.add("demo.cut")
    results = []
    for body in (b"first", b"second"):
        assert invoker.invoke("demo.one", b"warm", "text/plain").ok
        try:
            results.append(invoker.invoke("demo.cut", body, "text/plain"))
        except invoke.NoServer as e:
            results.append(e)
        runs = [len(fake.bodies("demo.cut")) for fake in fakes]
        assert sum(runs) == len(results), (body, runs, results)
    assert all(isinstance(r, invoke.Result) and r.status == invoke.UNUSABLE for r in results), results
    assert "it may have run there, so not run again at once" in results[0].text
    assert "began its answer and the connection failed before its end (IncompleteRead" in caplog.text
