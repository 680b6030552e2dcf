"""Pure logic of the connectors: the outgoing message format, retry policy, ZeroMQ addresses
and frames, delivery counting."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import re

import pika
import pytest

from zato.common.errors import ConnectorError
from zato.connector.amqp_channel import deliveries_of, parking_queue
from zato.connector.amqp_common import error_text, parameters
from zato.connector.base import RetryPolicy
from zato.connector.zmq_address import endpoint
from zato.connector.zmq_channel import payload
from zato.coord.queues import decode
from zato.coord.queues import encode as encode_with
from zato.coord.signing import outgoing_key
from zato.service.outgoing import to_bytes

KEY = outgoing_key("the-test-cluster-secret", "c1")  # what a server signs with


def encode(*args: object, **kwargs: object) -> str:
    """queues.encode, signed as a server signs."""
    return encode_with(*args, key=KEY, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"\x00\xff", b"\x00\xff"),
        ("zażółć", "zażółć".encode()),
        ({"a": 1}, b'{"a": 1}'),
        ({"at": dt.date(2026, 1, 2), "n": decimal.Decimal("1.10")}, b'{"at": "2026-01-02", "n": "1.10"}'),
    ],
)
def test_outgoing_message_round_trip(data, body):
    msg = decode(encode(data, "ex", "rk", {"headers": {"h": 1}, "priority": 3}))
    assert (msg.body, msg.exchange, msg.routing_key) == (body, "ex", "rk")
    assert msg.properties == {"headers": {"h": 1}, "priority": 3} and len(msg.id) == 32


def test_outgoing_message_defaults_and_errors():
    msg = decode(encode("x"))
    assert msg.exchange is None and msg.routing_key is None  # the connection's defaults apply
    with pytest.raises(ConnectorError, match="unknown AMQP message properties: colour"):
        encode("x", properties={"colour": 1})
    with pytest.raises(ConnectorError, match="cannot send object"):
        encode(object())
    with pytest.raises(ConnectorError, match="malformed outgoing message"):
        decode("not json")
    with pytest.raises(ConnectorError, match="malformed outgoing message"):
        decode(json.dumps({"id": "x"}))


@pytest.mark.parametrize(
    ("props", "error"),
    [
        ({"priority": 256}, "priority: 256 is not an integer from 0 to 255"),
        ({"priority": True}, "priority: True is not an integer"),
        ({"delivery_mode": 3}, "delivery_mode: 3 is not 1 (transient) or 2 (persistent)"),
        ({"timestamp": -1}, "timestamp: -1 is not a whole number of seconds"),
        ({"expiration": 60000}, "expiration: 60000 is not a string of at most 255 bytes"),
        ({"correlation_id": "ż" * 128}, "correlation_id: 'żżż"),  # 256 bytes in UTF-8
        ({"headers": ["a"]}, "headers: ['a'] is not an object"),
    ],
)
def test_amqp_property_values_amqp_cannot_carry_are_refused_at_send(props, error):
    with pytest.raises(ConnectorError, match=re.escape(f"AMQP message property {error}")):
        encode({"a": 1}, properties=props)


def test_amqp_property_values_amqp_can_carry_pass():
    props = {"priority": 0, "delivery_mode": 2, "timestamp": 1, "expiration": "1000", "headers": {"h": [1]}}
    assert decode(encode({"a": 1}, properties={**props, "message_id": None})).properties["priority"] == 0


def test_amqp_error_text_names_the_type_once():
    refused = pika.exceptions.AMQPConnectionError("AMQPConnectionError: (connection refused)")
    assert error_text(refused) == "AMQPConnectionError: (connection refused)"
    assert error_text(pika.exceptions.StreamLostError("Transport indicated EOF")) == (
        "StreamLostError: Transport indicated EOF"
    )
    assert error_text(ValueError()) == "ValueError()"  # no text: its repr
    assert len(error_text(OSError("x" * 1000))) == 300


def test_an_amqp_link_that_stopped_acknowledging_is_said_so():
    """The kernel ended the connection (TCP_USER_TIMEOUT: twice the heartbeat with nothing sent
    acknowledged); before, the log had pika's text alone."""
    timed_out = TimeoutError(110, "Connection timed out")  # ETIMEDOUT, as pika names it
    lost = pika.exceptions.StreamLostError(f"Stream connection lost: {timed_out!r}")
    assert error_text(lost, {"heartbeat": 2}) == (
        "StreamLostError: Stream connection lost: TimeoutError(110, 'Connection timed out') (the broker's"
        " host acknowledged nothing sent for 4 s, twice the heartbeat: the link to it is lost)"
    )
    assert "nothing sent for twice the heartbeat" in error_text(lost)
    reset = pika.exceptions.StreamLostError(f"Stream connection lost: {ConnectionResetError(104, 'reset')!r}")
    assert "acknowledged" not in error_text(reset, {"heartbeat": 2})
    assert "acknowledged" not in error_text(lost, {"heartbeat": 2}, watched=False)  # no link_options there


def test_an_amqp_connection_fails_after_twice_the_heartbeat_unacknowledged():
    amqp = {"host": "h", "port": 5672, "vhost": "/", "username": "u", "password": "p", "use_tls": False}
    assert parameters({**amqp, "heartbeat": 2}).tcp_options == {
        "TCP_USER_TIMEOUT": 4000, "TCP_KEEPIDLE": 1, "TCP_KEEPINTVL": 1, "TCP_KEEPCNT": 2,
    }  # fmt: skip
    assert parameters({**amqp, "heartbeat": 30}).tcp_options["TCP_USER_TIMEOUT"] == 60_000
    assert parameters({**amqp, "heartbeat": 0}).tcp_options["TCP_USER_TIMEOUT"] == 2000  # at least 1 s
    # Publishing in bulk (the outgoing connector, a replay): a broker's resource alarm stops
    # reading it and would shut its window for longer than that, so no link_options there.
    assert parameters({**amqp, "heartbeat": 2}, watch_link=False).tcp_options is None


def test_retry_policy_grows_to_its_ceiling():
    delays = list(itertools.islice(RetryPolicy(start=0.5, step=1.0, max=2.0).delays(), 5))
    assert delays == [0.5, 1.5, 2.0, 2.0, 2.0]


def test_zmq_addresses_and_frames():
    assert endpoint("tcp://127.0.0.1:1", bind_by_default=True) == ("tcp://127.0.0.1:1", True)
    assert endpoint(">tcp://127.0.0.1:1", bind_by_default=True) == ("tcp://127.0.0.1:1", False)
    assert endpoint("@tcp://*:1", bind_by_default=False) == ("tcp://*:1", True)
    assert payload([b"orders.hello"], "SUB", b"orders.") == b"hello"
    assert payload([b"orders.", b"body"], "SUB", b"orders.") == b"body"
    assert payload([b"orders.hello"], "PULL", b"") == b"orders.hello"
    assert to_bytes({"a": 1}) == b'{"a": 1}' and to_bytes("é") == "é".encode()


def test_delivery_count_header():
    assert deliveries_of(pika.BasicProperties()) == 0
    assert deliveries_of(pika.BasicProperties(headers={"x-zato-deliveries": 3})) == 3
    assert deliveries_of(pika.BasicProperties(headers={"x-zato-deliveries": "junk"})) == 0
    assert parking_queue("orders") == "orders.zato-parked"
