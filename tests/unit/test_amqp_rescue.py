"""The pieces of taking an undecodable delivery off its queue that need no broker: telling a
decoder's failure from a network's in pika's error, and adding a header to properties kept as
the broker sent them (amqp_rescue.with_header). The whole path runs against RabbitMQ in
tests/integration/test_amqp_channel.py."""

from __future__ import annotations

import socket
import ssl

import pika
import pika.exceptions
import pytest

from zato.connector.amqp_common import decode_failure
from zato.connector.amqp_rescue import with_header


def lost(cause: BaseException | str) -> pika.exceptions.StreamLostError:
    # pika's own wording (BaseConnection._on_stream_terminated)
    return pika.exceptions.StreamLostError(
        f"Stream connection lost: {cause!r}" if not isinstance(cause, str) else cause
    )


@pytest.mark.parametrize(
    "error",
    [
        lost(ConnectionResetError(104, "Connection reset by peer")),
        lost(BrokenPipeError(32, "Broken pipe")),
        lost(TimeoutError("timed out")),
        lost(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")),
        lost(ssl.SSLWantReadError(2, "The operation did not complete")),
        lost(socket.gaierror(-2, "Name or service not known")),
        lost("Transport indicated EOF"),
        pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED"),
    ],
)
def test_a_network_or_broker_failure_is_not_a_decoders(error):
    assert decode_failure(error) is None


@pytest.mark.parametrize(
    "cause",
    [
        ValueError("year 10002 is out of range"),
        RecursionError("maximum recursion depth exceeded"),
        pika.exceptions.InvalidFieldTypeException(b"Z"),
        OverflowError("timestamp out of range"),
    ],
)
def test_a_decoders_failure_is_named(cause):
    found = decode_failure(lost(cause))
    assert found is not None and found.startswith(type(cause).__name__)


def encoded(props: pika.BasicProperties) -> bytes:
    return b"".join(props.encode())


@pytest.mark.parametrize(
    "props",
    [
        pika.BasicProperties(),
        pika.BasicProperties(content_type="application/json", message_id="m-1", delivery_mode=2),
        pika.BasicProperties(
            content_type="text/plain", content_encoding="utf-8", headers={"a": 1, "b": [1, "x"]}
        ),
        pika.BasicProperties(headers={"t": 5}, correlation_id="c", priority=4, app_id="app"),
    ],
)
def test_a_header_is_added_and_every_other_property_kept(props):
    out = pika.BasicProperties()
    out.decode(with_header(encoded(props), "x-zato-parked-reason", "why"))
    assert out.headers == {**(props.headers or {}), "x-zato-parked-reason": "why"}
    for name in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "message_id",
        "app_id",
    ):
        assert getattr(out, name) == getattr(props, name), name
