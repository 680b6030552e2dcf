"""One snapshot of the cluster for every open page, refreshed by one greenlet.

Sources: Redis (membership, lease, takeovers, connectors: `zato.coord.status`; whether it takes
the actions' writes: `status.check_writes`; whether it may evict keys: `zato.coord.eviction`), the ODB
(known servers, deployed services, channels), HAProxy's Runtime API on this host (LB
backends) and each live server's /metrics (requests/s). Each source may fail on its own:
the snapshot then says so in `errors` and keeps the rest, so the page works with Redis down.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zato.common.errors import CoordRefused, ZatoError
from zato.config.settings import DashboardSettings
from zato.coord import eviction, health, lb_view, membership, status, takeovers
from zato.coord.client import describe
from zato.coord.signing import member_key
from zato.odb import api as odb_api
from zato.odb.connectors import active_connector_names

logger = logging.getLogger("zato.dashboard")

REFRESH = 0.5  # seconds between snapshots: the page changes within a second of the cluster
SLOW_EVERY = 4  # ODB reads (services, channels, known servers) every SLOW_EVERY refreshes
HISTORY = 120  # requests/s points kept per server (one a refresh: the last minute)
REQUESTS_METRIC = "zato_server_requests_total"
SCRAPE_TIMEOUT = 0.5  # seconds a live server's /metrics may take to answer the page's scrape
MAX_SCRAPES = 32  # scrapes at once (more servers: the rest as these end)


def requests_total(metrics_text: str) -> float:
    """The sum of zato_server_requests_total over its labels in one /metrics answer."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(REQUESTS_METRIC + "{") or line.startswith(REQUESTS_METRIC + " "):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
    return total


class Rates:
    """Requests/s per server from successive /metrics totals."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}  # server -> (monotonic time, total)
        self.history: dict[str, deque] = {}

    def add(self, server: str, now: float, total: float | None) -> float | None:
        last = self._last.get(server)
        rate = None
        if total is not None:
            if last is not None and now > last[0] and total >= last[1]:
                rate = round((total - last[1]) / (now - last[0]), 1)
            self._last[server] = (now, total)
        self.history.setdefault(server, deque(maxlen=HISTORY)).append(rate)
        return rate


def fetch_text(
    url: str, timeout: float = SCRAPE_TIMEOUT, authorization: str = "", context: ssl.SSLContext | None = None
) -> tuple[str | None, int | None]:
    """(the body, None) of a GET of `url`; (None, status) when it was answered with an error
    status; (None, None) when it was not answered. `authorization`: the Authorization header;
    `context`: what an https:// URL is verified with."""
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http:// of a cluster member
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:  # noqa: S310 - a cluster member
            return r.read().decode("utf-8", "replace"), None
    except urllib.error.HTTPError as e:
        e.close()
        return None, e.code
    except (OSError, ValueError, http.client.HTTPException):  # an answer cut short is none either
        return None, None


def basic_authorization(username: str, password: str) -> str:
    """The Authorization header of HTTP Basic; "" without a password (nothing is sent)."""
    if not password:
        return ""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class Collector:
    def __init__(self, settings: DashboardSettings, client: Any, odb: Any):
        self.settings, self.client, self.odb = settings, client, odb
        self._context: ssl.SSLContext | None = None
        self.rates = Rates()
        self.ticks = 0
        # the servers' /metrics, scraped at once (greenlets in the dashboard, which gevent patched)
        self._scrapers = ThreadPoolExecutor(MAX_SCRAPES, thread_name_prefix="zato-dashboard-scrape")
        self.version = 0
        self.snapshot: dict = {"cluster": settings.cluster, "errors": ["starting"], "version": 0}
        self._slow: dict = {
            "known": [],
            "services": [],
            "channels": [],
            "user_config": [],
            "connectors_defined": [],  # KIND:NAME of the active connectors
            "odb_error": "",
            "odb_read": False,  # the ODB was read once: connectors_defined says which are active
        }
        self._last_json = ""
        self._writes_refused = ""  # why Redis refuses what the actions send, checked every SLOW_EVERY
        self._evicting = ""  # that Redis may evict the cluster's keys, checked every SLOW_EVERY
        # Only members signed with the cluster's key are shown (a dashboard made before the
        # secret was in dashboard.conf parses entries strictly and says so once).
        secret = settings.cluster_secret
        self._member_key = member_key(secret, settings.cluster) if secret else None
        # the servers' [metrics] credentials, sent with every scrape ("": none set, none sent);
        # never to the address of an entry that could not be verified: anyone who can write to
        # Redis could put theirs there (before, it was sent the [metrics] password)
        self._scrape_auth = ""
        if self._member_key is None:
            logger.warning("dashboard.conf has no [auth] cluster_secret: member entries are shown unverified")
            if settings.metrics_password:
                logger.warning(
                    "dashboard.conf has no [auth] cluster_secret: the [metrics] credentials are not sent to "
                    "members it cannot verify (requests/s of servers that need them are not shown)"
                )
        else:
            self._scrape_auth = basic_authorization(settings.metrics_username, settings.metrics_password)

    def refresh(self) -> bool:
        """Take a new snapshot; True if it differs from the previous one."""
        if self.ticks % SLOW_EVERY == 0:
            self._read_odb()
        self.ticks += 1
        doc = self._build()
        text = json.dumps(doc, sort_keys=True, default=str)
        if text == self._last_json:
            return False
        self._last_json = text
        self.version += 1
        doc["version"] = self.version
        doc["time"] = time.time()
        self.snapshot = doc
        return True

    def _read_odb(self) -> None:
        s, odb = self.settings, self.odb
        try:
            known = odb_api.list_servers(odb, s.cluster)  # read with the services: status.collect's `known`
            services = odb_api.list_services(odb, s.cluster)
            channels = odb_api.list_channels(odb, s.cluster)
            user_config = [f.name for f in odb_api.list_user_config(odb, s.cluster)]
            defined = active_connector_names(odb, s.cluster)
        except ZatoError as e:
            self._slow["odb_error"] = f"ODB: {str(e).splitlines()[0]}"
            return
        self._slow = {
            "known": known,
            "services": [{"name": n, "module": m} for n, m in sorted(services.items())],
            "channels": [
                {
                    "name": c.name,
                    "url_path": c.url_path,
                    "method": c.method or "any",
                    "service": c.service,
                    "is_active": c.is_active,
                    "security": c.security or "",
                }
                for c in sorted(channels, key=lambda c: c.url_path)
            ],
            "user_config": user_config,
            "connectors_defined": defined,
            "odb_error": "",
            "odb_read": True,
        }

    def _build(self) -> dict:
        view = status.collect(self.client, self.settings.cluster, self._slow["known"], self._member_key)
        errors = list(view["errors"])
        redis_ok = not errors
        recent: list[dict] = []
        if redis_ok:
            try:
                recent = takeovers.recent(self.client, self.settings.cluster, 20)
            except ZatoError as e:
                errors.append(f"Redis: {e}")
            if self.ticks % SLOW_EVERY == 1:
                self._writes_refused = self._check_writes()
                self._evicting = self._check_eviction()
            if self._writes_refused:
                errors.append(self._writes_refused)
            if self._evicting:
                errors.append(self._evicting)
            errors += self._not_served(view["servers"])
            held = self._drain_held()
            for server in view["servers"]:
                server["drain_held"] = server["name"] in held
        if self._slow["odb_error"]:
            errors.append(self._slow["odb_error"])
        now = time.monotonic()
        scraped = self._scrape([server for server in view["servers"] if server.get("live")])
        for server in view["servers"]:
            total = None
            if server.get("live"):
                url, (text, answered) = scraped[server["name"]]
                total = requests_total(text) if text is not None else None
                if answered == 401:
                    errors.append(self._refused_scrape(server["name"]))
                elif text is None and answered is None and server.get("state") == "running":
                    errors.append(  # before, its requests/s were blank and nothing said why
                        f"server {server['name']}: its {url} did not answer within {SCRAPE_TIMEOUT:g} s,"
                        " so its requests/s are not shown (its workers hung or overloaded? the LB"
                        " column says whether HAProxy still sends it requests)"
                    )
            server["rps"] = self.rates.add(server["name"], now, total)
        return {
            "cluster": self.settings.cluster,
            "redis_ok": redis_ok,
            "errors": errors,
            "servers": view["servers"],
            "lease": view["lease"],
            "takeovers": recent,
            "connectors": self._parked_now(self._connectors(view)) if redis_ok else view["children"],
            "async": view.get("async") or {},
            "lb": self._lb(),
            "services": self._slow["services"],
            "user_config": self._slow["user_config"],
            "channels": self._slow["channels"],
            "rps_history": {name: list(points) for name, points in self.rates.history.items()},
        }

    def _scrape(self, servers: list[dict]) -> dict[str, tuple[str, tuple[str | None, int | None]]]:
        """Each live server's /metrics URL and fetch_text() answer, all asked at once: one at a
        time, each server that did not answer held the page's refresh SCRAPE_TIMEOUT longer
        (ten hung servers, five seconds; a partition that leaves servers live but unreachable
        hangs them all)."""

        def one(server: dict) -> tuple[str, tuple[str | None, int | None]]:
            scheme = "https" if server.get("tls") else "http"
            url = f"{scheme}://{server['address']}/metrics"
            context = self._tls_context() if server.get("tls") else None
            return url, fetch_text(url, authorization=self._scrape_auth, context=context)

        if any(server.get("tls") for server in servers):
            self._tls_context()  # made once, before the threads that use it
        futures = {server["name"]: self._scrapers.submit(one, server) for server in servers}
        return {name: future.result() for name, future in futures.items()}

    def _tls_context(self) -> ssl.SSLContext:
        """What a server that serves TLS is verified with: dashboard.conf [tls] ca_file."""
        if self._context is None:
            from zato.common.tls import client_context

            self._context = client_context(self.settings.tls_ca_file)
        return self._context

    def _refused_scrape(self, server: str) -> str:
        """What the page says of a server whose /metrics refused this dashboard's scrape."""
        conf = self.settings.config_file
        if self.settings.metrics_password and self._member_key is None:
            return (
                f"server {server}: its /metrics needs credentials, which are not sent to servers this "
                f"dashboard cannot verify: set [auth] cluster_secret in {conf} to the servers' and restart "
                "the dashboard"
            )
        if self.settings.metrics_password:
            return (
                f"server {server}: its /metrics refused the [metrics] credentials of {conf}, so its "
                "requests/s are not shown: set them to the servers' and restart the dashboard"
            )
        return (
            f"server {server}: its /metrics needs credentials (its [metrics] password), so its requests/s "
            f"are not shown: set [metrics] username and password in {conf} to the servers' and restart "
            "the dashboard"
        )

    def _not_served(self, servers: list[dict]) -> list[str]:
        """A line for each live server a load balancer's HAProxy marks DOWN or MAINT, as each LB
        reports it in Redis (zato.coord.lb_view), as `zato cluster status` says it: membership
        alone shows it live (before, only this host's LB's column said DOWN, if there was one)."""
        try:
            return lb_view.not_serving(lb_view.read(self.client, self.settings.cluster), servers)
        except ZatoError:  # Redis: said by the reads above
            return []

    def _drain_held(self) -> set[str]:
        """The servers an operator's drain holds (the page's Drain; zato.coord.membership): every
        LB keeps them from new requests until made ready. Said on their rows whatever the LB
        column shows: a dashboard with no LB on its host showed nothing of a drain it made."""
        try:
            return membership.operator_drained(self.client, self.settings.cluster)
        except ZatoError:  # Redis: said by the reads above
            return set()

    def _check_writes(self) -> str:
        """The error to show when Redis refuses the actions' writes or PUBLISH ("" if it takes
        them): reads alone succeed with Redis a replica, or an ACL that refuses PUBLISH."""
        try:
            status.check_writes(self.client, self.settings.cluster)
        except CoordRefused as e:  # what to do, as the servers' logs say
            return f"Redis: {e}; {health.REPLICA}" if health.is_replica(e) else f"Redis: {e}"
        except ZatoError as e:
            return f"Redis: {e}"
        return ""

    def _check_eviction(self) -> str:
        """The error to show when Redis may evict the cluster's keys (zato.coord.eviction; ""
        when it keeps them, or when this user may not read its policy: zato start and zato
        cluster status say that, not every page)."""
        try:
            found = eviction.read(self.client)
        except ZatoError:  # Redis away: said by the reads above
            return ""
        return eviction.warning(found, describe(self.settings.redis))

    def _connectors(self, view: dict) -> list[dict]:
        """The holder's connectors, then a row in state NOT_RUNNING for each active one of the
        ODB that no holder runs now, as zato_connector_state shows them (before, the table was
        empty during a takeover, or while no server held the lease, when /metrics listed them)."""
        children = view["children"]
        holder = (view.get("lease") or {}).get("holder")
        why = f"not started by {holder} yet" if holder else "no server holds the lease to run it"
        rows = [
            {"name": name, "kind": name.partition(":")[0], "state": status.NOT_RUNNING, "last_error": why}
            for name in status.not_running(children, self._slow["connectors_defined"])
        ]
        return children + rows + self._inactive(view, children + rows)

    def _inactive(self, view: dict, shown: list[dict]) -> list[dict]:
        """A row in state INACTIVE for each outgoing connection made inactive whose messages
        wait in Redis (or wait parked), as `zato cluster status` lists them: before, such
        messages were on no row of the page (while /metrics counted them)."""
        if not self._slow["odb_read"]:  # which are active is not known yet
            return []
        names = {str(c.get("name")) for c in shown} | set(self._slow["connectors_defined"])
        rows = []
        for q in view.get("outgoing_waiting") or ():
            name = f"{q['kind']}:{q['name']}"
            if name not in names:
                on = f"zato conn edit {q['kind']} DIR --name {q['name']} --active true"
                why = f"the connection is inactive: its messages go out once it is active again ({on})"
                rows.append({"name": name, "kind": q["kind"], "state": status.INACTIVE, "last_error": why})
        return rows

    def _parked_now(self, connectors: list[dict]) -> list[dict]:
        """Each connector with `parked_now`: the messages that wait parked now, which a button
        puts back (an AMQP channel's parking queue, the broker's count; an outgoing connection's
        parked list in Redis), apart from `parked`, what its process parked since it started;
        and an outgoing one's `waiting`: the messages yet to go out (its Redis lists waiting and
        processing, zato_outgoing_queue_depth; `zato cluster status` counts them so). None where
        a number does not apply or cannot be read now."""
        from zato.coord.queues import OutQueue

        for c in connectors:
            kind, _, name = str(c.get("name") or "").partition(":")
            c["parked_now"], c["waiting"] = c.get("parking_queue"), None
            if kind.endswith("-outgoing") and name:
                queue = OutQueue(self.client, self.settings.cluster, kind.removesuffix("-outgoing"), name)
                try:
                    c["waiting"] = sum(queue.depth())
                    c["parked_now"] = queue.parked_count()
                except ZatoError:
                    c["parked_now"] = None
        return connectors

    def _lb(self) -> dict:
        if not self.settings.lb_dir:
            return {"configured": False, "servers": []}
        from zato.lb.status import describe

        try:
            d = describe(self.settings.lb_dir)
        except Exception as e:  # noqa: BLE001 - a status view must not fail the page
            return {"configured": True, "error": str(e), "servers": []}
        haproxy = d.get("haproxy") or {}
        return {
            "configured": True,
            "running": bool(haproxy.get("running")),
            "error": d.get("error") or haproxy.get("error") or "",
            "url": d.get("url"),
            "servers": d.get("servers", []),
        }
