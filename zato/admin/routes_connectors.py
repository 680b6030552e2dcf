"""Admin API routes for connection definitions: AMQP, IBM MQ, ZeroMQ, outgoing HTTP and SQL (live).

    GET    /conn                 every definition (?kind= to filter); passwords masked
    GET    /conn/<kind>/<name>   one definition
    POST   /conn/<kind>          create, JSON body {"name": ..., field: value, ...}
    PATCH  /conn/<kind>/<name>   change the given fields (PUT does the same)
    DELETE /conn/<kind>/<name>   delete (its connector stops)

kind: amqp-def | amqp-channel | amqp-outgoing | ibm-mq-def | ibm-mq-channel | ibm-mq-outgoing |
zmq-channel | zmq-outgoing | http-outgoing | sql-outgoing | security (what an HTTP channel's
callers must present; its password or key is kept hashed and never shown).
Bad input answers 400 naming the field, an unknown name 404. A create or edit naming a service
that no server has succeeds with "warnings": [...] in its answer; so does a create, edit or
delete whose Redis step ran although Redis's answer to it was lost (zato.coord.changes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import bottle

from zato.admin.api import fail, json_body, worker
from zato.common.errors import ConnectorError, ZatoError
from zato.connector import definitions
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.connectors import DefinitionNotFound


def register(app: bottle.Bottle) -> None:
    app.route("/conn", "GET", list_all)
    app.route("/conn/<kind>/<name>", "GET", get_one)
    app.route("/conn/<kind>", "POST", create)
    app.route("/conn/<kind>/<name>", ["PATCH", "PUT"], edit)
    app.route("/conn/<kind>/<name>", "DELETE", delete)


T = TypeVar("T")


def _call(func: Callable[[], T]) -> T:
    try:
        return func()
    except DefinitionNotFound as e:
        fail(404, str(e))
    except ConnectorError as e:
        fail(400, str(e))
    except ZatoError as e:
        fail(503, str(e))


def list_all() -> dict:
    w = worker()
    kind = bottle.request.query.get("kind") or None
    return {"connections": _call(lambda: connectors.list_all(w.odb, w.settings.cluster, kind))}


def get_one(kind: str, name: str) -> dict:
    w = worker()
    return _call(lambda: connectors.get(w.odb, w.settings.cluster, kind, name))


def create(kind: str) -> dict:
    w = worker()
    data = json_body()
    lost: list[str] = []  # Redis's answer lost, its part made all the same
    view = _call(
        lambda: definitions.create(w.odb, w.redis, w.settings.cluster, kind, data, None, lost.append)
    )
    bottle.response.status = 201
    return _warned(view, data, *lost)


def edit(kind: str, name: str) -> dict:
    w = worker()
    data = json_body()
    if not data:
        fail(400, f"nothing to change in {kind} {name!r}: the body names no field")
    lost: list[str] = []
    cluster = w.settings.cluster
    view = _call(lambda: definitions.edit(w.odb, w.redis, cluster, kind, name, data, None, lost.append))
    return _warned(view, data, *lost, _call(lambda: definitions.inactive_note(w.redis, cluster, view)))


def _warned(view: dict, data: dict, *notes: str) -> dict:
    """The definition, with "warnings" when the request named a service no server has, made
    an outgoing connection inactive while messages wait to go out through it, or went through
    although Redis's answer was lost (`notes`)."""
    w = worker()
    service = data.get("service") if isinstance(data.get("service"), str) else None
    warnings = [odb_api.unknown_service(w.odb, w.settings.cluster, service, "its messages"), *notes]
    warnings = [x for x in warnings if x]
    return {**view, "warnings": warnings} if warnings else view


def delete(kind: str, name: str) -> dict:
    """?force=true: an outgoing connection also while messages wait to go out through it (they
    stay in Redis: `left`); without it, that is a 400 saying how many wait. A ZeroMQ channel's
    messages handed over between its connectors go with it (`dropped`, also in server.log)."""
    w = worker()
    force = bottle.request.query.get("force", "").lower() in ("1", "true", "yes")
    lost: list[str] = []
    gone = _call(
        lambda: definitions.delete(w.odb, w.redis, w.settings.cluster, kind, name, force, lost.append)
    )
    counts = {k: v for k, v in gone._asdict().items() if v}
    return {"deleted": f"{kind} {name}", **counts, **({"warnings": lost} if lost else {})}
