"""The pieces of replaying parked messages that need no broker: what a parked message's
properties are once it goes back, and what the operator is told. The replay itself runs
against RabbitMQ in tests/integration/test_amqp_replay.py."""

from __future__ import annotations

import pika

from zato.connector.amqp_replay import Replay, replayed_properties


def test_a_replayed_message_keeps_its_properties_less_what_parking_added():
    parked = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="m1",
        correlation_id="c1",
        reply_to="answers",
        priority=3,
        timestamp=1_700_000_000,
        headers={"x-zato-deliveries": 5, "x-zato-parked-reason": "failed 5 times", "x-tenant": "acme"},
    )
    props = replayed_properties(parked)
    assert props.headers == {"x-tenant": "acme"}  # its delivery count starts again
    for name in ("content_type", "delivery_mode", "message_id", "correlation_id", "reply_to", "priority"):
        assert getattr(props, name) == getattr(parked, name)
    assert props.timestamp == 1_700_000_000
    assert parked.headers["x-zato-deliveries"] == 5  # the parked copy's own properties are left as they were


def test_a_message_with_only_parkings_headers_goes_back_without_headers():
    parked = pika.BasicProperties(headers={"x-zato-deliveries": 1, "x-zato-parked-reason": "rejected"})
    assert replayed_properties(parked).headers is None


def test_the_operator_is_told_what_moved_what_is_left_and_what_pika_cannot_read():
    done = Replay(
        "orders", "q", moved=3, left=1, undecodable=1, cause="ValueError: year 10002 is out of range"
    )
    assert (
        done.describe()
        == "amqp-channel orders: 3 parked message(s) moved back to queue 'q'; 1 left in 'q.zato-parked'"
    )
    assert done.warnings() == [
        "1 message(s) pika cannot decode (ValueError: year 10002 is out of range) stay in 'q.zato-parked':"
        " move or delete them with the broker's own tools"
    ]
    idle = Replay("orders", "q", moved=2, left=0, active=False)
    assert idle.describe().endswith(
        "0 left in 'q.zato-parked' (the channel is not active: they wait in 'q' until it is)"
    )
    assert idle.warnings() == []
