"""The AMQP channel's acks sent together (zato.connector.amqp_channel.AckBook): against a model
of the broker's own rule (an ack with multiple=True acks every outstanding delivery up to its
tag), over any order in which deliveries arrive and invocations answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zato.connector.amqp_channel import AckBook


class Broker:
    """What RabbitMQ keeps of one channel: the deliveries not settled yet, and what it was
    told of each. An ack of a delivery it does not hold is a channel error (PRECONDITION_FAILED)."""

    def __init__(self) -> None:
        self.outstanding: set[int] = set()
        self.acked: set[int] = set()
        self.frames = 0

    def deliver(self, tag: int) -> None:
        self.outstanding.add(tag)

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.frames += 1
        assert tag in self.outstanding, f"ack of {tag}, which is not outstanding: the channel would close"
        hit = {t for t in self.outstanding if t <= tag} if multiple else {tag}
        self.outstanding -= hit
        self.acked |= hit

    def basic_nack(self, tag: int) -> None:
        self.outstanding.remove(tag)


OUTCOMES = st.sampled_from(["ok", "ok", "ok", "nack", "republished", "left"])


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 40),
    outcomes=st.data(),
)
def test_only_what_answered_200_is_acked_and_nothing_unsettled_is_covered(n, outcomes):
    book, broker = AckBook(), Broker()
    plan = {tag: outcomes.draw(OUTCOMES, label=f"outcome of {tag}") for tag in range(1, n + 1)}
    order = outcomes.draw(st.permutations(list(plan)), label="order answered")
    batch = outcomes.draw(st.integers(1, 12), label="batch size")
    for tag in plan:
        book.delivered(tag)
        broker.deliver(tag)
    for start in range(0, n, batch):  # a settle round: one batch's results, in the main thread
        for tag in order[start : start + batch]:
            if plan[tag] == "ok":
                book.ok(tag)
            elif plan[tag] == "nack":
                broker.basic_nack(tag)
                book.settled(tag)
            elif plan[tag] == "republished":  # published elsewhere, then acked by itself
                broker.basic_ack(tag)
                book.settled(tag)
            # "left": a stale result, or work dropped at a stop: stays with the broker
        book.send(broker)
    oks = {t for t, o in plan.items() if o == "ok"}
    assert broker.acked - {t for t, o in plan.items() if o == "republished"} == oks
    assert broker.outstanding == {t for t, o in plan.items() if o == "left"}


def test_a_batch_answered_in_order_is_one_frame_and_an_open_delivery_holds_the_ones_after_it_apart():
    book, broker = AckBook(), Broker()
    for tag in range(1, 25):
        book.delivered(tag)
        broker.deliver(tag)
    for tag in range(1, 13):
        book.ok(tag)
    book.send(broker)
    assert broker.frames == 1 and broker.acked == set(range(1, 13))
    for tag in range(14, 25):  # 13 is still running
        book.ok(tag)
    book.send(broker)
    assert broker.frames == 1 + 11 and 13 in broker.outstanding  # each alone, 13 untouched
    book.ok(13)
    book.send(broker)
    assert broker.outstanding == set()
