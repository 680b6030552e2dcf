"""The admin API: a bottle app mounted under /zato/admin/ on every server.

Authentication (HTTP Basic from [auth]) happens before a request reaches this app
(zato/server/wsgi.py). Route modules each define `register(app)`; inside a route,
`worker()` is the serving Worker (settings, odb, redis, store) and `cid()` the request's CID.
Errors are answered with Zato's JSON envelope through `fail(status, detail)`.
"""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any, NoReturn

import bottle

from zato.common import jsonenc
from zato.common.errors import ODBError

logger = logging.getLogger("zato.admin")

CORE = "zato.admin.routes_core"
OPTIONAL = ("zato.admin.routes_status", "zato.admin.routes_connectors")
WORKER_KEY = "zato.worker"


def build_app(worker: Any) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True, autojson=True)
    app.config[WORKER_KEY] = worker
    app.default_error_handler = _error_page  # type: ignore[method-assign]
    app.add_hook("before_request", _each_parameter_once)
    importlib.import_module(CORE).register(app)
    for name in OPTIONAL:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(app)
    return app


def _each_parameter_once() -> None:
    """A query parameter given twice (?name=a&name=b) is refused (400): bottle took the last,
    while a proxy or a log in front may read the first, so what was checked or recorded there
    need not be what ran (HTTP parameter pollution)."""
    query = bottle.request.query
    for key in query:
        given = len(query.getall(key))
        if given > 1:
            fail(400, f"query parameter {key[:40]!r} given {given} times: give it once")


def worker() -> Any:
    return bottle.request.app.config[WORKER_KEY]


def cid() -> str:
    return bottle.request.environ.get("zato.cid", "")


def envelope(detail: str) -> str:
    return json.dumps({"zato_env": {"details": detail, "result": "ZATO_ERROR", "cid": cid()}})


def fail(status: int, detail: str) -> NoReturn:
    raise bottle.HTTPResponse(envelope(detail), status, {"Content-Type": "application/json"})


def json_body() -> dict:
    """The request body as a JSON object, or a 400 naming what is wrong."""
    try:
        data = jsonenc.loads_strict(bottle.request.body.read() or b"{}")  # NaN too is malformed
    except (ValueError, UnicodeDecodeError) as e:  # also integers over 4300 digits
        fail(400, f"malformed JSON in the request body: {jsonenc.error_text(e)}")
    except RecursionError:
        fail(400, "JSON in the request body is nested too deeply")
    if not isinstance(data, dict):
        fail(400, "the request body must be a JSON object")
    return data


def _error_page(res: bottle.HTTPError) -> str:
    bottle.response.content_type = "application/json"
    if isinstance(res.exception, ODBError):  # the ODB is away (down, its host cut off): try later
        logger.error("cid %s: admin API: %s", cid(), res.exception)
        bottle.response.status = 503
        return envelope(str(res.exception))
    if res.exception is not None and res.status_code >= 500:
        logger.error("cid %s: admin API error: %r", cid(), res.exception)
    return envelope(str(res.body) if res.status_code < 500 else "internal server error")
