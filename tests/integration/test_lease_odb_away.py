"""A server competing for the connector lease while its ODB (PostgreSQL, through a proxy the test
cuts) does not answer: it cannot read the epoch floor, so it takes nothing over. Before, server.log
blamed Redis for it ('Redis unreachable (lease check): reading the epoch floor from the ODB: ...'),
though Redis answered all along; now the line names the ODB, and says when it is back."""

from __future__ import annotations

import redis

from tests.conn_support import TCPProxy
from tests.support import PG_URL, REDIS_URL, free_port, wait_for
from zato.coord.keys import Keys


def test_a_standby_whose_odb_is_away_blames_the_odb_not_redis(quickstart):
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        qs = quickstart(servers=1, lb=False, odb=PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        qs.start()
        wait_for(lambda: "acquired lease epoch" in qs.server_logs(), 60, what="the lease taken")
        proxy.stop()  # the ODB is away; Redis is not
        client.delete(Keys(qs.cluster).lease)  # the lease lost: the server competes for it again
        said = (
            "ODB unreachable (lease check: this server takes no lease over until it answers): "
            "reading the epoch floor from the ODB"
        )
        wait_for(lambda: said in qs.server_logs() or "Redis unreachable (lease check)" in qs.server_logs(),
                 60, what="the failed lease check said")  # fmt: skip
        assert "Redis unreachable" not in qs.server_logs()
        assert said in qs.server_logs()
        proxy.start()
        wait_for(lambda: "ODB answers again after" in qs.server_logs(), 60, what="the ODB said back")
        wait_for(
            lambda: qs.server_logs().count("acquired lease epoch") == 2, 60, what="the lease taken again"
        )
    finally:
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly
        client.close()
