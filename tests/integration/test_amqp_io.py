"""The outgoing connector's I/O (zato.connector.amqp_io) against the real RabbitMQ, plain and
through TLS: thousands of publishes written in one turn of the loop, a body larger than a
chunk among them, all confirmed by the broker and all arriving whole and in order."""

from __future__ import annotations

import uuid

import pika
import pytest

from tests.conn_support import Rabbit
from zato.connector import amqp_io
from zato.connector.amqp_common import parameters

SMALL = 3000
BIG = 3 * amqp_io.CHUNK + 17  # more than a chunk, and more than one AMQP body frame (128 KB)


def bodies() -> list[bytes]:
    return [
        *(f"small {i}".encode() for i in range(SMALL)),
        bytes(range(256)) * (BIG // 256) + b"end",
        *(f"after {i}".encode() for i in range(10)),
    ]


def publish_confirmed(params: pika.ConnectionParameters, queue: str, sent: list[bytes]) -> dict:
    """Publish every body in one loop callback on a SelectConnection with our I/O; returns
    how many the broker acked and nacked, and the first error."""
    seen = {"acked": 0, "nacked": 0, "error": None}

    def on_confirm(frame: pika.frame.Method) -> None:
        m = frame.method
        n = m.delivery_tag - seen["acked"] - seen["nacked"] if m.multiple else 1
        seen["acked" if isinstance(m, pika.spec.Basic.Ack) else "nacked"] += n
        if seen["acked"] + seen["nacked"] >= len(sent):
            conn.close()

    def on_channel(ch: pika.channel.Channel) -> None:
        def confirming(_frame: object) -> None:
            for body in sent:  # all in one turn of the loop
                ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))

        ch.confirm_delivery(on_confirm, callback=confirming)

    def failed(c: pika.SelectConnection, e: BaseException) -> None:
        seen["error"] = e
        c.ioloop.stop()

    conn = pika.SelectConnection(
        params,
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=failed,
        on_close_callback=lambda c, _e: c.ioloop.stop(),
        custom_ioloop=amqp_io.io_services(),
    )
    conn.ioloop.call_later(60, conn.ioloop.stop)  # a hang fails the checks below, not the suite
    conn.ioloop.start()
    return seen


@pytest.fixture
def rabbit():
    r = Rabbit()
    yield r
    r.close()


def amqp(port: int, use_tls: bool) -> dict:
    return {"host": "localhost" if use_tls else "127.0.0.1", "port": port, "vhost": "/",
            "username": "guest", "password": "guest", "heartbeat": 30, "use_tls": use_tls}  # fmt: skip


def test_thousands_of_publishes_in_one_turn_arrive_whole_and_in_order(rabbit):
    queue = rabbit.queue(f"zt-io-{uuid.uuid4().hex[:8]}")
    sent = bodies()
    seen = publish_confirmed(parameters(amqp(5672, False)), queue, sent)
    assert seen == {"acked": len(sent), "nacked": 0, "error": None}
    assert [body for _props, body in rabbit.get_all(queue)] == sent


def test_the_same_over_tls(rabbit, tmp_path):
    from tests.tls_proxy import tls_broker

    queue = rabbit.queue(f"zt-io-tls-{uuid.uuid4().hex[:8]}")
    sent = bodies()
    with tls_broker(str(tmp_path)) as (port, ca_file):
        seen = publish_confirmed(parameters(amqp(port, True), ca_file), queue, sent)
    assert seen == {"acked": len(sent), "nacked": 0, "error": None}
    assert [body for _props, body in rabbit.get_all(queue)] == sent
