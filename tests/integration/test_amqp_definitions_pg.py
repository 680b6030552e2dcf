"""Connection definitions and the registry on PostgreSQL (the unit tests use SQLite)."""

from __future__ import annotations

import pytest

from tests.support import PG_URL, cluster_name
from zato.common.errors import ConnectorError
from zato.odb import connectors
from zato.odb.engine import ODB, create_schema
from zato.odb.models import Cluster


@pytest.fixture
def pg():
    odb = ODB(PG_URL)
    create_schema(odb.engine)
    cluster = cluster_name("pgconn")
    yield odb, cluster
    with odb.session() as s:
        s.query(Cluster).filter(Cluster.name == cluster).delete()  # cascades to definitions
    odb.dispose()


def test_definitions_on_postgresql(pg):
    odb, cluster = pg
    connectors.create(odb, cluster, "amqp-def", {"name": "rabbit", "password": "pw-pg", "use_tls": "no"})
    connectors.create(
        odb, cluster, "amqp-channel", {"name": "c", "def": "rabbit", "queue": "q", "service": "s"}
    )
    connectors.create(odb, cluster, "amqp-outgoing", {"name": "o", "def": "rabbit", "delivery_mode": "1"})
    connectors.edit(odb, cluster, "amqp-channel", "c", {"name": "c2", "max_deliveries": 9})
    loaded = {d["name"]: d for d in connectors.load_connectors(odb, cluster)}
    assert sorted(loaded) == ["c2", "o"]
    assert loaded["c2"]["max_deliveries"] == 9 and loaded["c2"]["amqp"]["password"] == "pw-pg"
    assert loaded["o"]["delivery_mode"] == 1
    with pytest.raises(ConnectorError, match="amqp-outgoing delivery_mode: 3 is not in 1..2"):
        connectors.edit(odb, cluster, "amqp-outgoing", "o", {"delivery_mode": 3})
    assert "pw-pg" not in repr(connectors.list_all(odb, cluster))
