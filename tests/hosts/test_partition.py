"""Partitions and paused processes, on the lab's hosts (one fault per test, each healed after).

- The holder cut off from Redis alone (it still reaches the broker and the other servers),
  both ways, or one way (Redis gets what it sends, so its renewals may still extend the
  lease, but no answer comes back): it stops its connectors by itself within renew_deadline,
  before any other server can take the lease; nothing is lost, no stale call is accepted.
- The holder cut off from the broker alone (it still reaches Redis): tests/hosts/test_broker_reach.py.
- The holder paused (SIGSTOP) past the lease TTL, then resumed: a standby took over, the old
  holder's connectors, waking up, have no accepted call and take no outgoing message.
- A host cut off from the ODB: a query on a connection opened before the cut fails within
  seconds (zato.odb.engine.PG_NETWORK), instead of waiting minutes for the kernel to give up.
- Every server cut off from the ODB while clients call a secured channel whose service uses an
  outgoing connection: every call is answered, none waits for the ODB (the workers use the
  definitions they read before and try the ODB in the background), and they read it again once
  it is back.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.hosts.checkers import TIMEOUT, HttpChecker, amqp_counts, stale_accepted
from tests.support import wait_for


def all_accepted(lab, pub) -> bool:
    return amqp_counts(pub.published, lab.accepted())["lost"] == 0


def publish_and_settle(lab, pub, start: int, count: int) -> None:
    for n in range(start, start + count):
        pub.publish(n)
    wait_for(
        lambda: all_accepted(lab, pub), timeout=60, what=f"messages {start}..{start + count - 1} consumed"
    )


@pytest.mark.parametrize("only", ["", "in"], ids=["both-ways", "one-way"])
def test_holder_cut_from_redis_stops_before_anyone_takes_over(lab, channel, only):
    publish_and_settle(lab, channel, 0, 50)
    old, old_epoch = lab.wait_holder()
    assert lab.connectors(old), "the holder runs its AMQP channel connector"
    lab.cut_redis(old, only)
    try:
        for n in range(50, 150):
            channel.publish(n)
        # the moment another server holds the lease, the cut holder runs no connector any more
        new, new_epoch = wait_for(
            lambda: (h := lab.holder()) and h[0] != old and (h, lab.connectors(old)),
            timeout=20,
            interval=0.01,
            what="a new holder",
        )[0]
        still_running = lab.connectors(old)
        wait_for(lambda: all_accepted(lab, channel), timeout=60, what="every message consumed")
    finally:
        lab.net.heal(lab.host(old))
    accepted = lab.accepted()
    counts = amqp_counts(channel.published, accepted)
    print(f"redis cut {only or 'both'} {old} ({old_epoch}) -> {new} ({new_epoch}); {counts}")
    assert still_running == []
    assert new_epoch > old_epoch
    assert stale_accepted(accepted) == 0
    last_old = max(a["t"] for a in accepted if a["epoch"] == old_epoch)
    first_new = min(a["t"] for a in accepted if a["epoch"] == new_epoch)
    assert last_old < first_new


def test_paused_holder_resumes_without_acting(lab, channel):
    publish_and_settle(lab, channel, 0, 50)
    old, old_epoch = lab.wait_holder()
    lab.pause(old)
    try:
        for n in range(50, 150):
            channel.publish(n)
        new, new_epoch = lab.wait_holder(other_than=old, timeout=20)
        wait_for(lambda: all_accepted(lab, channel), timeout=60, what="every message consumed")
    finally:
        lab.resume(old)
    wait_for(
        lambda: not lab.connectors(old), timeout=20, what="the resumed old holder to stop its connectors"
    )
    publish_and_settle(lab, channel, 150, 20)
    accepted = lab.accepted()
    print(f"paused {old} ({old_epoch}) -> {new} ({new_epoch}); {amqp_counts(channel.published, accepted)}")
    assert new_epoch > old_epoch
    assert stale_accepted(accepted) == 0
    assert lab.holder()[0] == new


def test_a_query_over_a_dead_link_to_the_odb_fails_in_seconds(lab):
    from zato.odb.engine import make_engine

    client = lab.host("client")
    odb_ip = urlsplit(lab.odb_url).hostname
    outcome: dict = {}

    def query_across_the_cut() -> None:
        engine = make_engine(lab.odb_url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1")).scalar()  # the connection is up before the cut
                lab.net.cut_port(client, odb_ip, 5432)
                t0 = time.monotonic()
                try:
                    conn.execute(text("SELECT 2")).scalar()
                    outcome["answered"] = True
                except OperationalError as e:
                    outcome["failed"] = str(e).strip().splitlines()[0]
                outcome["seconds"] = time.monotonic() - t0
        finally:
            engine.dispose(close=False)  # the pooled connection is dead: drop it, send nothing

    worker = lab.net.in_host(client, query_across_the_cut)
    try:
        worker.join(90)  # without the libpq settings it waits for TCP's retransmissions: ~15 min
    finally:
        lab.net.heal(client)
    print(f"ODB cut from {client.name}: {outcome}")
    assert not worker.is_alive(), "the query over the dead link was still waiting after 90 s"
    assert "failed" in outcome and outcome["seconds"] < 60, outcome


def server_logs(lab) -> str:
    text = ""
    for name in lab.names:
        with open(os.path.join(lab.server_dir(name), "logs", "server.log"), errors="replace") as f:
            text += f.read()
    return text


def test_every_server_cut_off_from_the_odb_serves_on_without_waiting_for_it(lab):
    """Before, a worker held every request while one read of the ODB waited for
    connect_timeout (psycopg came from the arbiter, imported before gevent's patching), and a
    service's outgoing connection failed (500) once its definition was 2 s old."""
    odb_ip = urlsplit(lab.odb_url).hostname
    lab.cli("conn create http-outgoing", "--name", "lab-lb", "--address", lab.lb_url,
            "--url-path", "/zato/ping")  # fmt: skip
    lab.cli("conn create security", "--name", "lab-key", "--type", "apikey", "--password", "k-1")
    lab.cli("channel create", "--name", "lab-fetch", "--url-path", "/lab/fetch", "--service", "lab.fetch",
            "--security", "lab-key")  # fmt: skip
    url, headers = lab.lb_url + "/lab/fetch", {"X-API-Key": "k-1"}
    try:
        wait_for(
            lambda: (
                {requests.get(url, headers=headers, timeout=5).json().get("server") for _ in range(12)}
                == set(lab.names)
            ),
            timeout=30,
            what="every server serving /lab/fetch",
        )
        http = HttpChecker(lab, url, headers=headers).start()
        time.sleep(1.0)
        t0 = time.monotonic()
        for name in lab.names:
            lab.net.cut_port(lab.host(name), odb_ip, 5432)
        try:
            # past a dead pooled connection's keepalives (about 11 s) and a new connection's
            # connect_timeout (10 s): each worker tried the ODB more than once meanwhile
            wait_for(lambda: server_logs(lab).count("cannot read security definition")
                     >= len(lab.names), timeout=40, what="every server noticing the ODB away")  # fmt: skip
            time.sleep(25)
        finally:
            for name in lab.names:
                lab.net.heal(lab.host(name))
        time.sleep(2)
        http.stop()
        web = http.counts(since=t0)
        print(f"ODB cut from every server: {web}")
        assert web["failed"] == 0 and web["timeout"] == 0, web
        assert web["worst"] < TIMEOUT and web["ok"] > 100, web
        wait_for(lambda: "the ODB answers again" in server_logs(lab), timeout=30, what="the ODB read again")
    finally:
        lab.cli("channel delete", "--name", "lab-fetch")
        lab.cli("conn delete security", "--name", "lab-key")
        lab.cli("conn delete http-outgoing", "--name", "lab-lb")


def test_a_takeover_while_the_odb_answers_slowly_consumes(lab, channel):
    """The ODB 100 ms away from every server (each way) when the holder stops (paused): the
    next holder claims its epoch in the ODB (zato.odb.epoch) after taking the lease in Redis,
    which takes several round trips. Before, the hold was timed from before the claim, so
    each new holder missed its renew deadline before its first renewal and stepped down, and
    the next did the same: 5 acquisitions in 30 s, not one message consumed. Now a renewal
    after a slow claim starts the hold (zato.coord.lease.LeaseKeeper)."""
    publish_and_settle(lab, channel, 0, 30)
    old, old_epoch = lab.wait_holder()
    lab.delay_odb(100)
    lab.pause(old)
    try:
        for n in range(30, 80):
            channel.publish(n)
        wait_for(lambda: all_accepted(lab, channel), timeout=30, what="every message consumed, the ODB slow")
        new, new_epoch = lab.wait_holder(other_than=old, timeout=10)
    finally:
        lab.delay_odb(0)
        lab.resume(old)
    wait_for(
        lambda: not lab.connectors(old), timeout=20, what="the resumed old holder to stop its connectors"
    )
    accepted = lab.accepted()
    counts = amqp_counts(channel.published, accepted)
    print(f"ODB slow, {old} ({old_epoch}) paused -> {new} ({new_epoch}); {counts}")
    assert new_epoch > old_epoch
    assert stale_accepted(accepted) == 0
