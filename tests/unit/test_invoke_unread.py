"""The Invoker while Redis cannot be read: a ZeroMQ connector stopping with its Redis away
logged "cannot read the live servers" once per message (50 lines a second); now once, then
every UNREAD_SAY_EVERY seconds with the count, and once when the servers are read again.
A Redis client to a port nothing listens on is Redis gone (no fake)."""

from __future__ import annotations

import logging

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import REDIS_URL, cluster_name, free_port
from zato.connector import invoke
from zato.connector.invoke import Invoker


def test_a_redis_that_cannot_be_read_is_said_once_then_now_and_then_and_its_return_once(caplog, monkeypatch):
    away = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    invoker = Invoker(away, cluster_name("unread"), b"k", 1, members=b"m")
    with caplog.at_level(logging.INFO, logger="zato.connector.invoke"):
        for _ in range(20):
            assert invoker.servers() == []
        warnings = [
            r.getMessage() for r in caplog.records if "cannot read the live servers" in r.getMessage()
        ]
        assert len(warnings) == 1, warnings
        monkeypatch.setattr(invoke, "UNREAD_SAY_EVERY", 0.0)  # the next failure is due again
        invoker.servers()
        again = [r.getMessage() for r in caplog.records if "cannot read the live servers" in r.getMessage()]
        assert len(again) == 2 and again[1].endswith("(21 failed reads so far)"), again
        invoker.client = redis.Redis.from_url(REDIS_URL)  # Redis answers again
        try:
            assert invoker.servers() == []  # no member in this cluster: read, and empty
        finally:
            invoker.client.close()
    back = [r.getMessage() for r in caplog.records if "read again" in r.getMessage()]
    assert back == ["the live servers are read again (21 reads failed before)"]
