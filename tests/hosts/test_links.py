"""Links between hosts that fail while the hosts themselves keep running.

- The lease holder cannot reach one other server (a partition between the two hosts), which
  still reaches Redis, the broker and the LB, so it stays a live member. Every message is
  consumed on the servers the holder reaches, none counted as a failed delivery (0 lost,
  0 failures, 0 epoch changes) but a batch whose request reached that server just before the
  cut: its answer cut, it may have run there, so it counts as one and runs again later.
  Before, every call that tried that server first waited for the connection (5 s), and a call
  on a connection kept from before the cut waited its whole answer timeout and was counted a
  failure: 200 messages took 66 s instead of 5 s.
"""

from __future__ import annotations

import os
import time

from tests.hosts.checkers import EpochWatch, amqp_counts, stale_accepted
from tests.hosts.lab import SERVER_PORT
from tests.hosts.test_partition import publish_and_settle
from tests.support import wait_for
from zato.coord import connector_stats


def channel_stats(lab, channel) -> dict:
    name = f"amqp-channel:{channel.channel}"
    return connector_stats.read(lab.redis(), lab.cluster, [name]).get(name, {})


def holder_log(lab, name: str) -> str:
    """The server's log, where its connectors log too."""
    with open(os.path.join(lab.server_dir(name), "logs", "server.log"), errors="replace") as f:
        return f.read()


def test_holder_cut_from_one_server_consumes_on_the_others_without_failures(lab, channel):
    # The premise: a server other than the holder took calls, so the holder keeps connections to
    # it. Calls one at a time stay on one server: under load a burst may not overlap and stay on
    # the holder and one other (seen: {s1, s3} of three), so `other` is one that took calls.
    for burst in (0, 1000, 2000, 3000):
        publish_and_settle(lab, channel, burst, 60)
        holder, epoch = lab.wait_holder()
        took = sorted({a["server"] for a in lab.accepted()} - {holder})
        if took:
            break
    assert took, f"the premise: a server other than the holder {holder} took calls"
    other = took[0]
    said_before = len(holder_log(lab, holder))
    before = channel_stats(lab, channel).get("failures", 0)
    watch = EpochWatch(lab).start()
    for n in range(60, 90):  # calls in flight, and connections to `other` kept, as the cut comes
        channel.publish(n)
    lab.net.partition(lab.host(holder), lab.host(other))
    try:
        for n in range(90, 250):
            channel.publish(n)
            if n >= 120:  # 90..119 at once: overlapping calls go round-robin, so one takes a
                time.sleep(0.01)  # connection to `other` kept from the burst before the cut
        wait_for(
            lambda: amqp_counts(channel.published, lab.accepted())["lost"] == 0,
            timeout=25,
            what=f"every message consumed while {holder} cannot reach {other}",
        )
    finally:
        lab.net.heal(lab.host(holder))
    changes = watch.stop()
    accepted = lab.accepted()
    # The premise: calls went to `other` as the cut came, and one on a connection kept from
    # before the cut (data or keep-alive probes unacknowledged: ETIMEDOUT, errno 110) failed and
    # went on. Calls made one at a time stay on one server (invoke.STAY): only overlapping
    # ones (the bursts of 60..89 and 90..119) go round-robin over every server.
    near_cut = sorted(a["item"]["n"] for a in accepted if a["server"] == other and 60 <= a["item"]["n"] < 90)
    dead_link = (
        f"server {lab.host(other).ip}:{SERVER_PORT} cannot be reached from here (TimeoutError: [Errno 110]"
    )
    kept = [line for line in holder_log(lab, holder)[said_before:].splitlines() if dead_link in line]
    print(f"{other} took {near_cut} of 60..89; calls on kept connections to it failed {len(kept)} times")
    # (whether `other` took any of 60..89 is printed, not asserted: under load those calls may
    # not overlap, and the connections kept from 0..59 are what the cut must catch)
    assert kept, f"the premise: a call on a connection to {other} kept from before the cut"
    counts = amqp_counts(channel.published, accepted)
    failures = channel_stats(lab, channel).get("failures", 0) - before
    print(f"{holder} cut from {other}: {counts}, failures {failures}, epoch changes {changes}")
    assert counts["lost"] == 0
    if failures:  # a batch whose request reached `other` just before the cut, its answer cut by it:
        # it ran there, so it is a failed delivery run again later (a duplicate, as at-least-once
        # allows), not the call on a dead kept connection this test is about (seen once in 4 runs)
        last = channel_stats(lab, channel).get("last_error", "")
        assert "the answer was cut" in last and "may have run there" in last, last
        assert failures <= counts["duplicates"], (failures, counts)
    assert changes == 0 and lab.holder() == (holder, epoch)
    assert stale_accepted(accepted) == 0
