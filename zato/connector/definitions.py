"""Changing connection definitions the way the CLI and the admin API both do it: update the
ODB, then publish a "connector" config event so the lease holder's supervisor restarts (or
stops) exactly the connectors whose config_hash changed, and workers drop cached definitions.
"""

from __future__ import annotations

import redis

from zato.coord import events
from zato.odb import connectors
from zato.odb.engine import ODB


def _announce(client: redis.Redis, cluster: str, kind: str, name: str, what: str) -> None:
    events.announce(client, cluster, {"kind": "connector", "type": kind, "name": name}, what)


def create(odb: ODB, client: redis.Redis, cluster: str, kind: str, values: dict) -> dict:
    events.reachable(client)  # an unreachable Redis changes nothing
    view = connectors.create(odb, cluster, kind, values)
    _announce(client, cluster, kind, view["name"], f"{kind} {view['name']}")
    return view


def edit(odb: ODB, client: redis.Redis, cluster: str, kind: str, name: str, values: dict) -> dict:
    events.reachable(client)
    view = connectors.edit(odb, cluster, kind, name, values)
    _announce(client, cluster, kind, view["name"], f"the change to {kind} {name}")
    return view


def delete(odb: ODB, client: redis.Redis, cluster: str, kind: str, name: str) -> None:
    events.reachable(client)
    connectors.delete(odb, cluster, kind, name)
    _announce(client, cluster, kind, name, f"the deletion of {kind} {name}")


def describe(view: dict) -> str:
    """One line for humans: `kind name: field=value ...` (password masked already), with what
    a value that stands for something else means: `max_in_flight=0 (the prefetch)`."""

    def shown(k: str, v: object) -> str:
        value, meaning = connectors.MEANING.get((view["kind"], k), (None, ""))
        return f"{k}={v} ({meaning})" if meaning and v == value else f"{k}={v}"

    fields = " ".join(shown(k, v) for k, v in view.items() if k not in ("kind", "name"))
    return f"{view['kind']} {view['name']}: {fields}"
