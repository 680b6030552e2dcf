"""A lease holder that reaches Redis but not the broker (one host's link to RabbitMQ cut, both
ways, every other link clean), on the lab's hosts (zato.connector.handover):

- The holder's own link cut: its AMQP channel notices once the broker's host acknowledged
  nothing sent for twice the heartbeat (2 x 2 s, TCP_USER_TIMEOUT: the connection ends with
  ETIMEDOUT, and the log says what that means; before, pika's heartbeat check noticed, 7-14 s
  after the cut, and the hand-over came that much later), reconnects in vain, and after 10 s
  of that the holder hands the lease over; another server consumes every message while the
  link is still cut (before, the holder kept the lease and nothing was consumed until the
  link came back).
- A standby cut off from the broker wins the lease (the holder's host vanished, the healthy
  standby was paused): it hands the lease on, and a server that reaches the broker consumes
  every message while the cut lasts (before: not one of 100 in 60 s).
- Every server cut off from the broker: the lease moves once and then stays (the next holder
  fails the same broker, so the broker is away, not one server's link), `zato cluster status`
  exits 3 naming the connector, and every message is consumed once the links are back.

Lost 0 and stale 0 (no call accepted under an older epoch after a newer one) in each.
"""

from __future__ import annotations

import datetime
import os
import time

from tests.hosts.checkers import EpochWatch, amqp_counts, stale_accepted
from tests.support import wait_for, zato

HANDED_OVER = "handing the lease over to"


def all_accepted(lab, pub) -> bool:
    return amqp_counts(pub.published, lab.accepted())["lost"] == 0


class Logs:
    """What each server logged since this was made (the lab's servers serve every test)."""

    def __init__(self, lab):
        self.lab = lab
        self.start = {name: len(self._read(name)) for name in lab.names}

    def _read(self, name: str) -> str:
        with open(os.path.join(self.lab.server_dir(name), "logs", "server.log"), errors="replace") as f:
            return f.read()

    def of(self, name: str) -> str:
        return self._read(name)[self.start[name] :]

    def all(self) -> str:
        return "".join(self.of(name) for name in self.lab.names)

    def lease(self) -> str:
        """Each server's lines about the lease since, by time: why an epoch changed."""
        said = (
            "lease epoch",
            "lost lease",
            "the lease over",
            "keeping the lease",
            "acting as connector server",
        )
        lines = [
            f"{line[:23]} {name}{line[23:]}"
            for name in self.lab.names
            for line in self.of(name).splitlines()
            if any(s in line for s in said)
        ]
        return "\n".join(sorted(lines))


def forget_hand_overs(lab) -> Logs:
    """Each test starts with no server, and no connector, noted for a hand-over of the lease."""
    lab.forget_hand_overs()
    return Logs(lab)


def consumed_first(lab, channel, n: int) -> None:
    for i in range(n):
        channel.publish(i)
    wait_for(lambda: all_accepted(lab, channel), timeout=60, what=f"the first {n} messages consumed")


def cluster_status(lab):
    return zato("cluster", "status", lab.server_dir(lab.names[0]), check=False)


def test_a_holder_cut_from_the_broker_hands_the_lease_to_a_server_that_reaches_it(lab, channel):
    logs = forget_hand_overs(lab)
    consumed_first(lab, channel, 50)
    old, old_epoch = lab.wait_holder()
    cut_at = datetime.datetime.now()
    lab.cut_broker(old)
    try:
        for n in range(50, 150):
            channel.publish(n)
        new, new_epoch = lab.wait_holder(other_than=old, timeout=60)
        wait_for(lambda: all_accepted(lab, channel), timeout=60, what=f"all consumed, {old} cut off")
    finally:
        lab.net.heal(lab.host(old))
    accepted = lab.accepted()
    counts = amqp_counts(channel.published, accepted)
    print(f"broker cut {old} ({old_epoch}) -> {new} ({new_epoch}); {counts}")
    assert new_epoch > old_epoch
    assert stale_accepted(accepted) == 0
    assert f"connector amqp-channel:{channel.channel} has been reconnecting for" in logs.of(old)
    assert HANDED_OVER in logs.of(old)
    lost = f"amqp-channel {channel.channel!r}: connection lost ("
    noticed = [line for line in logs.of(old).splitlines() if lost in line]
    assert noticed, logs.of(old)[-3000:]
    print(f"{old} noticed the cut {seconds_after(cut_at, noticed[0]):.1f} s after it: {noticed[0]}")
    assert "Connection timed out" in noticed[0], noticed[0]
    assert "(the broker's host acknowledged nothing sent for 4 s, twice the heartbeat: the link" in noticed[0]


def seconds_after(then: datetime.datetime, line: str) -> float:
    """Seconds from `then` to a server.log line's time (its first 23 characters)."""
    return (datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") - then).total_seconds()


def test_a_standby_cut_from_the_broker_that_wins_the_lease_hands_it_on(lab, channel):
    logs = forget_hand_overs(lab)
    consumed_first(lab, channel, 50)
    old, old_epoch = lab.wait_holder()
    cut, healthy = [name for name in lab.names if name != old]
    lab.cut_broker(cut)
    lab.pause(healthy)  # so the standby cut off from the broker is the one that takes the lease
    try:
        lab.net.blackhole(lab.host(old))
        won, won_epoch = lab.wait_holder(other_than=old, timeout=30)
        lab.resume(healthy)
        lab.net.heal(lab.host(old))
        assert won == cut
        for n in range(50, 150):
            channel.publish(n)
        wait_for(lambda: all_accepted(lab, channel), timeout=60, what=f"all consumed, {cut} cut off")
        new, new_epoch = lab.holder()
    finally:
        lab.resume(healthy)
        lab.net.heal(lab.host(old))
        lab.net.heal(lab.host(cut))
    accepted = lab.accepted()
    counts = amqp_counts(channel.published, accepted)
    print(f"{old} vanished, {cut} (cut from the broker, epoch {won_epoch}) -> {new} ({new_epoch}); {counts}")
    assert new != cut and new_epoch > won_epoch
    assert stale_accepted(accepted) == 0
    assert HANDED_OVER in logs.of(cut)


def test_every_server_cut_from_the_broker_moves_the_lease_once_at_most(lab, channel):
    logs = forget_hand_overs(lab)
    consumed_first(lab, channel, 20)
    first, epoch = lab.wait_holder()
    watch = EpochWatch(lab).start()
    for name in lab.names:
        lab.cut_broker(name)
    try:
        for n in range(20, 70):
            channel.publish(n)
        said = wait_for(
            lambda: "keeping the lease" in logs.all(),
            timeout=120,
            what="the last holder to keep the lease",
        )
        status = wait_for(
            lambda: (s := cluster_status(lab)).returncode == 3 and s.stdout, timeout=30, interval=0.5,
            what="zato cluster status to call the reconnecting connector a problem",
        )  # fmt: skip
        time.sleep(15)  # more than the 10 s after which a holder hands over: it does not now
    finally:
        for name in lab.names:
            lab.net.heal(lab.host(name))
    changes = watch.stop()
    wait_for(lambda: all_accepted(lab, channel), timeout=60, what="every message consumed after the cut")
    accepted = lab.accepted()
    counts = amqp_counts(channel.published, accepted)
    holder = lab.holder()
    print(f"broker cut from every server: {first} ({epoch}) -> {holder}, epoch changes {changes}; {counts}")
    print(logs.lease())
    assert said
    problem = [line for line in status.splitlines() if line.startswith("problem:")]
    assert len(problem) == 1 and f"connector amqp-channel:{channel.channel} on " in problem[0], status
    assert "has been reconnecting for" in problem[0], status
    assert "nothing is consumed or sent meanwhile: " in problem[0], status
    # the lease moves once for the broker's outage; a holder that the machine's load kept from
    # renewing within renew_deadline (1 s) steps down, and that move is not the broker's (seen
    # once on CI, epoch changes 4, in a whole run on 2 cores: the lines below say which it was)
    story = f"epochs {watch.epochs}:\n{logs.lease()}"
    handovers = logs.all().count(HANDED_OVER)
    stepped_down = sum(logs.all().count(s) for s in (": stepping down", "lost lease: "))
    assert handovers <= 1, story
    assert changes <= handovers + stepped_down, story
    assert stale_accepted(accepted) == 0
