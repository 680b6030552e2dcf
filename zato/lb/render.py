"""haproxy.cfg text from the LB settings and the list of backend servers.

Pure functions: no I/O, so the rendered text is unit-testable and the same options are used
for a `server` line in the file and for a Runtime API `add server` command.

Facts this config relies on (HAProxy 2.6, measured on this machine, see issue #4):
- `retry-on` + `retries` + `option redispatch`: a GET in flight on a server that dies is
  replayed on another one. L7 retries (anything but a connection failure) are disabled for
  methods that are not idempotent, and a 500 is never retried (it is the service's answer).
- `option idle-close-on-response`: reloads under keep-alive load lose no request.
- keep-alive with clients (no `option httpclose`: it halved the throughput); one request a
  server connection (`option http-server-close`, see below).
- health checks (`server_options`, CHECK_TIMEOUT_MS): every `check_inter_ms` (300) with
  `fall` 2; after a first failure the next check comes `fastinter` (inter / 5) later, and a
  check that gets no answer fails after `timeout check` (500 ms). A hung server (SIGSTOP:
  it connects, never answers) is DOWN after phase + 2 x timeout + fastinter: measured 1.1 to
  1.36 s under wrk load (1.55 to 2.0 s with inter 500, fastinter = inter, timeout 500 ms);
  a dead one (connection refused) after at most inter + fastinter. A live server goes DOWN
  only if /zato/ready takes over 500 ms twice in a row: the slowest check measured under wrk
  load on 2 cores was 14 ms (32 connections) and 178 to 467 ms (128). bench/lb part (d).
- the health check asks /zato/ready (readiness), not /zato/ping (liveness): a server that
  is starting (services not loaded) or draining (SIGTERM) answers 503 and gets no traffic.
- a host that vanishes (no RST, no FIN) under a request in flight (measured in network
  namespaces with nftables drop rules, tests/hosts and bench/faults; HAProxy 2.6):
  * `on-marked-down shutdown-sessions` (what this file used before) ends such requests about
    0.8 s after the host vanished, when the checks mark it DOWN, but a request still
    *connecting* to that host then (SYN dropped, `timeout connect` not yet over) is killed
    too and never retried: the client gets a closed connection (7 of 5,123 GETs failed in
    bench/faults). It also cut the requests of a live server that a lossy link made flap.
  * so: no shutdown-sessions. A connection to a vanished host fails `timeout connect` and
    is redispatched (conn-failure); a request the host had already received is found out by
    TCP keep-alive on the server side (SRVTCPKA_LINES: a probe after 1 s idle, then every
    1 s, the connection dead after 2 unanswered, about 3 s) and then retried elsewhere if it
    is idempotent, or answered 504 with Zato's envelope if not (ERROR_LOST): it may have
    run. A slow but live server's kernel answers the probes, so its requests keep their
    full `timeout server`.
  * `option http-server-close`: a server connection is used for one request. With keep-alive
    to the servers, a request written on a kept connection to a host that had just vanished
    sits unacknowledged in the kernel: keep-alive probes do not run then, and it waited for
    `timeout server` (30 s; the 5 s client timed out). Clients keep their keep-alive to
    HAProxy. The price in throughput: bench/lb part (f).
  * a hung process (SIGSTOP, a deadlock) on a live host: its kernel answers the probes, so
    the controller shuts the sessions of a server DOWN for HUNG_AFTER (zato/lb/reconcile.py).
- the 503 body is Zato's JSON error envelope; its CID is "K" + 27 upper-case hex digits
  (hex digits are a subset of Crockford base32, so it is a well-formed Zato CID) generated
  by HAProxy from a UUID, and also sent as X-Zato-CID.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from zato.common.errors import LBError
from zato.config.settings import LBSettings
from zato.lb import edge
from zato.lb.edge import quote as _quote

BACKEND = "zato_servers"
FRONTEND = "zato_lb"
ALIVE_URI = "/zato-lb-alive"
STATS_URI = "/zato-lb-stats"
METRICS_URI = "/zato-lb-metrics"  # HAProxy's own Prometheus exporter, behind the stats credentials
STATS_USERS = "zato_lb_stats"
ALIVE_BODY = "<html><body><h1>200 OK</h1>\\nHAProxy: service ready.\\n</body></html>\\n"
# The CID: a v4 UUID without dashes, upper case, its last 5 hex digits dropped -> 27 chars.
CID_FORMAT = "K%[uuid,regsub(-,,g),upper,regsub(.....$,)]"
ERROR_503 = edge.envelope("No server available")
# HAProxy's own 502 (a server lost under a request that cannot be replayed), sent as 504.
ERROR_LOST = edge.envelope(
    "The server handling the request was lost before it answered; the request may have run"
)
# Server-side TCP keep-alive: finds a vanished host under a request in flight (docstring).
SRVTCPKA_LINES = [
    "    option srvtcpka",
    "    srvtcpka-idle 1s",
    "    srvtcpka-intvl 1s",
    "    srvtcpka-cnt 2",
]
# A request HAProxy gave up on with a 502 of its own becomes a 504: the server did not answer
# in time. A server's own 502 (marked by the variable) is passed on as it is.
LOST_SERVER_LINES = [
    *SRVTCPKA_LINES,
    "    http-response set-var(txn.zato_server_answered) bool(true)",
    "    http-after-response set-status 504 if { status 502 } !{ var(txn.zato_server_answered) -m found }",
]
# Everything HAProxy can safely retry; 500 is left out on purpose (see module docstring).
RETRY_ON = "conn-failure empty-response junk-response response-timeout 0rtt-rejected 502 503 504"

_NAME_RE = re.compile(r"[^A-Za-z0-9_.:-]")
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_HOST_RE = re.compile(r"[A-Za-z0-9.:-]{1,253}")


class UnsafeValue(LBError):
    """A value that cannot be proved safe for its place in haproxy.cfg or a Runtime API command."""


@dataclass(frozen=True)
class Backend:
    """One backend server as HAProxy knows it. Only provably safe values make a Backend: a
    name of safe characters, an IP address as Python writes it, a port in range, so nothing
    read from Redis can add a line to haproxy.cfg or a command to the Runtime API."""

    name: str  # HAProxy server name (safe characters only)
    ip: str
    port: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SAFE_NAME_RE.fullmatch(self.name):
            raise UnsafeValue(f"server name {self.name!r} is not 1-64 of A-Z a-z 0-9 _ . : -")
        if not isinstance(self.ip, str) or not _is_ip(self.ip):
            raise UnsafeValue(f"server {self.name}: {self.ip!r} is not an IP address")
        if type(self.port) is not int or not 1 <= self.port <= 65535:
            raise UnsafeValue(f"server {self.name}: port {self.port!r} is not a whole number in 1..65535")

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


def haproxy_name(member_name: str) -> str:
    """A server name HAProxy accepts, derived from the member's name."""
    return _NAME_RE.sub("_", member_name)[:64] or "_"


def _is_ip(value: str) -> bool:
    try:
        return str(ipaddress.ip_address(value)) == value
    except ValueError:
        return False


def check_settings(s: LBSettings) -> None:
    """UnsafeValue unless every lb.conf value that goes into haproxy.cfg is safe there."""
    if not _HOST_RE.fullmatch(s.host):
        raise UnsafeValue(f"[main] host {s.host!r} is not an IP address or a host name")
    for what, value in (("[stats] username", s.stats_username), ("[stats] password", s.stats_password)):
        if not value or _CONTROL_RE.search(value):
            raise UnsafeValue(f"{what} must be non-empty, without control characters or line breaks")
    if not _SAFE_NAME_RE.fullmatch(s.cluster):
        raise UnsafeValue(f"[cluster] name {s.cluster!r} is not 1-64 of A-Z a-z 0-9 _ . : -")
    for number in (s.check_inter_ms, s.check_fall, s.check_rise, s.timeout_connect_ms, s.retries):
        if type(number) is not int:
            raise UnsafeValue(f"{number!r} is not a whole number")


CHECK_TIMEOUT_MS = 500  # most a health check may wait for /zato/ready to answer
MIN_FASTINTER_MS = 50


def server_options(settings: LBSettings) -> str:
    """Options of every backend server: health checks, identical in file and Runtime API."""
    inter = settings.check_inter_ms
    fast = max(MIN_FASTINTER_MS, inter // 5)
    return (
        f"check inter {inter} fastinter {fast} fall {settings.check_fall} rise {settings.check_rise} "
        + edge.server_limits(settings.edge)
    )


def stats_socket_path(settings: LBSettings) -> str:
    """The stats socket as HAProxy binds it. HAProxy runs with LB_DIR as its working folder,
    so the relative path work/haproxy.sock works however deep LB_DIR is (sun_path is 108 bytes)."""
    return "unix@" + os.path.relpath(settings.stats_socket, settings.path)


def render(settings: LBSettings, servers: list[Backend]) -> str:
    """The complete haproxy.cfg for `settings` with `servers` in the backend; UnsafeValue if a
    value cannot be proved safe for its place in the file (nothing is rendered then)."""
    check_settings(settings)
    for b in servers:
        if not isinstance(b, Backend):
            raise UnsafeValue(f"{b!r} is not a Backend")
    return "\n".join(
        [
            _global(settings),
            _userlist(settings),
            _defaults(settings),
            _frontend(settings),
            _backend(settings, servers),
            *edge.table_sections(settings.edge),
            "",
        ]
    )


def _user_lines(s: LBSettings) -> str:
    """Workers drop root for `haproxy_user` and its primary group (the master and the stats
    socket, mode 600, stay the controller's)."""
    if not s.haproxy_user:
        return ""
    if not _SAFE_NAME_RE.fullmatch(s.haproxy_user):
        raise UnsafeValue(f"[haproxy] user {s.haproxy_user!r} is not a plain user name")
    return f"    user {s.haproxy_user}\n    group {haproxy_group(s.haproxy_user)}\n"


def haproxy_group(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def _global(s: LBSettings) -> str:
    return (
        f"""# Rendered by the Zato load-balancer controller for cluster {s.cluster}.
# Do not edit: membership changes go through the Runtime API and are written back here.
global
    stats socket {stats_socket_path(s)} mode 600 level admin expose-fd listeners
    stats timeout 10s
    hard-stop-after 30s
"""
        + _user_lines(s)
        + "\n".join(edge.global_lines(s.edge))
        + "\n"
    )


def _userlist(s: LBSettings) -> str:
    return f"""userlist {STATS_USERS}
    user {_quote(s.stats_username)} insecure-password {_quote(s.stats_password)}
"""


def _defaults(s: LBSettings) -> str:
    return (
        f"""defaults
    mode http
    timeout connect {s.timeout_connect_ms}ms
    timeout client {s.timeout_client_ms}ms
    timeout server {s.timeout_server_ms}ms
    timeout check {CHECK_TIMEOUT_MS}ms
    timeout queue {s.timeout_connect_ms}ms
    retries {s.retries}
    option redispatch 1
    retry-on {RETRY_ON}
    option idle-close-on-response
    option http-server-close
"""
        + "\n".join(edge.defaults_lines(s.edge))
        + "\n"
    )


def _frontend(s: LBSettings) -> str:
    head = [f"frontend {FRONTEND}", edge.bind_line(s.host, s.port, s.edge), *edge.frontend_lines(s.edge)]
    return (
        "\n".join(head)
        + f"""
    monitor-uri {ALIVE_URI}
    unique-id-format {CID_FORMAT}
    http-error status 200 content-type text/html hdr Cache-Control no-cache string "{ALIVE_BODY}"
    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS
    acl zato_metrics path {METRICS_URI}
    http-request auth realm Zato\\ load\\ balancer if zato_metrics !{{ http_auth({STATS_USERS}) }}
    http-request use-service prometheus-exporter if zato_metrics
    stats enable
    stats uri {STATS_URI}
    stats realm Zato\\ load\\ balancer
    stats auth {_quote(s.stats_username)}:{_quote(s.stats_password)}
    stats refresh 5s
    default_backend {BACKEND}
"""
    )


def _backend(s: LBSettings, servers: list[Backend]) -> str:
    opts = server_options(s)
    lines = [
        f"backend {BACKEND}",
        "    balance roundrobin",
        "    option httpchk GET /zato/ready",  # readiness: 503 while starting or draining
        "    http-check expect status 200",
        "    http-error status 503 content-type application/json hdr X-Zato-CID %[unique-id] "
        f'lf-string "{ERROR_503}"',
        "    http-error status 502 content-type application/json hdr X-Zato-CID %[unique-id] "
        f'lf-string "{ERROR_LOST}"',
        *LOST_SERVER_LINES,
    ]
    for b in sorted(servers, key=lambda b: b.name):
        lines.append(f"    server {b.name} {b.address} {opts}")
    return "\n".join(lines) + "\n"
