"""When a connector writes its statistics to Redis (no Redis: a client that records writes)."""

from __future__ import annotations

import json
import time

from zato.connector.base import STATS_REFRESH, STATS_TTL, Stats


class RecordingClient:
    def __init__(self) -> None:
        self.writes: list[tuple[str, dict, int]] = []

    def set(self, key: str, value: str, px: int) -> None:
        self.writes.append((key, json.loads(value), px))


def test_an_idle_connector_writes_its_stats_only_to_keep_them_alive() -> None:
    client = RecordingClient()
    stats = Stats(client, "c", "zmq-channel", "orders")
    stats.flush()
    now = time.monotonic()
    assert not stats.due(now + 1.0)  # nothing changed: no write a second later
    assert stats.due(now + STATS_REFRESH)  # but well before the key's TTL runs out
    assert STATS_REFRESH + 2.0 < STATS_TTL  # a failed refresh is tried again at the next tick


def test_a_change_is_written_at_the_next_tick() -> None:
    client = RecordingClient()
    stats = Stats(client, "c", "zmq-channel", "orders")
    stats.flush()
    stats.add("messages_in")
    assert stats.due(time.monotonic())
    stats.flush()
    assert client.writes[-1][1]["messages_in"] == 1 and not stats.due(time.monotonic())


def test_a_failed_write_is_tried_again_at_the_next_tick() -> None:
    class Down(RecordingClient):
        def set(self, key: str, value: str, px: int) -> None:
            import redis

            raise redis.ConnectionError("refused")

    stats = Stats(Down(), "c", "zmq-channel", "orders")
    stats.flush()
    assert stats.due(time.monotonic())
