"""Validated, frozen settings objects read from Zato-style INI files.

Config flows one way: file -> load_*_settings() -> frozen dataclass -> constructors.
Every bad value raises ConfigError naming the file, section and key.
"""

from __future__ import annotations

import builtins
import configparser
import difflib
import math
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from zato.common.errors import ConfigError
from zato.coord import parse

SERVER_CONF = "server.conf"
LB_CONF = "lb.conf"
DASHBOARD_CONF = "dashboard.conf"


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    sentinels: tuple[tuple[str, int], ...] = ()  # when set, the master is found through them
    sentinel_master: str = ""
    socket_timeout: float = 1.0


MAX_MEMBERSHIP_TTL = 3600.0  # seconds; readers refuse a member entry that says more
# Upper bounds of the other durations (seconds), refused at start above them: a value such as
# 1e12 was taken, and a server then never ended its drain (zato stop killed it at its --timeout),
# never timed a body or a deploy out, or held a lease no other server could ever take over.
MAX_HOUR = 3600.0  # [lease] *, [membership] heartbeat, [limits] *_timeout, [main] deploy_timeout
# [limits] max_body: a body is read whole into a worker's memory, so 1 TiB (the bound before)
# was a worker killed for its memory, not a limit; 2 GiB is also the most a channel's own
# max_body can be (zato.odb.api.MAX_CHANNEL_BODY: what the ODB's column holds).
MAX_BODY = 2**31 - 1
MAX_PICKUP_QUIET = 600.0  # [main] pickup_quiet
MAX_DRAIN_SECONDS = 600.0  # [main] drain_seconds: zato stop waits it out by default (server_drain)
MAX_IMPORT_BUDGET = 600.0  # [main] import_budget
MAX_HANG_AFTER = 86400.0  # [main] connector_hang_after (0: never)
MAX_SOCKET_TIMEOUT = 300.0  # [kvdb] socket_timeout: each Redis call waits at most this
MAX_YIELD_FOR = 86400.0  # [lease] yield_for
METRICS_USERNAME = "metrics"  # [metrics] username: who a scrape of /metrics authenticates as


@dataclass(frozen=True)
class MembershipSettings:
    heartbeat: float = 1.0  # seconds between refreshes of this server's key
    ttl: float = 3.0  # a key not refreshed for this long means the server is gone


@dataclass(frozen=True)
class LeaseSettings:
    ttl: float = 1.5  # lease key PX
    renew_interval: float = 0.5  # holder renews this often (3 Redis commands per renewal)
    renew_deadline: float = 1.0  # holder steps down if no renewal confirmed for this long (< ttl)
    retry_interval: float = 1.5  # standby re-check ceiling; standbys also wake on expiry and on release
    # A holder one of whose connectors has been reconnecting this long hands the lease over
    # (zato.connector.handover), and is not handed it again for yield_for (>= 2 * handover_after)
    handover_after: float = 10.0
    yield_for: float = 300.0


@dataclass(frozen=True)
class LimitSettings:
    """[limits] in server.conf: what one HTTP request may cost a server."""

    max_body: int = 4 * 1024 * 1024  # bytes; over it: 413, from Content-Length before reading
    body_timeout: float = 10.0  # seconds a client may take to send its whole body (then 408)
    send_timeout: float = 30.0  # seconds an answer may wait for the client to take a byte (then closed)
    max_headers: int = 100  # gunicorn limit_request_fields
    max_header_size: int = 8190  # gunicorn limit_request_field_size (bytes per header line)
    max_request_line: int = 4094  # gunicorn limit_request_line
    max_form_fields: int = 1000  # fields of a form-encoded body (as Django's default); over it: 400
    # bytes an outgoing HTTP connection's answer may have (self.out.rest[name]): it is read whole
    # into a worker's memory (several times over, as bytes, then text)
    max_outgoing_body: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    path: str  # server directory (absolute)
    name: str
    cluster: str
    host: str  # the address this server binds (0.0.0.0: every interface)
    port: int
    workers: int
    odb_url: str
    redis: RedisSettings
    admin_username: str
    admin_password: str = field(repr=False)
    cluster_secret: str = field(repr=False)  # authenticates connector -> server internal calls
    gunicorn: dict = field(default_factory=dict)  # extra gunicorn settings from [gunicorn]
    membership: MembershipSettings = MembershipSettings()
    lease: LeaseSettings = LeaseSettings()
    log_level: str = "INFO"
    log_format: str = "text"  # [logging] format: text | json (one JSON object per line)
    access_log: bool = True  # [logging] access_log: a line per request in logs/http_access.log
    # [logging] client_warning_interval: seconds between a worker's WARNING lines of one kind
    # that any client can cause at will (dropped mid-body, malformed body, unparsable request)
    client_warning_interval: float = 60.0
    drain_seconds: float = 1.0  # graceful stop: keep serving this long after leaving the LB
    deploy_timeout: float = 10.0  # a deployed module must finish loading (validation) within this
    # [main] pickup_quiet: a file in pickup/ is deployed once it stayed unchanged this long
    # (one still being written, by cp or scp, is not read half-written)
    pickup_quiet: float = 1.0
    connector_hang_after: float = 120.0  # a connector without progress this long is killed (0: never)
    limits: LimitSettings = LimitSettings()
    invoke_username: str = "admin.invoke"  # the only user of /zato/admin/invoke and /zato/api/invoke/
    invoke_password: str = field(default="", repr=False)  # empty: those endpoints answer 401
    announce_host: str = ""  # the address others (LB, connectors) reach it at; "" = host
    tls_ca_file: str = ""  # [tls] ca_file: CA certificates to verify TLS peers (AMQP, other servers) against
    # [tls] cert: PEM with this server's certificate (chain) and key (or in CERT.key): its port
    # serves HTTPS only; empty = plain HTTP
    tls_cert: str = ""
    user_conf_dirs: tuple[str, ...] = ()  # [main] user_conf_dir: services' self.config files (absolute)
    # [user_config] LABEL = path: services' self.user_config.LABEL files (Zato's stanza; absolute)
    user_config_files: tuple[tuple[str, str], ...] = ()
    # [metrics] username and password: the HTTP Basic credentials GET /metrics needs (empty
    # password: none, /metrics answers anyone who reaches [main] host)
    metrics_username: str = METRICS_USERNAME
    metrics_password: str = field(default="", repr=False)

    @property
    def announced_host(self) -> str:
        """What this server tells the cluster (membership, ODB) its peers reach it at."""
        return self.announce_host or self.host

    import_budget: float = 2.0  # ... and its import may take this long (measured in the validation child)

    @property
    def config_file(self) -> str:
        return os.path.join(self.path, "config", SERVER_CONF)

    @property
    def pidfile(self) -> str:
        return os.path.join(self.path, "pidfile")

    @property
    def logfile(self) -> str:
        return os.path.join(self.path, "logs", "server.log")

    @property
    def access_logfile(self) -> str:
        return os.path.join(self.path, "logs", "http_access.log")

    @property
    def pickup_dir(self) -> str:
        return os.path.join(self.path, "pickup")

    @property
    def work_dir(self) -> str:
        return os.path.join(self.path, "work")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EdgeSettings:
    """What the LB's public port allows: slow clients, floods, admin access, TLS (lb.conf)."""

    maxconn: int = 4000  # [haproxy] maxconn: connections HAProxy holds at once (global and frontend)
    max_conn_per_source: int = 256  # [haproxy] concurrent connections of one client address; 0 = no limit
    timeout_http_request_ms: int = 5000  # [haproxy] whole request headers (and a buffered body) within this
    timeout_keep_alive_ms: int = 2000  # [haproxy] an idle kept-alive connection is closed after this
    server_maxconn: int = 256  # [haproxy] requests in flight per server; more wait in its queue
    server_maxqueue: int = 256  # [haproxy] requests queued per server; more go elsewhere or get 503
    admin_through_lb: bool = True  # [admin] through_lb: /zato/admin/ reachable through the LB
    admin_max_failures: int = 10  # [admin] max_failures: failed logins per address per minute; 0 = no limit
    channel_max_failures: int = 20  # [channels] max_failures: the same on secured HTTP channels
    stats_max_failures: int = 10  # [stats] max_failures: the same on the stats and HAProxy metrics pages
    tls_cert: str = ""  # [tls] cert: PEM with certificate (chain) and key; empty = plain HTTP
    tls_alpn: str = "h2,http/1.1"  # [tls] alpn


@dataclass(frozen=True)
class LBSettings:
    path: str  # load-balancer directory (absolute)
    cluster: str
    host: str  # frontend bind address
    port: int  # frontend port, 11223 by default
    redis: RedisSettings
    stats_username: str
    stats_password: str = field(repr=False)
    haproxy_binary: str = "haproxy"
    haproxy_user: str = ""  # HAProxy's workers and `haproxy -c` run as this user ("" = as we run)
    check_inter_ms: int = 300  # with render's fastinter and timeout check: a hung server DOWN in < 1.5 s
    check_fall: int = 2
    check_rise: int = 1
    timeout_connect_ms: int = 1000
    timeout_client_ms: int = 30000
    timeout_server_ms: int = 30000
    retries: int = 3
    # Keep connections to the servers open between requests: about 15% more req/s through the
    # LB (bench/lb part f), but a request written on a kept connection to a host that has just
    # vanished waits for timeout_server_ms (zato/lb/render.py). Off: one request a connection.
    server_keep_alive: bool = False
    log_level: str = "INFO"
    edge: EdgeSettings = EdgeSettings()
    log_format: str = "text"
    access_log: bool = True  # [logging] access_log: HAProxy logs each request to logs/haproxy.log
    cluster_secret: str = field(default="", repr=False)  # verifies the servers' member entries
    # [tls] ca_file: the CA that signed the servers' certificates; set, HAProxy reaches the
    # servers (requests and health checks) over TLS only, verifying them against it
    tls_ca_file: str = ""

    @property
    def config_file(self) -> str:
        return os.path.join(self.path, "config", LB_CONF)

    @property
    def haproxy_cfg(self) -> str:
        return os.path.join(self.path, "config", "haproxy.cfg")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.path, "pidfile")

    @property
    def logfile(self) -> str:
        return os.path.join(self.path, "logs", "lb.log")

    @property
    def work_dir(self) -> str:
        return os.path.join(self.path, "work")

    @property
    def stats_socket(self) -> str:
        return os.path.join(self.path, "work", "haproxy.sock")

    @property
    def ready_file(self) -> str:
        """Names the controller once it has HAProxy (started or adopted); `zato start` waits for it."""
        return os.path.join(self.path, "work", "controller.ready")


@dataclass(frozen=True)
class DashboardSettings:
    path: str  # dashboard directory (absolute)
    cluster: str
    host: str
    port: int  # 8183 by default, Zato's web-admin port
    odb_url: str
    redis: RedisSettings
    admin_username: str  # the cluster's admin credentials: the only login
    admin_password: str = field(repr=False)
    lb_dir: str = ""  # the load balancer's directory on this host: LB backends and drain/ready
    cluster_secret: str = field(default="", repr=False)  # verifies the servers' member entries
    session_minutes: int = 480
    log_level: str = "INFO"
    log_format: str = "text"
    tls_ca_file: str = ""  # [tls] ca_file: CA certificates to verify TLS AMQP brokers and servers against
    # [metrics]: the servers' [metrics] credentials, sent with each scrape of their /metrics
    metrics_username: str = METRICS_USERNAME
    metrics_password: str = field(default="", repr=False)

    @property
    def config_file(self) -> str:
        return os.path.join(self.path, "config", DASHBOARD_CONF)

    @property
    def pidfile(self) -> str:
        return os.path.join(self.path, "pidfile")

    @property
    def logfile(self) -> str:
        return os.path.join(self.path, "logs", "dashboard.log")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}/"


# Every section and key each file may hold: anything else is refused when it is read (a typo
# such as `prot = 42011` would otherwise leave the default in place, silently). None: a section
# whose keys are someone else's to check ([gunicorn]: gunicorn's settings, checked at start).
_KVDB = frozenset({"url", "sentinels", "sentinel_master", "socket_timeout"})
_LOGGING = frozenset({"level", "format", "access_log"})
_SERVER_LOGGING = _LOGGING | {"client_warning_interval"}
Schema = Mapping[str, frozenset[str] | None]
SERVER_SCHEMA: Schema = {
    "main": frozenset(
        {
            "name",
            "host",
            "announce_host",
            "port",
            "workers",
            "drain_seconds",
            "deploy_timeout",
            "pickup_quiet",
            "connector_hang_after",
            "import_budget",
            "user_conf_dir",
        }
    ),
    "cluster": frozenset({"name"}),
    "odb": frozenset({"url"}),
    "kvdb": _KVDB,
    "auth": frozenset(
        {"admin_username", "admin_password", "cluster_secret", "invoke_username", "invoke_password"}
    ),
    "membership": frozenset({"heartbeat", "ttl"}),
    "lease": frozenset(
        {"ttl", "renew_interval", "renew_deadline", "retry_interval", "handover_after", "yield_for"}
    ),
    "limits": frozenset(
        {
            "max_body",
            "body_timeout",
            "send_timeout",
            "max_headers",
            "max_header_size",
            "max_request_line",
            "max_form_fields",
            "max_outgoing_body",
        }
    ),
    "logging": _SERVER_LOGGING,
    "tls": frozenset({"ca_file", "cert"}),
    "metrics": frozenset({"username", "password"}),
    "gunicorn": None,
    "user_config": None,  # labels of the user's choosing (zato.service.user_config)
}
LB_SCHEMA: Schema = {
    "main": frozenset({"host", "port"}),
    "cluster": frozenset({"name"}),
    "kvdb": _KVDB,
    "stats": frozenset({"username", "password", "max_failures"}),
    "auth": frozenset({"cluster_secret"}),
    "haproxy": frozenset(
        {
            "binary",
            "user",
            "check_inter_ms",
            "check_fall",
            "check_rise",
            "timeout_connect_ms",
            "timeout_client_ms",
            "timeout_server_ms",
            "retries",
            "server_keep_alive",
            "maxconn",
            "max_conn_per_source",
            "timeout_http_request_ms",
            "timeout_keep_alive_ms",
            "server_maxconn",
            "server_maxqueue",
        }
    ),
    "tls": frozenset({"cert", "alpn", "ca_file"}),
    "admin": frozenset({"through_lb", "max_failures"}),
    "channels": frozenset({"max_failures"}),
    "logging": _LOGGING,
}
DASHBOARD_SCHEMA: Schema = {
    "main": frozenset({"host", "port", "session_minutes"}),
    "cluster": frozenset({"name"}),
    "odb": frozenset({"url"}),
    "kvdb": _KVDB,
    "auth": frozenset({"admin_username", "admin_password", "cluster_secret"}),
    "lb": frozenset({"dir"}),
    "logging": frozenset({"level", "format"}),
    "tls": frozenset({"ca_file"}),
    "metrics": frozenset({"username", "password"}),
}


def unknown_setting(path: str, schema: Schema, sections: Mapping[str, list[str]]) -> str | None:
    """The line refusing the first section or key of `sections` (section -> its keys, in file
    order) that `schema` does not have, with the known one it is closest to; None if all are known."""
    name = os.path.basename(path)
    for section, keys in sections.items():
        if section not in schema:
            # Section names are case-sensitive ([Main] is not [main]); keys are not
            names = sorted(s for s in schema if s != "DEFAULT")
            close = [s for s in names if s.lower() == section.lower()]
            close = close or difflib.get_close_matches(section.lower(), names, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else f" (known: {', '.join(names)})"
            return f"{path}: [{section}] is not a section of {name}{hint}"
        known = schema[section]
        if known is None:
            continue
        for key in keys:
            if key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1)
            elsewhere = [s for s, k in schema.items() if k is not None and key in k and s != "DEFAULT"]
            if close:
                hint = f" (did you mean {close[0]!r}?)"
            elif elsewhere:
                hint = f" (it belongs in [{elsewhere[0]}])"
            else:
                hint = f" (known: {', '.join(sorted(known))})"
            return f"{path}: [{section}] {key} is not a setting of {name}{hint}"
    return None


class _Reader:
    """Typed access to an INI file with error messages naming file, section and key; a section
    or key its `schema` does not have is refused at once."""

    def __init__(self, path: str, schema: Schema):
        self.path = path
        self.schema = schema
        self.cp = configparser.ConfigParser(interpolation=None)
        text = ""
        try:
            # utf-8-sig: a byte-order mark (Notepad's "UTF-8 with BOM") is no character of line 1
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
            self.cp.read_string(text, source=path)
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
        except OSError as e:  # a directory in its place, no permission...
            raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
        except configparser.Error as e:
            raise ConfigError(f"{path}: {parse_problem(e, text)}") from None
        if not self.cp.sections() and not self.cp.defaults():  # said as '[main] name is required'
            what = "holds only comments" if text.strip() else "is empty"
            raise ConfigError(f"{path}: the file {what}: no [section] nor setting in it")
        indented = indented_line(self.cp, text)
        if indented:
            raise ConfigError(f"{path}: {indented}")
        defaults = list(self.cp.defaults())
        given = {s: [k for k in self.cp.options(s) if k not in defaults] for s in self.cp.sections()}
        # [DEFAULT] fills every section: each of its keys must be known in some section
        known = frozenset(k for keys in schema.values() for k in keys or ())
        refused = unknown_setting(path, {"DEFAULT": known, **schema}, {"DEFAULT": defaults, **given})
        if refused:
            raise ConfigError(refused)

    def _raw(self, section: str, key: str, default: object) -> str | None:
        if key not in (self.schema.get(section) or ()):  # a setting read here must be in the schema
            raise KeyError(f"[{section}] {key} is not in the schema of {self.path}")
        if self.cp.has_option(section, key):
            value = self.cp.get(section, key).strip()
            if not value and default is _REQUIRED:  # `url =`: was "ODB URL '' is not a database URL"
                raise ConfigError(f"{self.path}: [{section}] {key} is empty: it is required")
            return value
        if default is _REQUIRED:
            raise ConfigError(f"{self.path}: [{section}] {key} is required")
        return None

    def int(self, section: str, key: str, default: object = None, lo: int = 0, hi: int = 2**31) -> int:
        raw = self._raw(section, key, default)
        if raw is None:
            return default  # type: ignore[return-value]
        try:
            value = int(raw)
        except ValueError:
            what = f"{raw!r} is not a whole number{_hint(raw)}"
            raise ConfigError(f"{self.path}: [{section}] {key}: {what}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{self.path}: [{section}] {key}: {value} is not in {lo}..{hi}")
        return value

    def bool(self, section: str, key: str, default: bool) -> bool:
        raw = self._raw(section, key, default)
        if raw is None:
            return default
        if raw.lower() not in _BOOLS:
            raise ConfigError(f"{self.path}: [{section}] {key}: {raw!r} is not true or false{_hint(raw)}")
        return _BOOLS[raw.lower()]

    def float(
        self, section: str, key: str, default: float, hi: float = math.inf, zero: builtins.bool = False
    ) -> float:
        """A number of seconds, more than 0 (with `zero`: 0 or more) and at most `hi`."""
        raw = self._raw(section, key, default)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            what = f"{raw!r} is not a number{_hint(raw)}"
            raise ConfigError(f"{self.path}: [{section}] {key}: {what}") from None
        if not math.isfinite(value):  # float() takes nan and inf: a ttl or timeout never reached
            raise ConfigError(f"{self.path}: [{section}] {key}: {raw!r} is not a finite number")
        # Said as written, with the whole range (before, a 0 was '0.0 must be greater than 0')
        least = "0 or more" if zero else "more than 0"
        most = f" and at most {hi:g}" if math.isfinite(hi) else ""
        if (value < 0 if zero else value <= 0) or value > hi:  # 1e12: a drain that never ends
            raise ConfigError(f"{self.path}: [{section}] {key}: {raw} must be {least}{most} (seconds)")
        return value

    def section(self, name: str) -> dict:
        return dict(self.cp.items(name)) if self.cp.has_section(name) else {}

    # Last: inside the class, every annotation after this def would read `str` as this method.
    def str(self, section: str, key: str, default: object = None) -> str:
        raw = self._raw(section, key, default)
        return default if raw is None else raw  # type: ignore[return-value]


def parse_problem(e: configparser.Error, text: str) -> str:
    """configparser's error for an INI file as one line that says what to do (its own text
    names the file again, and shows the line as Python's repr across several lines)."""
    lines = text.splitlines()

    def line(number: int) -> str:
        return repr(lines[number - 1].strip()[:120]) if 0 < number <= len(lines) else "?"

    if isinstance(e, configparser.MissingSectionHeaderError):
        where = f"line {e.lineno}: {line(e.lineno)}"
        return f"{where} comes before any [section]: move it under one, or start it with #"
    if isinstance(e, configparser.ParsingError) and e.errors:
        number = e.errors[0][0]
        where = f"line {number}: {line(number)}"
        return f"{where} is neither a [section] nor key = value: mend it, or start it with #"
    if isinstance(e, configparser.DuplicateOptionError):
        return f"line {e.lineno}: [{e.section}] {e.option} is set a second time: keep one"
    if isinstance(e, configparser.DuplicateSectionError):
        return f"line {e.lineno}: [{e.section}] comes a second time: keep one, with all its keys"
    return f"cannot parse: {e}".replace("\n", " ")


def indented_line(cp: configparser.ConfigParser, text: str) -> str | None:
    """configparser reads an indented line as more of the value above it (a snippet pasted with
    its indentation: '    [metrics]' took the section and its keys into the key before, said
    as "[main] host: '127.0.0.1\\n[metrics]...' is neither an IP address nor a host name").
    No setting here spans lines: the first such line, said so; None when there is none."""
    for section in (cp.default_section, *cp.sections()):
        for key, value in cp.items(section, raw=True):
            if "\n" not in value:
                continue
            what = f"it is read as more of [{section}] {key}: start it at the line's beginning"
            first = next((part.strip() for part in value.split("\n")[1:] if part.strip()), "")
            for number, line in enumerate(text.splitlines(), 1):
                if first and line[:1].isspace() and line.strip() == first:
                    return f"line {number}: {first[:120]!r} is indented, so {what}"
            return f"[{section}] {key} spans several lines: {what}"
    return None


def _hint(raw: str) -> str:
    """Comments after a value are part of it (a password may hold '#'): say so when it shows."""
    return " (a comment must be on a line of its own)" if "#" in raw else ""


_REQUIRED = object()
_BOOLS = {**dict.fromkeys(("true", "yes", "on", "1"), True)}
_BOOLS.update(dict.fromkeys(("false", "no", "off", "0"), False))


def cluster_name_problem(name: str) -> str | None:
    """What is wrong with a cluster's name (it starts every Redis key and the arbiters' process
    titles), None when nothing is."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        return f"{name!r} may hold only letters, digits, - _ ."
    return None


def redis_url_problem(url: str) -> str | None:
    """What is wrong with a [kvdb] url, None when nothing is."""
    from zato.common.log import redact

    if not url.startswith(("redis://", "rediss://", "unix://")):
        return f"{redact(url)!r} is not a redis:// URL"  # a mistyped scheme: its password not said
    if any(c.isspace() for c in url):  # redis-py dropped the database of '.../5 # tests': db 0, unsaid
        return f"{redact(url)!r} holds a space, which no URL has{_hint(url)}"
    return None


def _redis(r: _Reader) -> RedisSettings:
    sentinels = []
    for item in filter(None, (s.strip() for s in r.str("kvdb", "sentinels", "").split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{r.path}: [kvdb] sentinels: {item!r} is not host:port")
        sentinels.append((host, int(port)))
    master = r.str("kvdb", "sentinel_master", "")
    if sentinels and not master:
        raise ConfigError(f"{r.path}: [kvdb] sentinel_master is required when sentinels are set")
    url = r.str("kvdb", "url", RedisSettings.url)
    problem = redis_url_problem(url)
    if problem:
        raise ConfigError(f"{r.path}: [kvdb] url: {problem}")
    timeout = r.float("kvdb", "socket_timeout", 1.0, hi=MAX_SOCKET_TIMEOUT)
    return RedisSettings(url, tuple(sentinels), master, timeout)


def _log_format(r: _Reader) -> str:
    value = r.str("logging", "format", "text").lower()
    if value not in ("text", "json"):
        raise ConfigError(f"{r.path}: [logging] format: {value!r} is not one of text, json")
    return value


def _cluster_name(r: _Reader) -> str:
    name = r.str("cluster", "name", _REQUIRED)
    problem = cluster_name_problem(name)
    if problem:
        raise ConfigError(f"{r.path}: [cluster] name: {problem}")
    return name


MIN_PASSWORD = 8  # [auth] admin_password (generated ones have 32 characters)
MIN_SECRET = 12  # [auth] cluster_secret, which also signs membership entries


def _secret(r: _Reader, key: str, minimum: int, optional: bool = False, section: str = "auth") -> str:
    """A password or secret: refused (one line, the value not shown) if empty or short.
    `optional`: empty turns the feature off; set, it must be as long as any other."""
    if not optional and not r.cp.has_option(section, key):
        r.str(section, key, _REQUIRED)  # "is required"; an empty one is said below, with what to set
    value = r.str(section, key, "")
    if len(value) < minimum and not (optional and not value):
        what = "is empty" if not value else f"is shorter than {minimum} characters"
        raise ConfigError(f"{r.path}: [{section}] {key} {what}; set a long random value")
    return value


def _metrics_credentials(r: _Reader) -> tuple[str, str]:
    """[metrics] username and password (server.conf: what a scrape of /metrics must send;
    dashboard.conf: what its scrapes send). No password: /metrics is open, as before. A user
    name holding ':' could never be sent in HTTP Basic (the first ':' ends it)."""
    password = _secret(r, "password", MIN_PASSWORD, optional=True, section="metrics")
    username = r.str("metrics", "username", METRICS_USERNAME)
    if not username or ":" in username or not username.isprintable():
        raise ConfigError(
            f"{r.path}: [metrics] username: {username[:80]!r} must be a name without ':' "
            "(HTTP Basic's separator)"
        )
    return username, password


def _server_name(r: _Reader) -> str:
    """The same pattern readers of membership entries check (zato.coord.parse.NAME_RE)."""
    name = r.str("main", "name", _REQUIRED)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ConfigError(f"{r.path}: [main] name: {name!r} must be 1-64 letters, digits, _ . - (not first)")
    return name


def proc_name(cluster: str, name: str) -> str:
    """gunicorn's proc_name for a server (its arbiter's title: "gunicorn: master [PROC_NAME]")."""
    return f"zato-{cluster}-{name}"


def _lenient_server_conf(server_dir: str) -> configparser.ConfigParser | None:
    """This server's server.conf as far as it parses, for what a stop needs of it: a key set
    twice (its last value) or a line that is no key = value (left out) does not hide the rest,
    as they would if read strictly (the running server started with a file that parsed; an
    edit since may not). None when the file cannot be read or has no section before a key."""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(os.path.join(server_dir, "config", SERVER_CONF), encoding="utf-8-sig") as f:
            cp.read_file(f)
    except configparser.MissingSectionHeaderError:
        return None
    except configparser.ParsingError:
        pass  # raised once the whole file was read: every line that parsed is in cp
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return cp


def server_title(server_dir: str) -> str | None:
    """The process title of this server's running arbiter, read leniently (a stop must work
    with a config that no longer loads): None when server.conf does not say."""
    cp = _lenient_server_conf(server_dir)
    try:
        if cp is None:
            return None
        given = cp.get("gunicorn", "proc_name", fallback="").strip()
        name = given or proc_name(cp.get("cluster", "name").strip(), cp.get("main", "name").strip())
    except configparser.Error:
        return None
    return f"gunicorn: master [{name}]"


def server_name(server_dir: str) -> str | None:
    """This server's [main] name, read leniently as server_title is (a stop must work with a
    config that no longer loads): None when server.conf does not say."""
    cp = _lenient_server_conf(server_dir)
    try:
        name = cp.get("main", "name", fallback="").strip() if cp is not None else ""
    except configparser.Error:
        return None
    return name or None


def server_drain(server_dir: str) -> float | None:
    """This server's [main] drain_seconds, read leniently as server_title is (a stop must work
    with a config that no longer loads): the default when server.conf does not set it; None
    when the file cannot be read or the value is none a server would start with."""
    cp = _lenient_server_conf(server_dir)
    try:
        if cp is None:
            return None
        drain = float(cp.get("main", "drain_seconds", fallback=str(ServerSettings.drain_seconds)))
    except (configparser.Error, ValueError):
        return None
    return drain if 0.0 <= drain <= MAX_DRAIN_SECONDS else None


def load_server_settings(server_dir: str) -> ServerSettings:
    path = os.path.abspath(server_dir)
    r = _Reader(os.path.join(path, "config", SERVER_CONF), SERVER_SCHEMA)
    lease = LeaseSettings(
        ttl=r.float("lease", "ttl", LeaseSettings.ttl, hi=MAX_HOUR),
        renew_interval=r.float("lease", "renew_interval", LeaseSettings.renew_interval, hi=MAX_HOUR),
        renew_deadline=r.float("lease", "renew_deadline", LeaseSettings.renew_deadline, hi=MAX_HOUR),
        retry_interval=r.float("lease", "retry_interval", LeaseSettings.retry_interval, hi=MAX_HOUR),
        handover_after=r.float("lease", "handover_after", LeaseSettings.handover_after, hi=MAX_HOUR),
        yield_for=r.float("lease", "yield_for", LeaseSettings.yield_for, hi=MAX_YIELD_FOR),
    )
    if not lease.renew_interval < lease.renew_deadline < lease.ttl:
        raise ConfigError(f"{r.path}: [lease] needs renew_interval < renew_deadline < ttl")
    if lease.yield_for < 2 * lease.handover_after:
        raise ConfigError(
            f"{r.path}: [lease] yield_for ({lease.yield_for:g} s) must be at least twice handover_after "
            f"({lease.handover_after:g} s): shorter, a next holder failing the same broker would not see "
            "that this one handed the lease over for it, and the lease would move around the cluster"
        )
    membership = MembershipSettings(
        heartbeat=r.float("membership", "heartbeat", MembershipSettings.heartbeat, hi=MAX_HOUR),
        ttl=r.float("membership", "ttl", MembershipSettings.ttl, hi=MAX_MEMBERSHIP_TTL),
    )
    if membership.heartbeat >= membership.ttl:
        raise ConfigError(f"{r.path}: [membership] heartbeat must be shorter than ttl")
    metrics_username, metrics_password = _metrics_credentials(r)
    return ServerSettings(
        path=path,
        name=_server_name(r),
        cluster=_cluster_name(r),
        host=r.str("main", "host", "127.0.0.1"),
        port=r.int("main", "port", 17010, 1, 65535),
        workers=r.int("main", "workers", 2, 1, 256),
        odb_url=r.str("odb", "url", _REQUIRED),
        redis=_redis(r),
        admin_username=r.str("auth", "admin_username", _REQUIRED),
        admin_password=_secret(r, "admin_password", MIN_PASSWORD),
        cluster_secret=_secret(r, "cluster_secret", MIN_SECRET),
        gunicorn=r.section("gunicorn"),
        membership=membership,
        lease=lease,
        log_level=_log_level(r),
        log_format=_log_format(r),
        access_log=r.bool("logging", "access_log", True),
        client_warning_interval=_client_warning_interval(r),
        drain_seconds=r.float("main", "drain_seconds", 1.0, hi=MAX_DRAIN_SECONDS, zero=True),
        deploy_timeout=r.float("main", "deploy_timeout", 10.0, hi=MAX_HOUR),
        pickup_quiet=r.float("main", "pickup_quiet", 1.0, hi=MAX_PICKUP_QUIET, zero=True),
        connector_hang_after=r.float("main", "connector_hang_after", 120.0, hi=MAX_HANG_AFTER, zero=True),
        limits=_limits(r),
        announce_host=_announce_host(r),
        tls_ca_file=_ca_file(r),
        tls_cert=_config_path(r, "tls", "cert"),
        invoke_username=r.str("auth", "invoke_username", "admin.invoke"),
        invoke_password=_secret(r, "invoke_password", MIN_PASSWORD, optional=True),
        import_budget=r.float("main", "import_budget", 2.0, hi=MAX_IMPORT_BUDGET),
        user_conf_dirs=_user_conf_dirs(r, path),
        user_config_files=_user_config_files(r),
        metrics_username=metrics_username,
        metrics_password=metrics_password,
    )


USER_CONF_DIR = os.path.join("config", "user-conf")


def _user_conf_dirs(r: _Reader, server_dir: str) -> tuple[str, ...]:
    """[main] user_conf_dir: folders (comma-separated; relative ones to the server directory)
    whose *.ini and *.conf files services read as self.config. A folder may not exist yet."""
    raw = r.str("main", "user_conf_dir", USER_CONF_DIR)
    folders = tuple(
        os.path.normpath(os.path.join(server_dir, p.strip())) for p in raw.split(",") if p.strip()
    )
    if not folders:
        raise ConfigError(f"{r.path}: [main] user_conf_dir: give at least one folder")
    return folders


def _user_config_files(r: _Reader) -> tuple[tuple[str, str], ...]:
    """[user_config] LABEL = path, as Zato's server.conf gives them: each file is a service's
    self.user_config.LABEL. A relative path is to the folder server.conf is in; a label keeps
    its case (configparser would lower it). A file may not exist yet: it is read when it does."""
    if not r.cp.has_section("user_config"):
        return ()
    cased = configparser.ConfigParser(interpolation=None)
    cased.optionxform = str  # type: ignore[assignment,method-assign]
    cased.read(r.path, encoding="utf-8-sig")  # read once already: it parses
    folder = os.path.dirname(r.path)
    files = []
    for label, value in cased.items("user_config"):
        if label in cased.defaults():
            continue
        value = value.strip()
        if not value:
            raise ConfigError(f"{r.path}: [user_config] {label}: give the path of an .ini file")
        files.append((label, os.path.normpath(os.path.join(folder, os.path.expanduser(value)))))
    return tuple(files)


def _existing_file(r: _Reader, section: str, key: str) -> str:
    value = r.str(section, key, "")
    if value and not os.path.isfile(value):
        raise ConfigError(f"{r.path}: [{section}] {key}: {value!r} is not a file")
    return value


def _ca_file(r: _Reader) -> str:
    """[tls] ca_file: a file of PEM CA certificates that OpenSSL can load (a key file given by
    mistake was a traceback at the first TLS connection, not a config error)."""
    value = _existing_file(r, "tls", "ca_file")
    if value:
        try:
            ssl.create_default_context(cafile=value)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise ConfigError(
                f"{r.path}: [tls] ca_file: {value!r} holds no CA certificate that can be read (PEM): "
                f"{getattr(e, 'reason', None) or e}"
            ) from None
    return value


def _config_path(r: _Reader, section: str, key: str) -> str:
    """A file's path: absolute, or relative to the config folder (lb.conf's and server.conf's
    [tls] cert); "" when not set."""
    value = r.str(section, key, "")
    if value and not os.path.isabs(value):
        value = os.path.join(os.path.dirname(r.path), value)
    return value


def _limits(r: _Reader) -> LimitSettings:
    d = LimitSettings()
    max_body = r.int("limits", "max_body", d.max_body, 0, 2**63)
    if max_body > MAX_BODY:
        raise ConfigError(
            f"{r.path}: [limits] max_body: {max_body} is over {MAX_BODY} bytes (2 GiB), the most it can be "
            "(a body is read whole into a worker's memory)"
        )
    return LimitSettings(
        max_body=max_body,
        body_timeout=r.float("limits", "body_timeout", d.body_timeout, hi=MAX_HOUR),
        send_timeout=r.float("limits", "send_timeout", d.send_timeout, hi=MAX_HOUR),
        max_headers=r.int("limits", "max_headers", d.max_headers, 1, 32768),
        max_header_size=r.int("limits", "max_header_size", d.max_header_size, 64, 65536),
        max_request_line=r.int("limits", "max_request_line", d.max_request_line, 64, 65536),
        max_form_fields=r.int("limits", "max_form_fields", d.max_form_fields, 1, 2**31),
        max_outgoing_body=r.int("limits", "max_outgoing_body", d.max_outgoing_body, 1, MAX_BODY),
    )


def _edge(r: _Reader) -> EdgeSettings:
    d = EdgeSettings()
    tls_cert = _config_path(r, "tls", "cert")

    def haproxy(key: str, lo: int, hi: int = 10**6) -> int:
        return r.int("haproxy", key, getattr(d, key), lo, hi)

    return EdgeSettings(
        maxconn=haproxy("maxconn", 10),
        max_conn_per_source=haproxy("max_conn_per_source", 0),
        timeout_http_request_ms=haproxy("timeout_http_request_ms", 1),
        timeout_keep_alive_ms=haproxy("timeout_keep_alive_ms", 1),
        server_maxconn=haproxy("server_maxconn", 1),
        server_maxqueue=haproxy("server_maxqueue", 0),
        admin_through_lb=r.bool("admin", "through_lb", d.admin_through_lb),
        admin_max_failures=r.int("admin", "max_failures", d.admin_max_failures, 0, 1000000),
        channel_max_failures=r.int("channels", "max_failures", d.channel_max_failures, 0, 1000000),
        stats_max_failures=r.int("stats", "max_failures", d.stats_max_failures, 0, 1000000),
        tls_cert=tls_cert,
        tls_alpn=_alpn(r, d.tls_alpn),
    )


def _alpn(r: _Reader, default: str) -> str:
    """[tls] alpn goes into haproxy.cfg: protocol names only (h2,http/1.1), nothing else."""
    value = r.str("tls", "alpn", default)
    if not re.fullmatch(r"[A-Za-z0-9/._-]{1,32}(,[A-Za-z0-9/._-]{1,32}){0,7}", value):
        raise ConfigError(
            f"{r.path}: [tls] alpn: {value[:80]!r} must be protocol names separated by commas (h2,http/1.1)"
        )
    return value


WILDCARDS = ("0.0.0.0", "::", "")


def _check_host(r: _Reader, key: str, value: str) -> str:
    """[main] host or announce_host: an IP address or a host name (or a wildcard that binds every
    interface); 'a b' would fail only later, as a port 'not free' or a server nobody reaches."""
    if value not in WILDCARDS:
        try:
            parse.host(value)
        except parse.BadEntry:
            raise ConfigError(
                f"{r.path}: [main] {key}: {value[:80]!r} is neither an IP address nor a host name"
            ) from None
    return value


def _announce_host(r: _Reader) -> str:
    """[main] announce_host: required when [main] host binds every interface (peers cannot
    reach 0.0.0.0), never itself a wildcard."""
    host = r.str("main", "host", "127.0.0.1")
    announce = r.str("main", "announce_host", "")
    if announce in WILDCARDS[:2]:
        raise ConfigError(f"{r.path}: [main] announce_host: {announce} is not an address peers can reach")
    # what the server announces is checked by every reader of its membership entry (the load
    # balancer, the connectors, zato cluster status), which ignore one that is no host
    key, value = ("announce_host", announce) if announce else ("host", host)
    _check_host(r, key, value)
    if host in WILDCARDS and not announce:
        raise ConfigError(
            f"{r.path}: [main] host {host or '(empty)'} binds every interface: set [main] announce_host "
            "to the address the LB and the other servers reach this server at"
        )
    return announce


MAX_CLIENT_WARNING_INTERVAL = 86400.0  # a day


def _client_warning_interval(r: _Reader) -> float:
    """[logging] client_warning_interval: seconds, more than 0 (0 would say every one: the
    flood it is there to prevent) and at most a day."""
    default = ServerSettings.client_warning_interval
    return r.float("logging", "client_warning_interval", default, hi=MAX_CLIENT_WARNING_INTERVAL)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(r: _Reader) -> str:
    level = r.str("logging", "level", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{r.path}: [logging] level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _haproxy_user(r: _Reader) -> str:
    """[haproxy] user: who HAProxy's workers and its config checks run as. Default, when the
    controller runs as root: the `haproxy` user (Debian's package), else `nobody`; when it
    does not run as root it cannot switch users, and the setting is ignored."""
    import pwd

    if os.geteuid() != 0:
        return ""
    configured = r.str("haproxy", "user", "")
    for name in [configured] if configured else ["haproxy", "nobody"]:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    if configured:
        raise ConfigError(f"{r.path}: [haproxy] user: no such user {configured!r}")
    raise ConfigError(
        f"{r.path}: [haproxy] user: set an unprivileged user for HAProxy (no haproxy or nobody)"
    )


def load_lb_settings(lb_dir: str) -> LBSettings:
    path = os.path.abspath(lb_dir)
    r = _Reader(os.path.join(path, "config", LB_CONF), LB_SCHEMA)
    return LBSettings(
        path=path,
        cluster=_cluster_name(r),
        host=_check_host(r, "host", r.str("main", "host", "0.0.0.0")),
        port=r.int("main", "port", 11223, 1, 65535),
        redis=_redis(r),
        stats_username=r.str("stats", "username", _REQUIRED),
        stats_password=r.str("stats", "password", _REQUIRED),
        haproxy_binary=r.str("haproxy", "binary", "haproxy"),
        haproxy_user=_haproxy_user(r),
        check_inter_ms=r.int("haproxy", "check_inter_ms", 300, 100, 60000),
        check_fall=r.int("haproxy", "check_fall", 2, 1, 100),
        check_rise=r.int("haproxy", "check_rise", 1, 1, 100),
        timeout_connect_ms=r.int("haproxy", "timeout_connect_ms", 1000, 1, 600000),
        timeout_client_ms=r.int("haproxy", "timeout_client_ms", 30000, 1, 3600000),
        timeout_server_ms=r.int("haproxy", "timeout_server_ms", 30000, 1, 3600000),
        retries=r.int("haproxy", "retries", 3, 0, 100),
        server_keep_alive=r.bool("haproxy", "server_keep_alive", False),
        log_level=_log_level(r),
        edge=_edge(r),
        log_format=_log_format(r),
        access_log=r.bool("logging", "access_log", True),
        cluster_secret=_secret(r, "cluster_secret", MIN_SECRET),
        tls_ca_file=_ca_file(r),
    )


def load_dashboard_settings(dashboard_dir: str) -> DashboardSettings:
    path = os.path.abspath(dashboard_dir)
    r = _Reader(os.path.join(path, "config", DASHBOARD_CONF), DASHBOARD_SCHEMA)
    lb_dir = r.str("lb", "dir", "")
    if lb_dir and not os.path.isabs(lb_dir):
        raise ConfigError(f"{r.path}: [lb] dir: {lb_dir!r} must be an absolute path")
    metrics_username, metrics_password = _metrics_credentials(r)
    return DashboardSettings(
        path=path,
        cluster=_cluster_name(r),
        host=_check_host(r, "host", r.str("main", "host", "127.0.0.1")),
        port=r.int("main", "port", 8183, 1, 65535),
        odb_url=r.str("odb", "url", _REQUIRED),
        redis=_redis(r),
        admin_username=r.str("auth", "admin_username", _REQUIRED),
        admin_password=_secret(r, "admin_password", MIN_PASSWORD),
        lb_dir=lb_dir,
        cluster_secret=_secret(r, "cluster_secret", MIN_SECRET, optional=True),
        session_minutes=r.int("main", "session_minutes", 480, 1, 60 * 24 * 30),
        log_level=r.str("logging", "level", "INFO"),
        log_format=_log_format(r),
        tls_ca_file=_ca_file(r),
        metrics_username=metrics_username,
        metrics_password=metrics_password,
    )
