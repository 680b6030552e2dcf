"""Admin API: GET /zato/admin/cluster/status, the data of `zato cluster status` as JSON."""

from __future__ import annotations

import bottle

from zato.admin.api import worker
from zato.coord.signing import member_key
from zato.coord.status import collect
from zato.odb import api as odb_api


def register(app: bottle.Bottle) -> None:
    app.route("/cluster/status", "GET", cluster_status)


def cluster_status() -> dict:
    w = worker()
    cluster = w.settings.cluster
    key = member_key(w.settings.cluster_secret, cluster)
    data = collect(w.redis, cluster, key=key, registered=lambda: odb_api.list_servers(w.odb, cluster))
    data["answered_by"] = w.settings.name
    return data
