"""The dashboard's routes (bottle on gevent's WSGI server).

GET  /login, POST /login, POST /logout          session cookie; logout needs the CSRF token
GET  /                                          the overview page (login required)
GET  /api/state                                 the current snapshot as JSON
GET  /api/events                                server-sent events: a snapshot per change
POST /api/servers/NAME/drain|ready              actions: X-CSRF-Token header (or csrf field)
POST /api/connectors/NAME/restart
POST /api/deploy                                multipart, field "module" (a .py file)
POST /api/outgoing/KIND/NAME/resend
POST /api/channels/amqp/NAME/replay             an AMQP channel's parked messages back on its queue
POST /api/async/requeue                         invoke_async calls parked (their workers died) run again

An action answers 200 with its result, or an error: 400 (a bad argument), 403 (CSRF), 404 (a
name the cluster does not have), 409 (the same replay or re-send already running in this
dashboard), 502 (the AMQP broker refused), 503 (Redis, the ODB or the AMQP broker could not be
reached, or Redis refused the command: a replica, its ACL; try again once it answers or takes it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import bottle

from zato.common.errors import (
    ConnectorError,
    CoordDataError,
    CoordError,
    CoordForbidden,
    CoordRefused,
    CoordUnavailable,
    ODBUnavailable,
    ZatoError,
)
from zato.coord import health
from zato.dashboard import actions
from zato.dashboard.auth import CSRF_HEADER, LoginThrottle, Session, Sessions, cookie_name, csrf_ok
from zato.dashboard.page import ALIVE_EVERY, login_page, overview_page

logger = logging.getLogger("zato.dashboard")

KEEPALIVE = ALIVE_EVERY  # seconds between "alive" events while nothing changes
MAX_UPLOAD = 1024 * 1024


def _json(status: int, doc: dict) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(json.dumps(doc), status, {"Content-Type": "application/json"})


def _remote() -> str:
    return bottle.request.environ.get("REMOTE_ADDR", "?")


def _why(e: ZatoError) -> BaseException:
    """What made `e`: a plain CoordError says what was saved before Redis failed to tell the
    servers (zato.coord.events.announce, raised from None): its context is the failure."""
    if type(e) is CoordError and e.__context__ is not None:
        return e.__context__
    return e


def failure(name: str, e: ZatoError, cluster: str = "") -> tuple[int, str]:
    """The HTTP status and error text of action `name` that raised `e`: 503 when something it
    needs could not be reached or refused it for now (a replica, its ACL, a key of the cluster
    holding another type: it was not the request's fault, and works once that is mended), 500
    when Redis answered another error (a bug, or a key another client wrote), with what to do."""
    why = _why(e)
    if isinstance(why, CoordUnavailable) and not isinstance(why, CoordRefused):
        said = str(e)
        return 503, f"{name}: {said}" if "Redis" in said else f"{name}: Redis could not be reached: {said}"
    if isinstance(why, CoordRefused) and health.is_replica(why):  # what to do, as the servers' logs say
        said = str(e)  # a change refused by zato.coord.events.reachable says it already
        return 503, f"{name}: {said}" if health.REPLICA in said else f"{name}: {said}; {health.REPLICA}"
    if isinstance(why, (CoordUnavailable, CoordForbidden, ODBUnavailable)):
        return 503, f"{name}: {e}"
    if isinstance(why, CoordDataError):  # a key of another type, or another error Redis answered
        hint = health.what_to_do(why, cluster=cluster)
        return (503 if health.kind(why) == health.WRONGTYPE_KIND else 500), f"{name}: {e}; {hint}"
    if isinstance(e, ConnectorError):
        from zato.connector.amqp_replay import BrokerUnreachable, ReplayError

        if isinstance(e, BrokerUnreachable):
            return 503, f"{name}: {e}"
        if isinstance(e, ReplayError):
            return 502, f"{name}: {e}"  # the broker answered, and refused
    return getattr(e, "status", 400), f"{name}: {e}"


def build_app(ctx: Any) -> bottle.Bottle:
    """ctx: settings, sessions (Sessions), collector (state.Collector), client, odb, changed()."""
    app = bottle.Bottle(catchall=True)
    sessions: Sessions = ctx.sessions
    running = actions.Running()  # replays and re-sends: one of each at a time
    throttle = LoginThrottle()  # 10 failed logins a minute per address, as [admin] max_failures
    cookie = cookie_name(ctx.settings.port)

    def session() -> Session | None:
        return sessions.get(bottle.request.get_cookie(cookie))

    def page_login() -> Session:
        s = session()
        if s is None:
            raise bottle.HTTPResponse(status=303, headers={"Location": "login"})
        return s

    def api_login() -> Session:
        s = session()
        if s is None:
            raise _json(401, {"error": "log in first"})
        return s

    @app.get("/login")
    def login_form() -> str:
        return login_page(ctx.settings.cluster)

    @app.post("/login")
    def login() -> Any:
        user = bottle.request.forms.getunicode("username") or ""
        address = _remote()
        wait = throttle.blocked(address)
        if wait:
            logger.warning("dashboard: login of %r from %s refused: too many failed logins", user, address)
            bottle.response.status = 429
            bottle.response.set_header("Retry-After", str(int(wait) + 1))
            return login_page(ctx.settings.cluster, "Too many failed logins from here; try again later.")
        token = sessions.login(user, bottle.request.forms.getunicode("password") or "")
        if token is None:
            throttle.failed(address)
            logger.warning("dashboard: failed login for user %r from %s", user, address)
            bottle.response.status = 401
            return login_page(ctx.settings.cluster, "Wrong user or password.")
        logger.info("dashboard: user %s logged in from %s", user, _remote())
        bottle.response.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
        bottle.redirect("./", 303)

    @app.post("/logout")
    def logout() -> Any:
        s = api_login()
        if not csrf_ok(s, bottle.request.forms.get("csrf") or bottle.request.get_header(CSRF_HEADER)):
            logger.warning("dashboard: logout of %s refused: missing or wrong CSRF token", s.user)
            raise _json(403, {"error": "missing or wrong CSRF token"})
        sessions.logout(bottle.request.get_cookie(cookie))
        logger.info("dashboard: user %s logged out", s.user)
        bottle.response.delete_cookie(cookie, path="/")
        bottle.redirect("login", 303)

    @app.get("/")
    def overview() -> str:
        s = page_login()
        return overview_page(ctx.settings.cluster, s.user, s.csrf)

    @app.get("/api/state")
    def state() -> Any:
        api_login()
        return _json(200, ctx.collector.snapshot)

    @app.get("/api/events")
    def stream() -> Iterator[str]:
        api_login()
        token = bottle.request.get_cookie(cookie)
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")
        return _events(ctx, lambda: sessions.get(token) is not None)

    def action(name: str, run: Callable[[], str], alone: bool = False) -> Any:
        """alone: refused (409) while an action of the same name runs (a second click)."""
        s = api_login()
        given = bottle.request.get_header(CSRF_HEADER) or bottle.request.forms.get("csrf")
        if not csrf_ok(s, given):
            logger.warning(
                "dashboard: %s by %s from %s refused: missing or wrong CSRF token", name, s.user, _remote()
            )
            return _json(403, {"error": "missing or wrong CSRF token"})
        try:
            if alone:
                with running.only_one(name):
                    result = run()
            else:
                result = run()
        except ZatoError as e:
            logger.warning("dashboard: user %s: %s failed: %s", s.user, name, e)
            status, error = failure(name, e, ctx.settings.cluster)
            return _json(status, {"error": error})
        logger.info("dashboard: user %s: %s: %s", s.user, name, result)
        ctx.wake()
        return _json(200, {"result": result})

    @app.post("/api/servers/<server>/<state:re:drain|ready>")
    def lb_state(server: str, state: str) -> Any:
        return action(
            f"{state} server {server}",
            lambda: actions.set_lb_state(ctx.settings, ctx.client, ctx.odb, server, state),
        )

    @app.post("/api/servers/<server>/forget")
    def forget(server: str) -> Any:
        return action(
            f"forget server {server}",
            lambda: actions.forget_server(ctx.settings, ctx.odb, ctx.client, server),
        )

    @app.post("/api/connectors/<connector>/restart")
    def restart(connector: str) -> Any:
        return action(
            f"restart connector {connector}",
            lambda: actions.restart_connector(ctx.settings, ctx.client, ctx.odb, connector),
        )

    @app.post("/api/outgoing/<kind>/<connection>/resend")
    def resend(kind: str, connection: str) -> Any:
        return action(
            f"re-send parked {kind} {connection}",
            lambda: actions.resend_parked(ctx.settings, ctx.client, kind, connection, ctx.odb),
            alone=True,
        )

    @app.post("/api/channels/amqp/<channel>/replay")
    def replay(channel: str) -> Any:
        return action(
            f"replay parked amqp-channel {channel}",
            lambda: actions.replay_parked(ctx.settings, ctx.odb, channel),
            alone=True,
        )

    @app.post("/api/async/requeue")
    def requeue_async() -> Any:
        return action(
            "queue parked invoke_async calls again",
            lambda: actions.requeue_async(ctx.settings, ctx.client),
            alone=True,
        )

    @app.post("/api/deploy")
    def deploy() -> Any:
        def run() -> str:
            upload = bottle.request.files.get("module")
            if upload is None:
                raise actions.ActionError("no file in the upload (field 'module')")
            data = upload.file.read(MAX_UPLOAD + 1)
            if len(data) > MAX_UPLOAD:
                raise actions.ActionError(f"{upload.raw_filename}: larger than {MAX_UPLOAD} bytes")
            return actions.deploy_module(ctx.settings, ctx.odb, ctx.client, upload.raw_filename, data)

        return action("deploy", run)

    @app.post("/api/modules/<module>/undeploy")
    def undeploy(module: str) -> Any:
        return action(
            f"undeploy module {module}",
            lambda: actions.undeploy_module(ctx.settings, ctx.odb, ctx.client, module),
        )

    return app


def _events(ctx: Any, still_logged_in: Callable[[], bool]) -> Iterator[str]:
    """The snapshot now, then each new one as it comes; an "alive" event every KEEPALIVE seconds
    while nothing changes keeps proxies open and tells the page the dashboard still answers."""
    seen = -1
    while still_logged_in():
        snap = ctx.collector.snapshot
        if snap.get("version", 0) != seen:
            seen = snap.get("version", 0)
            yield "data: " + json.dumps(snap, default=str) + "\n\n"
        elif not ctx.wait_change(KEEPALIVE):  # an event, not a comment: the page hears it (page.SILENCE)
            yield "event: alive\ndata: {}\n\n"
