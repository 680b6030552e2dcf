"""Outgoing messages are signed with a key of the cluster secret (zato.coord.signing) and the
outgoing connectors publish only those that verify; the real connectors against RabbitMQ and
the IBM MQ stand-in are in tests/integration/test_amqp_outgoing.py and test_ibmmq.py."""

from __future__ import annotations

import json
import logging

import pytest

from tests.unit.test_outgoing_stock import DEFINITION, FakeChannel, FakeContext, FakeQueue
from zato.common.log import CID
from zato.connector import ibmmq_outgoing
from zato.connector.amqp_outgoing import Session
from zato.connector.refusals import NOT_SIGNED, Unsigned
from zato.coord.queues import decode, encode
from zato.coord.signing import (
    call_key,
    member_key,
    outgoing_key,
    outgoing_signed,
    resign_outgoing,
    sign_outgoing,
)

KEY = outgoing_key("the-test-cluster-secret", "c1")


def test_a_message_verifies_with_its_kind_and_key_only_and_reads_as_before() -> None:
    raw = encode({"n": 1}, routing_key="rk", key=KEY)
    assert raw.startswith('{"sig": "') and outgoing_signed(KEY, "amqp", raw)
    msg = decode(raw)
    assert (json.loads(msg.body), msg.routing_key) == ({"n": 1}, "rk")
    assert not outgoing_signed(KEY, "ibm-mq", raw)  # moved to an IBM MQ queue: not its kind
    assert not outgoing_signed(outgoing_key("the-test-cluster-secret", "c2"), "amqp", raw)  # another cluster
    assert not outgoing_signed(outgoing_key("another-secret-here", "c1"), "amqp", raw)
    assert not outgoing_signed(KEY, "amqp", raw.replace('"rk"', '"rj"'))  # changed after
    assert not outgoing_signed(KEY, "amqp", json.dumps(json.loads(raw), sort_keys=True))  # the text signed
    mq = ibmmq_outgoing.encode({"n": 1}, "Q", key=KEY)
    assert outgoing_signed(KEY, "ibm-mq", mq) and not outgoing_signed(KEY, "amqp", mq)
    assert ibmmq_outgoing.decode(mq).queue == "Q"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "{",
        "{}",
        '{"sig": ""}',
        '{"sig": "' + "é" * 64 + '", "id": "x"}',
        '{"id": "x", "text": "y"}',
        "[1]",
    ],
)
def test_anything_else_does_not_verify_and_nothing_raises(raw: str) -> None:
    assert not outgoing_signed(KEY, "amqp", raw)


def test_the_key_is_its_own() -> None:
    keys = {
        outgoing_key("the-test-cluster-secret", "c1"),
        call_key("the-test-cluster-secret", "c1"),
        member_key("the-test-cluster-secret", "c1"),
    }
    assert len(keys) == 3
    with pytest.raises(ValueError, match="cluster secret is required"):
        outgoing_key("", "c1")
    with pytest.raises(ValueError, match="JSON object"):
        sign_outgoing(KEY, "amqp", "{}")


def test_a_message_carries_the_cid_of_the_request_that_sent_it() -> None:
    token = CID.set("K0123")
    try:
        raw = encode("x", key=KEY)
    finally:
        CID.reset(token)
    assert json.loads(raw)["cid"] == "K0123" and outgoing_signed(KEY, "amqp", raw)
    assert "cid" not in json.loads(encode("x", key=KEY))  # none outside a request


def test_unsigned_messages_are_said_once_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.unsigned")
    unsigned = Unsigned(FakeContext(), log)  # type: ignore[arg-type]
    forged = [json.dumps({"id": f"f{i}", "cid": f"C{i}\n", "text": "x"}) for i in range(50)]
    with caplog.at_level(logging.ERROR, "test.unsigned"):
        assert {unsigned.refused(raw) for raw in forged} == {NOT_SIGNED}
        unsigned.refusals.said_at -= unsigned.refusals.every  # a minute later
        unsigned.refused("not json at all")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        "amqp-outgoing 'out': message f0 (CID C0\\n) not signed with this cluster's key"
    )
    assert lines[1] == (
        f"amqp-outgoing 'out': 50 more message(s) {NOT_SIGNED} parked in Redis, not published, since said;"
        " the last: ? (CID ?)"
    )


def test_an_unsigned_message_in_the_stock_is_parked_never_published(caplog: pytest.LogCaptureFixture) -> None:
    ctx, ch, queue = FakeContext(), FakeChannel(), FakeQueue()
    s = Session(ctx, DEFINITION, queue)  # type: ignore[arg-type]
    s.ch = ch  # type: ignore[assignment]
    forged = json.dumps({"id": "f", "text": json.dumps({"n": -1})})
    s._stock.extend([encode({"n": 0}, key=KEY), forged, forged, encode({"n": 1}, key=KEY)])
    s._call = object()  # type: ignore[assignment] - a Redis call on its way: none starts
    with caplog.at_level(logging.ERROR):
        s._pump(fresh=True)
    assert [json.loads(b)["n"] for b in ch.published] == [0, 1]
    assert queue.parked == [forged, forged] and ctx.stats.counts["parked"] == 2
    assert ctx.stats.counts["messages_in"] == 4  # IN = OUT + PARKED + in flight
    assert sum(NOT_SIGNED in r.getMessage() for r in caplog.records) == 1


def test_a_replay_with_sign_signs_unsigned_messages_and_replaces_another_keys_signature() -> None:
    older = json.dumps({"id": "o", "text": "x"})  # as a version before signing stored it
    other = sign_outgoing(outgoing_key("the-old-cluster-secret", "c1"), "amqp", older)
    for raw in (older, other):
        signed = resign_outgoing(KEY, "amqp", raw)
        assert signed is not None and outgoing_signed(KEY, "amqp", signed)
        assert json.loads(signed) == {**json.loads(older), "sig": signed[9:73]}  # one signature
    assert resign_outgoing(KEY, "amqp", "not json") is None and resign_outgoing(KEY, "amqp", "{}") is None
