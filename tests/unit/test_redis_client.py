"""Redis clients through Sentinel give up within socket_timeout when no Sentinel answers: each
Sentinel is asked once per lookup (redis-py would retry it 3 times with back-off, about 15 s
on a dropped link; measured on the lab). No socket is opened here."""

from __future__ import annotations

from zato.config.settings import RedisSettings
from zato.coord.client import connect


def test_sentinels_are_asked_once_per_lookup():
    settings = RedisSettings("redis://", (("10.0.0.1", 26379), ("10.0.0.2", 26379)), "mymaster", 0.5)
    client = connect(settings)
    sentinels = client.connection_pool.sentinel_manager.sentinels
    assert len(sentinels) == 2
    for s in sentinels:
        kwargs = s.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.5 and kwargs["socket_connect_timeout"] == 0.5
        assert s.get_retry().get_retries() == 0
