"""AMQP outgoing across a blackhole of the lease holder's host (its outgoing connector moves
the messages out of Redis): every `self.outgoing.amqp.send` that returned, on any server,
reaches the queue (lost 0; duplicates counted), whether the vanished holder's connector had
taken it from Redis already or not, and the new holder's connector publishes the rest."""

from __future__ import annotations

import uuid

from tests.hosts.checkers import AmqpPublisher, OutgoingSender, outgoing_counts
from tests.support import wait_for


def test_every_send_that_returned_reaches_the_queue_across_a_blackholed_holder(lab):
    queue = f"zl-out-{uuid.uuid4().hex[:8]}"
    consumer = AmqpPublisher(queue)  # declares the queue the outgoing connection routes to
    lab.cli("conn create amqp-outgoing", "--name", "out", "--def", "rabbit", "--routing-key", queue)
    lab.cli("channel create", "--name", "lab-send", "--url-path", "/lab/send", "--service", "lab.send")
    received: list[int] = []

    def arrived(count: int) -> bool:
        received.extend(consumer.take_all())
        return len(received) >= count

    def all_arrived() -> bool:
        received.extend(consumer.take_all())
        return outgoing_counts(sender.returned, received)["lost"] == 0

    def sent(count: int) -> bool:
        return len(sender.returned) >= count

    sender = OutgoingSender(lab, lab.lb_url + "/lab/send")
    try:
        old, old_epoch = lab.wait_holder()
        sender.start()
        wait_for(lambda: arrived(50), timeout=60, what="the first sends in the queue")
        before = len(sender.returned)
        lab.net.blackhole(lab.host(old))
        try:
            new, new_epoch = lab.wait_holder(other_than=old, timeout=15)
            wait_for(lambda: lab.connectors(new), timeout=15, what="the new holder's connectors")
            at_takeover = len(sender.returned)
            wait_for(lambda: sent(at_takeover + 50), timeout=30, what="sends after the takeover")
        finally:
            sender.stop()
            lab.net.heal(lab.host(old))
        wait_for(all_arrived, timeout=60, what="every returned send in the queue")
    finally:
        sender.stop()
        lab.cli("channel delete", "--name", "lab-send")
        lab.cli("conn delete amqp-outgoing", "--name", "out")
        consumer.close()
    counts = outgoing_counts(sender.returned, received)
    print(f"outgoing, blackhole {old} ({old_epoch}) -> {new} ({new_epoch}): {counts}; failed {sender.failed}")
    assert at_takeover > before  # sends returned while the holder had vanished, too
    assert counts["lost"] == 0
