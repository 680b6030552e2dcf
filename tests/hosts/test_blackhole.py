"""The holder's host vanishes (every packet dropped, no RST): a standby takes the lease, the
new holder's AMQP channel consumes every message (lost 0), no call is accepted under an older
epoch after a newer one (stale 0), and every GET through the LB is answered: a request that
was connecting to the vanished host is redispatched after `timeout connect`, one the host had
received is found dead by TCP keep-alive (about 3 s) and replayed on another server; none waits
for `timeout server` (zato/lb/render.py).

One thing no load balancer can mend: a response the host was in the middle of sending when it
vanished (gunicorn writes the headers and the body with two sends; the drop can fall between
them). HAProxy has passed the headers on and cannot replay a request whose answer has begun, so
that client sees the body break off ("cut"): at most one per client connection, never a hang."""

from __future__ import annotations

import time

from tests.hosts.checkers import TIMEOUT, HttpChecker, amqp_counts, stale_accepted
from tests.support import wait_for


def all_accepted(lab, pub) -> bool:
    return amqp_counts(pub.published, lab.accepted())["lost"] == 0


def test_blackholed_holder_loses_nothing_and_hangs_no_request(lab, channel):
    for n in range(100):
        channel.publish(n)
    wait_for(lambda: all_accepted(lab, channel), timeout=60, what="the first 100 messages at the service")
    old, old_epoch = lab.wait_holder()
    http = HttpChecker(lab, lab.lb_url + "/zato/ping").start()
    time.sleep(1.0)
    t0 = time.monotonic()
    lab.net.blackhole(lab.host(old))
    try:
        for n in range(100, 300):
            channel.publish(n)
        new, new_epoch = lab.wait_holder(other_than=old, timeout=15)
        wait_for(lambda: all_accepted(lab, channel), timeout=60, what="every message at the service")
        time.sleep(max(0.0, t0 + TIMEOUT + 1 - time.monotonic()))  # a hung request would show now
    finally:
        http.stop()
        lab.net.heal(lab.host(old))
    counts = amqp_counts(channel.published, lab.accepted())
    web = http.counts(since=t0)
    print(f"blackhole {old}: {new} epoch {new_epoch}; amqp {counts}; http {web}")
    assert new_epoch > old_epoch
    assert counts["lost"] == 0
    assert stale_accepted(lab.accepted()) == 0
    assert web["timeout"] == 0 and web["failed"] == 0, web
    assert web["cut"] <= http.clients, web  # each connection had at most one response on its way
    assert web["worst"] < TIMEOUT, web
    assert web["ok"] > 0
