"""100 ms of latency on the holder's Redis link (50 ms +- 10 ms each way: what `tc netem
delay 100ms` on one host's interface adds to a round trip; this kernel has no netem, the lab's
forwarder delays) and 5% packet loss on its whole link (nftables): the lease stays where it is
(0 epoch changes, counted until 2 s after the fault) and every GET through the LB is answered.
At 5% loss the LB's health checks (500 ms timeout, fall 2) now and then mark the lossy server
DOWN; its requests in flight are let finish (with `on-marked-down shutdown-sessions`, which
the LB used before, they were closed: bench/faults slow-link, 3 of 2464 in 5 rounds)."""

from __future__ import annotations

import time

from tests.hosts.checkers import EpochWatch, HttpChecker


def test_slow_lossy_link_keeps_the_lease_where_it_is(lab):
    holder, epoch = lab.wait_holder()
    watch = EpochWatch(lab).start()
    http = HttpChecker(lab, lab.lb_url + "/zato/ping", clients=2).start()
    t0 = time.monotonic()
    lab.delay(holder, 50, 10)
    lab.net.loss(lab.host(holder), 5)
    try:
        time.sleep(8)
    finally:
        lab.net.heal(lab.host(holder))
        lab.delay(holder, 0, 0)
        http.stop()
    time.sleep(2.0)  # a holder that missed its deadline during the fault steps down by now
    changes = watch.stop()
    web = http.counts(since=t0)
    print(f"slow+lossy link of {holder}: epoch changes {changes}, http {web}")
    assert changes == 0 and watch.epochs == [epoch]  # it saw the epoch, and only that one
    assert lab.holder() == (holder, epoch)
    assert web["timeout"] == 0 and web["failed"] == 0 and web["cut"] == 0 and web["ok"] > 0, web
