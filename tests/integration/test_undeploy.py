"""Undeploy as one worker sees it, against a real ODB (SQLite) and Redis: a worker that missed
the event (pub/sub loses what is published while a subscriber is away) drops the module when
it reconciles, and a late event never takes away a module that was deployed again."""

from __future__ import annotations

from tests.support import sqlite_worker
from zato.odb import api as odb_api
from zato.service.deploy import deploy

SOURCE = "from zato.service import Service\n\nclass Bye(Service):\n    name = 'bye.one'\n"


def test_a_worker_that_missed_the_event_drops_the_module_when_it_reconciles(tmp_path, cluster, client):
    with sqlite_worker(tmp_path, cluster) as (odb, worker):
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
