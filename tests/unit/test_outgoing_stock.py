"""The AMQP outgoing connector's stock: messages it took from Redis ahead of its confirm window.
A message of the stock is published only while taking it is still known to have been fenced:
right after the take that brought it, or while the supervisor vouches that no newer epoch can
exist. Logic only: a fake channel records publishes, a fake context says whether it is vouched
for; the real broker and Redis paths are in tests/integration/test_amqp_outgoing.py."""

from __future__ import annotations

import json

import pika.exceptions

from zato.connector.amqp_outgoing import WINDOW, Session
from zato.connector.confirm_window import Publish
from zato.coord.queues import decode
from zato.coord.queues import encode as encode_with
from zato.coord.signing import outgoing_key

KEY = outgoing_key("the-test-cluster-secret", "c1")  # what a server signs with


def encode(*args: object, **kwargs: object) -> str:
    """queues.encode, signed as a server signs."""
    return encode_with(*args, key=KEY, **kwargs)  # type: ignore[arg-type]


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

    def outgoing_key(self) -> bytes:
        return KEY


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


class FakeProbe:
    """The probe channel: records passive declares; answer() gives the broker's answer to the
    last one (a 404 closes the channel, as the broker does)."""

    def __init__(self, missing: set[str]) -> None:
        self.missing, self.is_open, self.declared = missing, True, []
        self.on_close = self.pending = None

    def add_on_close_callback(self, callback) -> None:  # noqa: ANN001
        self.on_close = callback

    def exchange_declare(self, exchange: str, passive: bool, callback) -> None:  # noqa: ANN001
        assert passive
        self.declared.append(exchange)
        self.pending = (exchange, callback)

    def answer(self) -> None:
        exchange, callback = self.pending
        if exchange in self.missing:
            self.is_open = False
            self.on_close(
                self, pika.exceptions.ChannelClosedByBroker(404, f"NOT_FOUND - no exchange '{exchange}'")
            )
        else:
            callback(None)


class FakeConnection:
    def __init__(self, missing: set[str]) -> None:
        self.missing, self.probes = missing, []

    def channel(self, on_open_callback) -> None:  # noqa: ANN001
        self.probes.append(FakeProbe(self.missing))
        on_open_callback(self.probes[-1])


def session_with_exchanges(
    exchanges: list[str], missing: set[str]
) -> tuple[Session, FakeContext, FakeChannel]:
    """Stock messages to these exchanges ("": the default one); a Redis call is always on its
    way, so no call starts (logic only)."""
    s, ctx, ch = session_with_stock(0)
    s._stock.extend(encode({"n": i}, exchange=ex, routing_key="k") for i, ex in enumerate(exchanges))
    s.conn = FakeConnection(missing)  # type: ignore[assignment]
    s._call = object()  # type: ignore[assignment]
    return s, ctx, ch


def test_a_message_for_an_unknown_exchange_waits_for_its_check_with_every_one_after_it() -> None:
    s, ctx, ch = session_with_exchanges(["", "nope", "there", ""], missing={"nope"})
    ctx.is_vouched = True
    s._pump()
    assert ch.published == [b'{"n": 0}']  # the next one names an exchange not checked yet
    s._pump()
    assert ch.published == [b'{"n": 0}'] and len(s._waiting) == 3  # still waiting, in order
    s.conn.probes[0].answer()  # type: ignore[union-attr]
    assert [json.loads(decode(raw).body) for raw in s.queue.parked] == [{"n": 1}]  # type: ignore[attr-defined]
    s.conn.probes[1].answer()  # type: ignore[union-attr]  # a 404 closed the first probe
    assert ch.published == [b'{"n": 0}', b'{"n": 2}', b'{"n": 3}']
    assert [p.declared for p in s.conn.probes] == [["nope"], ["there"]]  # type: ignore[union-attr]
    s._stock.append(encode({"n": 4}, exchange="there", routing_key="k"))
    s._pump()
    assert ch.published[-1] == b'{"n": 4}' and len(s.conn.probes) == 2  # type: ignore[union-attr]  # known now


def test_messages_behind_a_check_go_out_only_while_the_epoch_is_vouched_for_or_fenced() -> None:
    s, ctx, ch = session_with_exchanges(["there", ""], missing=set())
    s._pump(fresh=True)  # taken just now
    s.conn.probes[0].answer()  # type: ignore[union-attr]  # nobody vouches any more
    assert ch.published == [] and s._fence  # the next Redis call must be a fenced take
    s._pump(fresh=True)  # its answer
    assert ch.published == [b'{"n": 0}', b'{"n": 1}'] and not s._fence


def test_messages_waiting_for_a_check_count_against_the_window() -> None:
    s, ctx, _ch = session_with_exchanges(["x"] * (WINDOW + 10), missing=set())
    ctx.is_vouched = True
    s._pump()
    s._pump()
    assert len(s._waiting) == WINDOW and len(s._stock) == 10


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
    deep = "[" * 100_000 + "]" * 100_000  # json raises RecursionError for it, not ValueError
    s._stock.insert(1, "not json")
    s._stock.insert(2, deep)
    s._pump(fresh=True)
    assert len(ch.published) == 2 and s.queue.parked == ["not json", deep]  # type: ignore[attr-defined]


def test_a_broker_close_makes_suspects_and_a_suspect_closing_it_alone_is_parked() -> None:
    s, ctx, ch = session_with_stock(0)
    for raw in ("a", "b"):
        s.window.published(Publish(raw, "", "q", b""))
    s._on_channel_closed(ch, pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED"))  # type: ignore[arg-type]
    assert s.suspects == {"a", "b"} and s.queue.parked == []  # type: ignore[attr-defined]
    careful = Session(ctx, DEFINITION, FakeQueue(), frozenset(s.suspects))  # type: ignore[arg-type]
    careful.ch = ch  # type: ignore[assignment]
    assert careful._room() == 1  # one at a time
    careful.window.published(Publish("b", "", "q", b""))
    assert careful._room() == 0
    careful._on_channel_closed(ch, pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED"))  # type: ignore[arg-type]
    assert careful.queue.parked == ["b"] and careful.suspects == {"a"}  # type: ignore[attr-defined]
    assert "channel closed" in (careful.error or "")
