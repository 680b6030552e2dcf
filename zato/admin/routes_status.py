"""Admin API: GET /zato/admin/cluster/status, the data of `zato cluster status` as JSON."""

from __future__ import annotations

import bottle

from zato.admin.api import worker
from zato.common.errors import ZatoError
from zato.coord.signing import member_key
from zato.coord.status import KnownServer, collect
from zato.odb import api as odb_api


def register(app: bottle.Bottle) -> None:
    app.route("/cluster/status", "GET", cluster_status)


def cluster_status() -> dict:
    w = worker()
    known: list[KnownServer] = []
    odb_error = ""
    try:
        known = [KnownServer(r.name, r.host, r.port) for r in odb_api.list_servers(w.odb, w.settings.cluster)]
    except ZatoError as e:
        odb_error = f"ODB: {e}"
    key = member_key(w.settings.cluster_secret, w.settings.cluster)
    data = collect(w.redis, w.settings.cluster, known, key=key)
    if odb_error:
        data["errors"].append(odb_error)
    data["answered_by"] = w.settings.name
    return data
