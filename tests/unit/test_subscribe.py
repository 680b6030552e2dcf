"""The one subscription loop (zato.coord.subscribe): every message reaches the handler, every
(re)subscription runs on_subscribed, a Redis failure backs off (0.5 s doubling, reset once
subscribed again) and subscribes again; a handler's bug does not end it."""

from __future__ import annotations

import redis

from zato.common.errors import CoordUnavailable
from zato.common.retry import Backoff
from zato.coord.subscribe import listen_forever


class FakePubSub:
    def __init__(self, script: list) -> None:
        self.script = script

    def subscribe(self, channel: str) -> None:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step

    def get_message(self, timeout: float) -> dict | None:
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return None if step is None else {"type": "message", "data": step}

    def close(self) -> None:
        pass


class FakeClient:
    def __init__(self, script: list) -> None:
        self.script = script

    def pubsub(self, ignore_subscribe_messages: bool) -> FakePubSub:
        return FakePubSub(self.script)


def test_messages_resubscription_and_backoff():
    script = ["ok", "a", redis.ConnectionError("gone"), redis.ConnectionError("refused"), "ok", "b", "stop"]
    got, subscribed, slept, errors = [], [], [], []
    client = FakeClient(script)
    listen_forever(
        lambda: client,
        "ch",
        got.append,
        lambda: "stop" in got,
        on_subscribed=lambda: subscribed.append(1),
        on_error=errors.append,
        sleep=slept.append,
        backoff=Backoff(),
    )
    assert got == ["a", "b", "stop"] and len(subscribed) == 2
    assert slept == [0.5, 1.0]  # doubling while it fails; reset once subscribed
    assert all(isinstance(e, CoordUnavailable) for e in errors) and len(errors) == 2


def test_a_handler_that_raises_does_not_end_the_subscriber():
    def handler(data: str) -> None:
        got.append(data)
        if data == "bad":
            raise ValueError("bug")

    got, slept = [], []
    client = FakeClient(["ok", "bad", "ok", "next"])
    listen_forever(lambda: client, "ch", handler, lambda: "next" in got, sleep=slept.append)
    assert got == ["bad", "next"] and slept == [0.5]
