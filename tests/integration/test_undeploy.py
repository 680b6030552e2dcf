"""Undeploy as one worker sees it, against a real ODB (SQLite) and Redis: a worker that missed
the event (pub/sub loses what is published while a subscriber is away) drops the module when
it reconciles, and a late event never takes away a module that was deployed again."""

from __future__ import annotations

from tests.support import REDIS_URL
from zato.config.settings import RedisSettings, ServerSettings
from zato.odb import api as odb_api
from zato.odb.engine import ODB, create_schema
from zato.server.worker import Worker
from zato.service.deploy import deploy

SOURCE = "from zato.service import Service\n\nclass Bye(Service):\n    name = 'bye.one'\n"


def test_a_worker_that_missed_the_event_drops_the_module_when_it_reconciles(tmp_path, cluster, client):
    url = f"sqlite:///{tmp_path / 'odb.db'}"
    odb = ODB(url)
    create_schema(odb.engine)
    odb_api.ensure_cluster(odb, cluster)
    settings = ServerSettings(
        path=str(tmp_path), name="s1", cluster=cluster, host="127.0.0.1", port=1, workers=1, odb_url=url,
        redis=RedisSettings(url=REDIS_URL), admin_username="admin", admin_password="pw", cluster_secret="s",
    )  # fmt: skip
    worker = Worker(settings)
    try:
        deploy(odb, client, cluster, "bye", SOURCE)
        worker.reconcile()
        assert "bye.one" in worker.store.services
        assert odb_api.delete_module(odb, cluster, "bye") == ["bye.one"]  # no event: missed
        worker.reconcile()
        assert "bye.one" not in worker.store.services and "bye" not in worker.store.modules
        deploy(odb, client, cluster, "bye", SOURCE)  # deployed again before a late event arrives
        worker.reconcile()
        worker.on_event({"kind": "undeploy", "module": "bye"})
        assert "bye.one" in worker.store.services
        odb_api.delete_module(odb, cluster, "bye")
        worker.on_event({"kind": "undeploy", "module": "bye"})
        assert "bye.one" not in worker.store.services
    finally:
        worker.close()
        odb.dispose()
