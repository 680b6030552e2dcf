"""Partitions and paused processes, on the lab's hosts (one fault per test, each healed after).

- The holder cut off from Redis alone (it still reaches the broker and the other servers):
  it stops its connectors by itself within renew_deadline, before any other server can take
  the lease; nothing is lost, no stale call is accepted.
- The holder paused (SIGSTOP) past the lease TTL, then resumed: a standby took over, the old
  holder's connectors, waking up, have no accepted call and take no outgoing message.
"""

from __future__ import annotations

from tests.hosts.checkers import amqp_counts, stale_accepted
from tests.support import wait_for


def all_accepted(lab, pub) -> bool:
    return amqp_counts(pub.published, lab.accepted())["lost"] == 0


def publish_and_settle(lab, pub, start: int, count: int) -> None:
    for n in range(start, start + count):
        pub.publish(n)
    wait_for(
        lambda: all_accepted(lab, pub), timeout=60, what=f"messages {start}..{start + count - 1} consumed"
    )


def test_holder_cut_from_redis_stops_before_anyone_takes_over(lab, channel):
    publish_and_settle(lab, channel, 0, 50)
    old, old_epoch = lab.wait_holder()
    assert lab.connectors(old), "the holder runs its AMQP channel connector"
    lab.cut_redis(old)
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
    print(f"redis cut {old} ({old_epoch}) -> {new} ({new_epoch}); {amqp_counts(channel.published, accepted)}")
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
