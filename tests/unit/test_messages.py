"""What a service sees of a channel's message (zato.service.messages): built from the metadata
the connectors send (amqp_common.message_meta, ibmmq_common.message_meta), whatever the broker
put in it; settling it once, and only one way; nothing for a message that is not a channel's."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pika
import pika.spec
import pytest

from tests.support import nested
from zato.common import jsonenc
from zato.common.jsonenc import nests_deeper
from zato.connector.amqp_common import message_meta
from zato.connector.ibmmq_common import message_meta as mqmd_meta
from zato.coord.queues import MAX_HEADER_DEPTH
from zato.service.base import Request
from zato.service.messages import AMQPRequest, MessageStateError


def delivery(**props: object) -> tuple[pika.spec.Basic.Deliver, pika.BasicProperties]:
    method = pika.spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=7, redelivered=True,
                                     exchange="orders", routing_key="eu.new")  # fmt: skip
    return method, pika.BasicProperties(**props)


def test_an_amqp_message_reads_as_kombus_message():
    method, props = delivery(
        content_type="application/json",
        correlation_id="c-1",
        reply_to="replies",
        priority=5,
        timestamp=1700000000,
        headers={"x-no": 3, "x-bytes": b"\xff\x00ok", "x-when": dt.datetime(2026, 12, 5, 12, 0),
                 "x-dec": decimal.Decimal("1.10"), "x-nested": {"a": [1, float("nan")]}},
    )  # fmt: skip
    request = Request(raw=b'{"n": 1}', meta=message_meta(method, props))
    msg = request.amqp.msg
    assert msg.body == b'{"n": 1}'
    assert msg.properties == {
        "content_type": "application/json",
        "correlation_id": "c-1",
        "reply_to": "replies",
        "priority": 5,
        "timestamp": 1700000000,
    }
    assert msg.headers["x-no"] == 3 and msg.headers["x-bytes"] == "\ufffd\x00ok"
    assert msg.headers["x-when"] == "2026-12-05T12:00:00" and msg.headers["x-dec"] == "1.10"
    assert msg.headers["x-nested"]["a"][0] == 1
    assert msg.delivery_info == {"exchange": "orders", "routing_key": "eu.new", "redelivered": True,
                                 "consumer_tag": "ctag", "delivery_tag": 7}  # fmt: skip
    assert (msg.delivery_tag, msg.content_type) == (7, "application/json")
    assert msg.payload == {"n": 1} == msg.decode()  # kombu's decoded body
    text = Request(raw=b"\xffraw", meta=message_meta(*delivery(content_type="text/plain"))).amqp.msg
    assert text.payload == b"\xffraw"  # not UTF-8: the bytes
    assert request.ibm_mq is None and request.wmq is None


def test_settling_once_and_one_way():
    method, props = delivery()
    request = Request(meta=message_meta(method, props))
    assert request.settle == ""
    request.amqp.ack()
    request.amqp.ack()  # again the same way: fine
    assert request.settle == "ack"
    with pytest.raises(MessageStateError, match="settled already: ack"):
        request.amqp.reject()
    other = Request(meta=message_meta(method, props))
    other.amqp.msg.requeue()  # kombu's name, on the message itself
    assert other.settle == "requeue"
    on_msg = Request(meta=message_meta(method, props))
    on_msg.amqp.msg.reject()
    assert on_msg.settle == "reject"
    assert isinstance(other.amqp, AMQPRequest)


@pytest.mark.parametrize(
    "meta", [None, b"", b"not json", b"[]", b'{"kind": "kafka"}', b'{"kind": "amqp", "properties": 5}']
)
def test_no_message_side_without_well_formed_metadata(meta):
    request = Request(raw=b"x", meta=meta)
    assert request.amqp is None and request.ibm_mq is None and request.settle == ""


def test_an_ibm_mq_message_reads_its_mqmd():
    class MD:  # the fields an MQMD has, as the driver gives them
        MsgId = bytes(range(24))
        CorrelId = b"order-7".ljust(24, b"\x00")
        ReplyToQ = b"REPLIES".ljust(48)
        ReplyToQMgr = b"QM2".ljust(48)
        PutDate = b"20261205"
        PutTime = b"12000000"
        Format = b"MQSTR   "
        Priority = 4
        Expiry = -1
        Persistence = 1
        BackoutCount = 2

    request = Request(raw=b"hello", meta=mqmd_meta(MD()))
    mq = request.ibm_mq
    assert mq is request.wmq and request.amqp is None
    assert mq.msg_id == bytes(range(24)) and mq.correlation_id == MD.CorrelId  # bytes, as in Zato
    assert (mq.reply_to, mq.reply_to_qmgr, mq.format) == ("REPLIES", "QM2", "MQSTR")
    assert (mq.put_date, mq.put_time) == ("20261205", "12000000")
    assert (mq.priority, mq.expiry, mq.persistence) == (4, -1, 1)
    assert mq.timestamp == dt.datetime(2026, 12, 5, 12, 0)
    assert mq.backout_count == 2 and mq.data == b"hello"
    assert mq.mqmd["msg_id"] == bytes(range(24)).hex()

    class Fewer:  # a driver whose MD lacks most fields; no correlation id (MQCI_NONE)
        MsgId = b"\x01" * 24
        CorrelId = b"\x00" * 24
        PutDate = b"20261205"
        PutTime = b"1203045"  # tenths only: 0.5 s

        Priority = "high"  # not a number: kept as text, the message still goes

    fewer = Request(meta=mqmd_meta(Fewer())).ibm_mq
    assert fewer.priority == "high" and fewer.not_converted == ""
    # a channel with `convert`, a message the queue manager returned as it was put
    as_put = Request(raw=b"text?", meta=mqmd_meta(Fewer(), "reason 2111 (MQRC_SOURCE_CCSID_ERROR)")).ibm_mq
    assert as_put.not_converted == "reason 2111 (MQRC_SOURCE_CCSID_ERROR)" and as_put.data == b"text?"
    assert fewer.reply_to is None and fewer.correlation_id == b"" and not fewer.correlation_id
    assert fewer.timestamp == dt.datetime(2026, 12, 5, 12, 3, 4, 500000)


def test_a_header_nested_too_deep_is_left_out_and_the_rest_reach_the_service():
    deep = {"x-deep": nested(5000), "x-edge": nested(MAX_HEADER_DEPTH), "x-ok": [1, {"b": 2}]}
    method, props = delivery(headers=deep, correlation_id="c-9")
    msg = Request(meta=message_meta(method, props)).amqp.msg
    assert sorted(msg.headers) == ["x-edge", "x-ok"] and msg.properties["correlation_id"] == "c-9"
    assert msg.headers["x-ok"] == [1, {"b": 2}]


def test_nesting_is_counted_in_dicts_and_lists_alike():
    assert not nests_deeper(nested(100), 100) and nests_deeper(nested(101), 100)
    assert not nests_deeper("text", 0) and nests_deeper([[]], 1) and not nests_deeper([[]], 2)
    assert nests_deeper([{"a": [1]}], 2) and not nests_deeper([{"a": 1}], 2)


def test_lenient_json_never_fails_on_what_a_broker_holds():
    out = json.loads(jsonenc.dumps_lenient({"b": bytearray(b"ab"), "o": object(), "n": float("inf")}))
    assert out["b"] == "ab" and out["o"].startswith("<object object") and out["n"] == float("inf")
