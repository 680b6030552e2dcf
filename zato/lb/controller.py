"""The load-balancer controller loop: keep HAProxy running and its backend equal to the
cluster's live members.

Every tick (on a membership message from Redis pub/sub, or every POLL seconds as a safety
net) the controller reconciles: it reads the members from Redis and the servers from HAProxy
(`show stat`), and applies the difference through the Runtime API, with no reload:

    member appears                 add server, enable health checks, state ready
    member without health checks   enable health (an add cut short: killed between commands)
    member says "draining"         state drain (no new requests; requests in flight finish)
    member's key is gone           state drain, then del server once it has no sessions
                                   (or after DRAIN_GRACE), so a missed heartbeat never fails
                                   a request: a key that comes back sets the server ready again
    member crashes                 HAProxy's own health checks mark it DOWN within ~1 s

After a change the backend is written back to haproxy.cfg (validated by `haproxy -c`, then
replaced atomically) so a restart or reload shows the same servers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import redis

from zato.common.errors import ConfigError, CoordError, LBError, ZatoError
from zato.common.pidfile import remove_pidfile, write_pidfile
from zato.common.retry import Backoff
from zato.common.signalflag import SignalFlag, Wakeup
from zato.config.settings import LBSettings
from zato.coord import lb_view, subscribe
from zato.coord.client import connect, describe
from zato.coord.health import what_to_do
from zato.coord.keys import Keys
from zato.coord.membership import Member, RedisMembership
from zato.coord.port import Membership
from zato.coord.signing import member_key
from zato.lb import reconcile as plan
from zato.lb import render as r
from zato.lb.haproxy import HAProxy, remove_stale_checks, write_config
from zato.lb.runtime import ServerState

logger = logging.getLogger(__name__)

Loader = Callable[[], "tuple[LBSettings, str]"]

POLL = 0.25  # seconds between reconciliations when nothing is published
RESTART_START, RESTART_MAX = 0.1, 5.0  # seconds before restarting a dead HAProxy: doubling, capped
STABLE_AFTER = 30.0  # HAProxy running this long resets the backoff
TLS_PROBE_EVERY = 30.0  # a server DOWN on failed TLS checks: why, found out at most this often
RELOAD_MIN_INTERVAL = 10.0  # at most one fallback reload this often


class Controller:
    def __init__(
        self,
        settings: LBSettings,
        binary: str,
        loader: Loader | None = None,
        membership: Membership | None = None,
    ):
        self.settings = settings
        self.loader = loader  # re-reads lb.conf on SIGHUP
        self._reload = Wakeup()  # set by SIGHUP's handler: no lock (zato.common.signalflag)
        self.binary = binary
        self.haproxy = HAProxy(settings, binary)
        self.client: redis.Redis = connect(settings.redis)
        # Only signed members; the coordination port, so a test can give the in-memory twin.
        self.membership: Membership = membership or RedisMembership(
            self.client, settings.cluster, member_key(settings.cluster_secret, settings.cluster)
        )
        self._stop = SignalFlag()  # set by SIGTERM's handler
        self._wake = Wakeup()
        self._drain_started: dict[str, float] = {}
        self._down_since: dict[str, float] = {}  # members HAProxy shows DOWN, since when
        self._empty_since: float | None = None  # membership read empty since (monotonic)
        self._persisted: list[r.Backend] | None = None
        self._restart = Backoff(RESTART_START, RESTART_MAX)
        self._started_at = 0.0
        self._redis_ok = True
        self._redis_failed_at = 0.0  # monotonic: when membership became unreadable
        self._last_reload = -RELOAD_MIN_INTERVAL
        self._warned: set[str] = set()  # warnings of the last tick, not repeated
        self._seen: set[str] = set()
        self._tls_why: dict[str, tuple[float, str]] = {}  # server -> (probed at, why its TLS checks fail)
        self.lb_id = f"{socket.gethostname()}:{settings.port}"
        self._view: tuple[list[str], dict[str, str]] | None = None  # what lb_view last published
        self._view_at = 0.0  # monotonic: when it was last published or renewed

    # Signals only set flags; the loop does the work (gunicorn arbiter style).
    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    def run(self) -> None:
        stale = remove_stale_checks()
        if stale:
            logger.info("removed %d HAProxy config check folder(s) a killed controller left: %s",
                        len(stale), ", ".join(stale))  # fmt: skip
        self._start_haproxy(adopt=True)
        write_pidfile(self.settings.ready_file)
        threading.Thread(target=self._listen, name="members-listener", daemon=True).start()
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload_settings()
                self._supervise()
                self._reconcile_safely()
                self._wake.wait(POLL)
                self._wake.clear()
        finally:
            remove_pidfile(self.settings.ready_file)
            self.haproxy.stop()
            self._withdraw_view()
            self.client.close()

    # HAProxy process

    def _start_haproxy(self, adopt: bool) -> None:
        backends = self._desired_backends()
        text = r.render(self.settings, backends or [])
        if adopt and self.haproxy.adopt():
            changed = _static_part(_read(self.settings.haproxy_cfg)) != _static_part(text)
            write_config(self.binary, self.settings, text)
            if changed:
                self.haproxy.reload()
        else:
            write_config(self.binary, self.settings, text)
            self.haproxy.start()
        self._persisted = backends
        self._started_at = time.monotonic()

    def _reload_settings(self) -> None:
        """SIGHUP: read lb.conf again; a valid change is applied by a reload (the Runtime API
        cannot change the frontend), a bad one is logged and the running config kept."""
        self._reload.clear()
        if self.loader is None:
            return
        try:
            settings, binary = self.loader()
            now = (settings.cluster, settings.redis, settings.cluster_secret)
            if now != (self.settings.cluster, self.settings.redis, self.settings.cluster_secret):
                raise ConfigError("[cluster], [kvdb] and [auth] changes need a restart of the load balancer")
            write_config(binary, settings, r.render(settings, self._persisted or []))
        except ZatoError as e:
            logger.error("lb.conf not applied, the running config is kept: %s", e)
            return
        self.settings, self.binary = settings, binary
        self.haproxy.settings, self.haproxy.binary = settings, binary
        self.haproxy.reload()
        logger.info("lb.conf re-read and applied")

    def _supervise(self) -> None:
        if self.haproxy.alive():
            if time.monotonic() - self._started_at > STABLE_AFTER:
                self._restart.reset()
            return
        code = self.haproxy.reap()
        delay = self._restart.next()
        logger.error(
            "HAProxy (pid %s) is gone (exit code %s); restarting in %.1f s", self.haproxy.pid, code, delay
        )
        if self._stop.wait(delay):
            return
        try:
            self._start_haproxy(adopt=False)
        except LBError:
            logger.exception("could not restart HAProxy")

    # Membership

    def _members(self) -> list[Member] | None:
        """The live members, or None when Redis cannot say (then nothing is changed)."""
        try:
            members = self.membership.live_servers()
            held = self.membership.operator_drained()
        except CoordError as e:
            if self._redis_ok:  # once while it lasts: the loop reads it 4 times a second
                self._redis_failed_at = time.monotonic()
                where = describe(self.settings.redis)
                logger.warning("cannot read membership, keeping the current servers: %s; Redis at %s: %s",
                               e, where, what_to_do(e, cluster=self.settings.cluster))  # fmt: skip
            self._redis_ok = False
            return None
        if not self._redis_ok:
            logger.info("membership readable again: Redis answers again at %s after %.1f s",
                        describe(self.settings.redis), time.monotonic() - self._redis_failed_at)  # fmt: skip
        self._redis_ok = True
        return [replace(m, state="draining") if m.name in held else m for m in members]

    def _desired_backends(self) -> list[r.Backend] | None:
        members = self._members()
        if members is None:
            return servers_in_file(_read(self.settings.haproxy_cfg))
        backends = []
        for m in members:
            try:
                backends.append(_backend(m))
            except LBError as e:
                logger.warning("server %s left out: %s", m.name, e)
        return backends

    def _listen(self) -> None:
        """Wake the loop at once when a member joins, drains or leaves."""
        client = connect(self.settings.redis, socket_timeout=5)
        try:
            subscribe.listen_forever(
                lambda: client,
                Keys(self.settings.cluster).members_channel,
                lambda _: self._wake.set(),
                self._stop.is_set,
                on_error=lambda e: logger.debug("membership channel: %s; polling only for a while", e),
                sleep=self._stop.wait,
                backoff=Backoff(1.0, 1.0),
                poll=1.0,
            )
        finally:
            client.close()

    # Reconciliation

    def _reconcile_safely(self) -> None:
        self._seen = set()
        try:
            self.reconcile()
        except LBError as e:
            self._warn(f"reconcile: {e}")
        except Exception as e:  # a bug here must not take HAProxy, and the traffic, down with it
            message = f"reconcile failed; HAProxy keeps the servers it has: {type(e).__name__}: {e}"[:400]
            if message not in self._warned:  # with its traceback, once while it lasts
                logger.exception("%s", message)
            self._seen.add(message)
        self._warned = self._seen

    def _warn(self, message: str) -> None:
        """Log a warning once, not on every tick while the same problem lasts."""
        if message not in self._warned:
            logger.warning("%s", message)
        self._seen.add(message)

    def reconcile(self) -> None:
        members = self._members()
        if members is None or not self.haproxy.alive():
            return
        actual = self.haproxy.runtime.servers(r.BACKEND)
        self._end_hung(actual)
        now = time.monotonic()
        self._empty_since = None if members else (self._empty_since or now)
        if plan.keep_when_empty(len(members), actual, self._empty_since or now, now):
            self._warn(
                f"membership lists no server while HAProxy has {len(actual)} serving; keeping them for "
                f"up to {plan.EMPTY_GRACE:g} s (entries lost by Redis, e.g. a failover to a lagging replica?)"
            )
            return
        wanted: dict[str, r.Backend] = {}
        serving: list[str] = []
        down: dict[str, str] = {}  # members HAProxy sends nothing to, with what it says of them
        unapplied = False
        for m in members:
            mismatch = tls_mismatch(m, self.settings)
            if mismatch:
                self._warn(mismatch)
            else:
                why = self._tls_refused(m, actual.get(r.haproxy_name(m.name)))
                if why:
                    self._warn(f"server {m.name} at {m.address} is DOWN: HAProxy's TLS checks fail, {why}")
            try:
                b = _backend(m)
            except LBError as e:  # its host does not resolve here: HAProxy never gets it
                self._warn(f"server {m.name}: {e}")
                if m.state != "draining":
                    down[m.name] = f"unresolved (its host {m.host} does not resolve there)"
                continue
            try:
                wanted[b.name] = b
                self._apply_member(b, m.state, actual.get(b.name))
                if m.state != "draining":
                    serving.append(m.name)
                    if (cur := actual.get(b.name)) is not None and not cur.up:
                        down[m.name] = plan.shown(cur)
            except LBError as e:
                self._warn(f"server {m.name}: {e}")
                unapplied = unapplied or r.haproxy_name(m.name) in wanted
        for name, state in actual.items():
            if name not in wanted:
                try:
                    self._retire(name, state)
                except LBError as e:
                    self._warn(f"server {name}: {e}; will retry")
        backends = sorted(wanted.values(), key=lambda b: b.name)
        if backends != self._persisted:
            text = r.render(self.settings, backends)
            write_config(self.binary, self.settings, text)
            self._persisted = backends
        if unapplied:
            self._reload_fallback()
        self._publish_view(sorted(serving), down)

    def _tls_refused(self, m: Member, state: ServerState | None) -> str:
        """Why HAProxy's TLS checks of a TLS server fail (its certificate expired while it ran,
        or was replaced by one the CA did not sign): found by a handshake of our own, as HAProxy
        makes it, at most every TLS_PROBE_EVERY s while it is DOWN on a layer-6 (TLS) check."""
        failing = state is not None and not state.up and state.check.startswith("L6")
        if not (m.tls and self.settings.tls_ca_file and failing):
            self._tls_why.pop(m.name, None)
            return ""
        now = time.monotonic()
        at, why = self._tls_why.get(m.name, (0.0, ""))
        if not at or now - at >= TLS_PROBE_EVERY:
            from zato.common.tls import refusal

            why = refusal(m.host, m.port, self.settings.tls_ca_file)
            self._tls_why[m.name] = (now, why)
        return why

    def _publish_view(self, serving: list[str], down: dict[str, str]) -> None:
        """Tell stopping servers (lb_view) once they no longer get new requests from here, and
        `zato cluster status` which members HAProxy sends nothing to; an unchanged view is
        renewed every lb_view.REFRESH s, so theirs ignore it once we are gone."""
        now = time.monotonic()
        if (serving, down) == self._view and now - self._view_at < lb_view.REFRESH:
            return
        try:
            lb_view.publish(self.client, self.settings.cluster, self.lb_id, serving, down)
            self._view, self._view_at = (serving, down), now
        except CoordError as e:
            where, hint = describe(self.settings.redis), what_to_do(e, cluster=self.settings.cluster)
            self._warn(f"cannot publish the load-balancer view: {e}; Redis at {where}: {hint}")

    def _withdraw_view(self) -> None:
        try:
            lb_view.withdraw(self.client, self.settings.cluster, self.lb_id)
        except CoordError as e:
            logger.warning("cannot withdraw the load-balancer view: %s", e)

    def _reload_fallback(self) -> None:
        """The Runtime API refused a change: a reload reads it from the file instead."""
        now = time.monotonic()
        if now - self._last_reload >= RELOAD_MIN_INTERVAL:
            self._last_reload = now
            logger.warning("the Runtime API could not apply a change; reloading HAProxy from the file")
            self.haproxy.reload()

    def _apply_member(self, b: r.Backend, member_state: str, cur: ServerState | None) -> None:
        self._drain_started.pop(b.name, None)
        self._apply(plan.for_member(b, member_state, cur))

    def _end_hung(self, actual: dict[str, ServerState]) -> None:
        """Shut the sessions of a server (member or leaver) whose checks have gone unanswered
        for HUNG_AFTER with requests on it."""
        now = time.monotonic()
        for name in set(self._down_since) - {n for n, cur in actual.items() if plan.silent(cur)}:
            del self._down_since[name]
        for name, cur in actual.items():
            if plan.silent(cur):
                try:
                    self._apply(plan.for_hung(cur, self._down_since.setdefault(name, now), now))
                except LBError as e:
                    self._warn(f"server {name}: {e}; will retry")

    def _retire(self, name: str, cur: ServerState) -> None:
        """Drain a server that is no longer a member, then delete it once idle."""
        now = time.monotonic()
        cmds = plan.for_leaver(cur, self._drain_started.setdefault(name, now), now)
        self._apply(cmds)
        if cmds and cmds[-1].op == "del":
            self._drain_started.pop(name, None)

    def _apply(self, cmds: list[plan.Command]) -> None:
        """Run the commands in order; an LBError stops there (the next tick tries again)."""
        runtime = self.haproxy.runtime
        for c in cmds:
            if c.op == "add" and c.backend:
                runtime.add_server(
                    r.BACKEND, c.server, c.backend.ip, c.backend.port, r.server_options(self.settings)
                )
            elif c.op == "enable_health":
                runtime.enable_health(r.BACKEND, c.server)
            elif c.op == "set_addr" and c.backend:
                runtime.set_addr(r.BACKEND, c.server, c.backend.ip, c.backend.port)
            elif c.op == "set_state":
                runtime.set_state(r.BACKEND, c.server, c.state)
            elif c.op == "shutdown_sessions":
                logger.warning("%s", c.log)
                runtime.command(f"shutdown sessions server {r.BACKEND}/{c.server}")
                continue
            elif c.op == "del":
                runtime.del_server(r.BACKEND, c.server)
            if c.log:
                (logger.warning if c.warn else logger.info)("%s", c.log)


def servers_in_file(text: str) -> list[r.Backend]:
    """The backend servers of a config this module rendered ([] if none); a line that does
    not make a safe Backend is left out."""
    result = []
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("    server ") and len(parts) >= 3:
            ip, _, port = parts[2].rpartition(":")
            if port.isdigit() and len(port) <= 5:
                try:
                    result.append(r.Backend(parts[1], ip, int(port)))
                except LBError:
                    continue
    return result


def tls_mismatch(m: Member, settings: LBSettings) -> str:
    """What is wrong when member `m` serves TLS and lb.conf does not expect it, or the other way
    round (HAProxy's checks then fail and mark it DOWN); "" when they agree."""
    if m.tls and not settings.tls_ca_file:
        return (
            f"server {m.name} at {m.address} serves HTTPS only ([tls] cert in its server.conf) and this LB"
            " talks plain HTTP to the servers: its checks fail and it stays DOWN; set [tls] ca_file in"
            f" {settings.config_file} to the CA that signed its certificate"
        )
    if settings.tls_ca_file and not m.tls:
        return (
            f"server {m.name} at {m.address} serves plain HTTP while this LB expects TLS ([tls] ca_file in"
            f" {settings.config_file}): it stays DOWN; set [tls] cert in its server.conf"
        )
    return ""


def _backend(m: Member) -> r.Backend:
    return r.Backend(r.haproxy_name(m.name), _ip(m.host), m.port)


def _static_part(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("    server ")]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _ip(host: str) -> str:
    """HAProxy's Runtime API wants an address, not a name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.gethostbyname(host)
    except OSError as e:
        raise LBError(f"cannot resolve server host {host!r}: {e}") from e
