"""What an operator can do from the dashboard. Each function returns a one-line result or
raises ActionError with a message for the page; the route logs it with the user.

- drain / ready a server in the LB: an operator hold in Redis that the LB controller applies
  (and keeps applying; a Runtime API change alone would be undone by its next reconcile),
  plus the Runtime API at once when the LB runs on this host.
- restart one connector: an event the holder's supervisor acts on.
- deploy a module: validated in a child process, stored in the ODB, loaded by every server.
- undeploy a module: removed from the ODB, dropped by every server.
- re-send parked outgoing messages: moved back to the connection's queue.
- replay an AMQP channel's parked messages: moved back to its queue, as `zato conn
  replay-parked` (zato.connector.amqp_replay).
- forget a server that is gone for good: off the cluster's list (zato cluster forget).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from zato.common.errors import ZatoError
from zato.config.settings import DashboardSettings
from zato.coord import events, membership

NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
OUTGOING_KINDS = ("amqp", "ibm-mq", "ibmmq")


class ActionError(ZatoError):
    status = 400  # the HTTP status the route answers with


class ActionNotFound(ActionError):
    """The action names a server, connector or module the cluster does not have."""

    status = 404


class ActionConflict(ActionError):
    """The same action is already running in this dashboard (a second click, another tab)."""

    status = 409


class Running:
    """The actions running in this dashboard process, by name: one of each at a time. Two
    replays of one channel at once would each count the parked messages and take them in
    turns: one parked again meanwhile would be taken round again, and each click would say
    half of what moved."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._since: dict[str, float] = {}
        self._clock = clock

    @contextlib.contextmanager
    def only_one(self, name: str) -> Iterator[None]:
        """ActionConflict while an action of this name runs; no switch between the check and
        the mark (one gevent thread), so two requests cannot both pass."""
        started = self._since.get(name)
        if started is not None:
            ago = max(0, round(self._clock() - started))
            raise ActionConflict(
                f"already running (started {ago} s ago): try again once it has ended"
                " (its result is shown on the page that started it and in logs/dashboard.log)"
            )
        self._since[name] = self._clock()
        try:
            yield
        finally:
            del self._since[name]


def _name(value: str, what: str) -> str:
    if not NAME_RE.match(value or ""):
        raise ActionError(f"{what} {value!r} is not a valid name")
    return value


def _known_server(settings: DashboardSettings, odb: Any, client: Any, server: str) -> bool | None:
    """ActionNotFound unless `server` is registered in the ODB or a live member of the cluster;
    whether it runs now (None: Redis could not say)."""
    from zato.coord.signing import member_key
    from zato.odb import api as odb_api

    registered = [r.name for r in odb_api.list_servers(odb, settings.cluster)]
    key = member_key(settings.cluster_secret, settings.cluster) if settings.cluster_secret else None
    try:
        live: list[str] | None = [m.name for m in membership.live_servers(client, settings.cluster, key)]
    except ZatoError:  # Redis away: the ODB's list decides
        live = None
    if server not in registered and server not in (live or []):
        names = ", ".join(sorted({*registered, *(live or [])})) or "none"
        raise ActionNotFound(f"no server named {server!r} in cluster {settings.cluster} (servers: {names})")
    return None if live is None else server in live


def set_lb_state(settings: DashboardSettings, client: Any, odb: Any, server: str, state: str) -> str:
    """state "drain" or "ready"."""
    _name(server, "server")
    if state not in ("drain", "ready"):
        raise ActionError(f"unknown LB state {state!r}")
    running = _known_server(settings, odb, client, server)
    membership.set_operator_drain(client, settings.cluster, server, state == "drain")
    if running is False:  # not in HAProxy now: the LB controller applies the hold when it is back
        then = "no new requests until made ready" if state == "drain" else "requests as usual"
        said = f"server {server} set to {state} in the load balancer"
        return f"{said}; it is not running now: once back, it gets {then}"
    note = ""
    if settings.lb_dir:
        from zato.lb import render
        from zato.lb.runtime import RuntimeAPI

        try:  # the hold is made: this host's LB at once is a bonus (its lb.conf gone: said, not refused)
            lb = _lb_settings(settings.lb_dir)
            runtime = RuntimeAPI(lb.stats_socket, timeout=1.0)
            runtime.set_state(render.BACKEND, render.haproxy_name(server), state)
        except ZatoError as e:
            note = f" (the LB controller applies it; the Runtime API said: {e})"
    return f"server {server} set to {state} in the load balancer{note}"


def _lb_settings(lb_dir: str) -> Any:
    from zato.config.settings import load_lb_settings

    return load_lb_settings(lb_dir)


def restart_connector(settings: DashboardSettings, client: Any, odb: Any, connector: str) -> str:
    from zato.coord.lease import read_supervisor_status
    from zato.odb.connectors import active_connector_names

    _name(connector, "connector")
    names = set(active_connector_names(odb, settings.cluster))  # what the holder must run
    try:
        running = read_supervisor_status(client, settings.cluster) or {}
    except ZatoError:  # Redis away: the event below cannot be sent either, and says so
        running = {}
    names.update(str(c.get("name")) for c in running.get("children", []))
    if connector not in names:
        listed = ", ".join(sorted(names)) or "none"
        cluster = settings.cluster
        raise ActionNotFound(f"no connector named {connector!r} in cluster {cluster} (connectors: {listed})")
    events.reachable(client, settings.cluster)  # a replica takes the event and tells no holder
    events.publish(client, settings.cluster, {"kind": "connector-restart", "name": connector})
    return f"connector {connector}: restart requested from the lease holder"


def deploy_module(settings: DashboardSettings, odb: Any, client: Any, filename: str, source: bytes) -> str:
    from zato.service.deploy import deploy, module_name_of

    if not filename.endswith(".py"):
        raise ActionError(f"{filename!r}: upload a Python module (a .py file)")
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        raise ActionError(f"{filename!r} is not UTF-8 text") from None
    result = deploy(odb, client, settings.cluster, module_name_of(filename), text, 10.0)
    return "; ".join(
        ["; warning: ".join([result.describe(), *result.warnings()]), *_loaded(settings, client, result)]
    )


LOADED_WAIT = 15.0  # seconds the Deploy button's answer waits for every worker to load the module


def _loaded(settings: DashboardSettings, client: Any, result: Any) -> list[str]:
    """Whether every live worker loaded the version deployed (`zato deploy --wait`'s answer):
    the servers load it a worker at a time after the deploy returned, and a service called as
    soon as the page said "deployed" was not there yet. Without [auth] cluster_secret the
    dashboard cannot tell the live servers, and says nothing of it."""
    from zato.common.errors import CoordError
    from zato.coord import loaded
    from zato.coord.signing import member_key

    if not settings.cluster_secret:
        return []
    key = member_key(settings.cluster_secret, settings.cluster)
    try:
        waited = loaded.wait(client, settings.cluster, key, result.module, result.version, LOADED_WAIT)
    except CoordError as e:
        return [f"warning: cannot tell whether the servers loaded it: {e}"]
    if not waited.workers:
        return ["no server is running: each loads it as it starts"]
    if waited.failed:
        worker, error = sorted(waited.failed.items())[0]
        more = f" (and {len(waited.failed) - 1} more)" if len(waited.failed) > 1 else ""
        return [f"warning: worker {worker}{more} could not load it: {error}"]
    if waited.missing:
        return [
            f"warning: not loaded within {LOADED_WAIT:g} s by worker(s) {', '.join(waited.missing)}"
            " (the server log says why)"
        ]
    return [f"loaded by every worker in {waited.seconds:.2f} s ({len(waited.workers)})"]


# messages one click moves (an AMQP channel's replay: about 10 s here); the answer says how many are left
REPLAY_LIMIT = 10000


def resend_parked(settings: DashboardSettings, client: Any, kind: str, connection: str, odb: Any) -> str:
    from zato.connector import definitions
    from zato.odb.connectors import DefinitionNotFound

    if kind not in OUTGOING_KINDS:
        raise ActionError(f"unknown outgoing kind {kind!r}")
    _name(connection, "connection")
    outgoing = "ibm-mq-outgoing" if kind in ("ibm-mq", "ibmmq") else f"{kind}-outgoing"
    try:
        moved = definitions.resend_parked(odb, client, settings.cluster, outgoing, connection, REPLAY_LIMIT)
    except DefinitionNotFound:
        where = f"in cluster {settings.cluster}"
        raise ActionNotFound(f"no outgoing {kind} connection named {connection!r} {where}") from None
    from zato.coord.queues import OutQueue

    left = OutQueue(client, settings.cluster, outgoing.removesuffix("-outgoing"), connection).parked_count()
    return f"outgoing {kind} {connection}: {moved} parked message(s) queued again" + _left(moved, left)


def _left(moved: int, left: int) -> str:
    """What a click that moved its most (REPLAY_LIMIT) left parked; "" after one that moved all."""
    return f"; {left} still parked: click again to move them" if left and moved >= REPLAY_LIMIT else ""


def replay_parked(settings: DashboardSettings, odb: Any, channel: str, limit: int = REPLAY_LIMIT) -> str:
    """The parked messages of AMQP channel `channel` back on its queue (all parked now, up to
    `limit`: the answer says how many are left). A TLS broker is verified against
    dashboard.conf's [tls] ca_file when set, else against the system's CAs."""
    from zato.connector.amqp_replay import replay_channel
    from zato.odb.connectors import DefinitionNotFound

    _name(channel, "channel")
    try:
        result = replay_channel(odb, settings.cluster, channel, settings.tls_ca_file, limit)
    except DefinitionNotFound as e:
        raise ActionNotFound(str(e)) from None
    return "; warning: ".join([result.describe(), *result.warnings()])


def requeue_async(settings: DashboardSettings, client: Any) -> str:
    from zato.coord.async_invoke import parked_count, requeue_parked

    moved = requeue_parked(client, settings.cluster, REPLAY_LIMIT)
    left = parked_count(client, settings.cluster)
    return f"invoke_async: {moved} parked call(s) queued again" + _left(moved, left)


def undeploy_module(settings: DashboardSettings, odb: Any, client: Any, module: str) -> str:
    from zato.service.deploy import undeploy

    result = undeploy(odb, client, settings.cluster, _name(module, "module"))
    return "; warning: ".join([result.describe(), *result.warnings()])


def forget_server(settings: DashboardSettings, odb: Any, client: Any, server: str) -> str:
    from zato.coord.signing import member_key
    from zato.odb import api as odb_api

    _name(server, "server")
    key = member_key(settings.cluster_secret, settings.cluster) if settings.cluster_secret else None
    cluster = settings.cluster
    if not membership.forget(
        client, cluster, key, server, lambda: odb_api.delete_server(odb, cluster, server)
    ):
        raise ActionNotFound(f"no server named {server!r} in cluster {cluster}")
    return f"server {server} forgotten: no longer listed in cluster {cluster}"
