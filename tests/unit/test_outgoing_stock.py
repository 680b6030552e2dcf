"""The AMQP outgoing connector's stock: messages it took from Redis ahead of its confirm window.
A message of the stock is published only while taking it is still known to have been fenced:
right after the take that brought it, or while the supervisor vouches that no newer epoch can
exist. Logic only: a fake channel records publishes, a fake context says whether it is vouched
for; the real broker and Redis paths are in tests/integration/test_amqp_outgoing.py."""

from __future__ import annotations

from zato.connector.amqp_outgoing import WINDOW, Session
from zato.coord.queues import encode


class FakeStats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, field: str, n: int = 1) -> None:
        self.counts[field] = self.counts.get(field, 0) + n

    def state(self, _state: str) -> None:
        pass

    def error(self, _text: str) -> None:
        pass


class FakeContext:
    label = "amqp-outgoing 'out'"

    def __init__(self) -> None:
        self.stats = FakeStats()
        self.is_vouched = False

    def vouched(self) -> bool:
        return self.is_vouched


class FakeChannel:
    def __init__(self) -> None:
        self.published: list[bytes] = []

    def basic_publish(self, _exchange: str, _key: str, body: bytes, _props: object, mandatory: bool) -> None:
        assert mandatory
        self.published.append(body)


class FakeQueue:
    def __init__(self) -> None:
        self.parked: list[str] = []

    def park(self, raw: str) -> None:
        self.parked.append(raw)


DEFINITION = {"delivery_mode": 2, "content_type": "application/json", "exchange": "", "routing_key": "q"}


def session_with_stock(n: int) -> tuple[Session, FakeContext, FakeChannel]:
    ctx, ch = FakeContext(), FakeChannel()
    s = Session(ctx, DEFINITION, FakeQueue())  # type: ignore[arg-type]
    s.ch = ch  # type: ignore[assignment]
    s._stock.extend(encode({"n": i}) for i in range(n))  # taken, not published yet
    return s, ctx, ch


def test_stock_waits_while_nobody_vouches_for_the_epoch_and_goes_once_someone_does() -> None:
    s, ctx, ch = session_with_stock(30)
    s._pump()  # a confirm made room, but the supervisor's record expired (paused, cut off)
    assert ch.published == []
    ctx.is_vouched = True
    s._pump()
    assert [b'{"n": %d}' % i for i in range(30)] == ch.published
    assert ctx.stats.counts["messages_in"] == 30


def test_a_fresh_take_is_published_at_once_without_the_supervisor() -> None:
    s, _ctx, ch = session_with_stock(5)
    s._pump(fresh=True)  # Redis moved them just now, fenced by the epoch
    assert len(ch.published) == 5 and not s._stock


def test_the_stock_never_overfills_the_confirm_window() -> None:
    s, ctx, ch = session_with_stock(WINDOW + 40)
    ctx.is_vouched = True
    s._pump()
    assert len(ch.published) == WINDOW and len(s._stock) == 40


def test_a_stopping_connector_publishes_nothing_more_of_its_stock() -> None:
    s, ctx, ch = session_with_stock(10)
    ctx.is_vouched = True
    s._stopping_until = 1.0
    s._pump(fresh=True)
    assert ch.published == [] and len(s._stock) == 10  # left in the processing list for the next run


def test_a_malformed_message_of_the_stock_is_parked_the_rest_published() -> None:
    s, _ctx, ch = session_with_stock(2)
    s._stock.insert(1, "not json")
    s._pump(fresh=True)
    assert len(ch.published) == 2 and s.queue.parked == ["not json"]  # type: ignore[attr-defined]
