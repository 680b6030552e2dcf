"""Fixtures for tests that talk to Redis directly: a fresh cluster name (its keys deleted
afterwards) and a client made the way the servers make theirs."""

from __future__ import annotations

import pytest

from tests.support import REDIS_URL, cleanup_redis, cluster_name
from zato.config.settings import RedisSettings
from zato.coord.client import connect


@pytest.fixture
def cluster(request):
    name = cluster_name(request.module.__name__.rsplit("_", 1)[-1][:5])
    yield name
    cleanup_redis(name)


@pytest.fixture
def client():
    c = connect(RedisSettings(url=REDIS_URL))
    yield c
    c.close()


@pytest.fixture
def redis_group(tmp_path):
    """A Redis master, its replica and Sentinels of the test's own (test_sentinel.RedisGroup),
    started, and stopped by their pids after the test."""
    from tests.integration.test_sentinel import RedisGroup

    group = RedisGroup(tmp_path)
    try:
        group.start()
        yield group
    finally:
        group.stop()
