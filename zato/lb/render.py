"""haproxy.cfg text from the LB settings and the list of backend servers.

The file's skeleton, with the comments a user reads, is the template etc/haproxy.cfg (read
once, zato.lifecycle.templates); everything that goes into it is checked here first. Pure
functions otherwise: the rendered text is unit-testable and the same options are used for a
`server` line in the file and for a Runtime API `add server` command.

Facts this config relies on (HAProxy 2.6, measured on this machine, see issue #4):
- `retry-on` + `retries` + `option redispatch`: a GET in flight on a server that dies is
  replayed on another one. L7 retries (anything but a connection failure) are disabled for
  methods that are not idempotent, and a status a server answered (500, 502, 503, 504) is
  never retried (it is the service's answer).
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
  A check must *connect* within min(inter, `timeout connect`) (HAProxy's rule when `timeout
  check` is set): 300 ms by default, less than TCP's first SYN retransmission (1 s), so on
  links that lose packets two lost SYNs in a row mark a live server DOWN (at 25% loss
  between the LB and the servers, now and then all at once: 503s; bench/lb-loss 91.2%
  answered). The opt-in for such links, lb.conf check_inter_ms = 1500 and
  timeout_connect_ms = 1500 (and retries = 5: each try another server), waits out one lost
  SYN (97.5%; tests/hosts/test_lossy_lb_links.py)
  at a price: a hung server DOWN within ~2.8 s, a server the LB cannot reach within ~4.8 s
  (inter + 2 x 1.5 s + fastinter; 3.7 to 4.6 s measured in tests/hosts' lab), a dead one
  within ~1.8 s (inter + fastinter). So it is not the default: a killed or hung server must
  be DOWN within 1.5 s (the design's targets, bench/lb part (d)).
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
    TCP keep-alive on the server side (the template's `srvtcpka` lines: a probe after 1 s idle, then every
    1 s, the connection dead after 2 unanswered, about 3 s) and then retried elsewhere if it
    is idempotent, or answered 504 with Zato's envelope if not (ERROR_LOST): it may have
    run. A slow but live server's kernel answers the probes, so its requests keep their
    full `timeout server`, and are not replayed when it runs out (no `response-timeout` in
  retry-on): they are answered 504 with Zato's envelope.
  * `option http-server-close`: a server connection is used for one request. With keep-alive
    to the servers, a request written on a kept connection to a host that had just vanished
    sits unacknowledged in the kernel: keep-alive probes do not run then, and it waited for
    `timeout server` (30 s; the 5 s client timed out). Clients keep their keep-alive to
    HAProxy. The price in throughput: 15% of /zato/ping's req/s (bench/lb part f: 2480 vs
    2903); lb.conf [haproxy] server_keep_alive = true pays the hang instead.
  * a hung process (SIGSTOP, a deadlock) on a live host: its kernel answers the probes, so
    the controller shuts the sessions of a server DOWN for HUNG_AFTER (zato/lb/reconcile.py).
- the request's CID (HAProxy's unique id, the variable txn.zato_cid): a client's own X-Zato-CID
  when it is exactly one well-formed CID (zato.common.cid.CID_RE, what a server accepts), else
  "K" + 27 upper-case hex digits (hex digits are a subset of Crockford base32, so it is a
  well-formed Zato CID) generated by HAProxy from a UUID. It replaces whatever X-Zato-CID the
  client sent, so the server uses the CID the LB logs: a malformed one kept by the LB (order-42)
  was logged here while the server made and logged its own. The 503 body is Zato's JSON error
  envelope with that CID, also sent as X-Zato-CID.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from dataclasses import dataclass

from zato.common.cid import CID_RE
from zato.common.errors import LBError
from zato.config.settings import LBSettings
from zato.lb import edge
from zato.lb.edge import quote as _quote
from zato.lifecycle.templates import template

BACKEND = "zato_servers"
FRONTEND = "zato_lb"
ALIVE_URI = "/zato-lb-alive"
STATS_URI = "/zato-lb-stats"
METRICS_URI = "/zato-lb-metrics"  # HAProxy's own Prometheus exporter, behind the stats credentials
STATS_USERS = "zato_lb_stats"
ALIVE_BODY = "<html><body><h1>200 OK</h1>\\nHAProxy: service ready.\\n</body></html>\\n"
# A new CID: a v4 UUID without dashes, upper case, its last 5 hex digits dropped -> 27 chars.
CID_FORMAT = "K%[uuid,regsub(-,,g),upper,regsub(.....$,)]"
# A client's X-Zato-CID is kept only if it matches this, the very test a server applies to it.
CID_REGEX = CID_RE.pattern
ERROR_503 = edge.envelope("No server available")
# HAProxy's own 502 (a server lost under a request that cannot be replayed), sent as 504
# (the template's backend: srvtcpka, http-after-response).
ERROR_LOST = edge.envelope(
    "The server handling the request was lost before it answered; the request may have run"
)


def error_timeout(timeout_server_ms: int) -> str:
    """HAProxy's own 504 (no answer within timeout server), in Zato's envelope."""
    return edge.envelope(
        f"The server did not answer within {timeout_server_ms / 1000:g} s; the request may have run"
    )


# Everything HAProxy can safely retry: what fails before a server answered (it may have died
# under the request: a GET only is replayed). A status the server answered is the service's
# answer and is never retried: a 500, and a 502, 503 or 504 too (a service whose upstream is
# down, or Redis away under it; HAProxy's own 503 and 504 are not servers' answers, which is all
# retry-on's statuses match): with them here a GET that got one ran four times over the servers,
# calling its upstream again each time. Nor is response-timeout: a GET slower than timeout
# server (a long report) ran once more on each retry, four times in all, and its client waited
# four timeouts for a 504.
RETRY_ON = "conn-failure empty-response junk-response 0rtt-rejected"
# The external LB in front of clusters' LBs (zato.lb.external): a cluster's LB answers 503 when
# its cluster has no server left, and the request goes to another cluster.
EXTERNAL_RETRY_ON = RETRY_ON + " 502 503 504"

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


_SAFE_PATH_RE = re.compile(r"[^\s\\\"'#]+")


def check_settings(s: LBSettings) -> None:
    """UnsafeValue unless every lb.conf value that goes into haproxy.cfg is safe there."""
    if not _HOST_RE.fullmatch(s.host):
        raise UnsafeValue(f"[main] host {s.host!r} is not an IP address or a host name")
    for what, value in (("[stats] username", s.stats_username), ("[stats] password", s.stats_password)):
        if not value or _CONTROL_RE.search(value):
            raise UnsafeValue(f"{what} must be non-empty, without control characters or line breaks")
    if not _SAFE_NAME_RE.fullmatch(s.cluster):
        raise UnsafeValue(f"[cluster] name {s.cluster!r} is not 1-64 of A-Z a-z 0-9 _ . : -")
    if s.tls_ca_file and not _SAFE_PATH_RE.fullmatch(s.tls_ca_file):
        raise UnsafeValue(
            f"[tls] ca_file {s.tls_ca_file!r}: give a path without spaces, quotes, '#' or backslashes"
            " (it goes into haproxy.cfg and the Runtime API's commands)"
        )
    for number in (s.check_inter_ms, s.check_fall, s.check_rise, s.timeout_connect_ms, s.retries):
        if type(number) is not int:
            raise UnsafeValue(f"{number!r} is not a whole number")


CHECK_TIMEOUT_MS = 500  # most a health check may wait for /zato/ready to answer
MIN_FASTINTER_MS = 50


def server_options(settings: LBSettings) -> str:
    """Options of every backend server: health checks, identical in file and Runtime API."""
    inter = settings.check_inter_ms
    fast = max(MIN_FASTINTER_MS, inter // 5)
    tls = f"ssl verify required ca-file {settings.tls_ca_file} check-ssl " if settings.tls_ca_file else ""
    return (
        f"{tls}check inter {inter} fastinter {fast} fall {settings.check_fall} rise {settings.check_rise} "
        + edge.server_limits(settings.edge)
    )


def stats_socket_path(settings: LBSettings) -> str:
    """The stats socket as HAProxy binds it. HAProxy runs with LB_DIR as its working folder,
    so the relative path work/haproxy.sock works however deep LB_DIR is (sun_path is 108 bytes)."""
    return "unix@" + os.path.relpath(settings.stats_socket, settings.path)


TEMPLATE = "haproxy.cfg"  # etc/haproxy.cfg: the commented skeleton a user reads
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@functools.cache
def skeleton(name: str) -> str:
    """The text of the template etc/NAME, read once per process."""
    return template(name)


def fill(text: str, values: dict[str, str | int], blocks: dict[str, list[str]]) -> str:
    """`text` (an HAProxy config template) with `values` in its ${name} placeholders and each
    line that is only ${block} replaced by the lines of that block (none: the line goes).
    Strict both ways: a placeholder without a value, or a value or block the template does
    not use, is an LBError (template and code out of step); a value or line with a control
    character or line break is UnsafeValue (it could add a line to haproxy.cfg)."""
    for name, value in values.items():
        if type(value) is not int and (not isinstance(value, str) or _CONTROL_RE.search(value)):
            raise UnsafeValue(f"{name}: {value!r} is not one line of text or a whole number")
    for name, lines in blocks.items():
        for line in lines:
            if not isinstance(line, str) or _CONTROL_RE.search(line):
                raise UnsafeValue(f"{name}: {line!r} is not one line of text")
    unused_values, unused_blocks = set(values), set(blocks)
    out: list[str] = []
    for line in text.splitlines():
        whole = _PLACEHOLDER.fullmatch(line)
        if whole and whole.group(1) in blocks:
            out += blocks[whole.group(1)]
            unused_blocks.discard(whole.group(1))
            continue
        names = _PLACEHOLDER.findall(line)
        missing = [n for n in names if n not in values]
        if missing:
            raise LBError(f"the HAProxy template has placeholders the code does not fill: {missing}")
        unused_values.difference_update(names)
        out.append(_PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), line))
    if unused_values or unused_blocks:
        raise LBError(f"the HAProxy template lacks {sorted(unused_values | unused_blocks)}")
    return "\n".join(out).rstrip("\n") + "\n"


def render(settings: LBSettings, servers: list[Backend]) -> str:
    """The complete haproxy.cfg for `settings` with `servers` in the backend, from the template
    etc/haproxy.cfg; UnsafeValue if a value cannot be proved safe for its place in the file
    (nothing is rendered then)."""
    check_settings(settings)
    for b in servers:
        if not isinstance(b, Backend):
            raise UnsafeValue(f"{b!r} is not a Backend")
    s, opts = settings, server_options(settings)
    username, password = _quote(s.stats_username), _quote(s.stats_password)
    values: dict[str, str | int] = {
        "cluster": s.cluster,  # _SAFE_NAME_RE (check_settings)
        "stats_socket": stats_socket_path(s),
        "stats_users": STATS_USERS,
        "stats_username": username,
        "stats_password": password,
        "timeout_connect_ms": s.timeout_connect_ms,
        "timeout_client_ms": s.timeout_client_ms,
        "timeout_server_ms": s.timeout_server_ms,
        "check_timeout_ms": CHECK_TIMEOUT_MS,
        "retries": s.retries,
        "retry_on": RETRY_ON,
        "frontend": FRONTEND,
        "alive_uri": ALIVE_URI,
        "cid_format": CID_FORMAT,
        "cid_regex": CID_REGEX,
        "alive_body": ALIVE_BODY,
        "metrics_uri": METRICS_URI,
        "stats_uri": STATS_URI,
        "backend": BACKEND,
        "error_503": ERROR_503,
        "error_lost": ERROR_LOST,
        "error_timeout": error_timeout(s.timeout_server_ms),
        "server_connections": "http-keep-alive" if s.server_keep_alive is True else "http-server-close",
    }
    tables = [line for section in edge.table_sections(s.edge) for line in [*section.splitlines(), ""]]
    blocks = {
        "user_lines": _user_lines(s),
        "global_lines": edge.global_lines(s.edge),
        "defaults_lines": edge.defaults_lines(s.edge),
        "bind_line": [edge.bind_line(s.host, s.port, s.edge)],
        "connection_lines": edge.connection_lines(s.edge),
        "frontend_lines": edge.frontend_lines(s.edge),
        "stats_lines": edge.stats_lines(s.edge, (STATS_URI, METRICS_URI), STATS_USERS),
        "servers": _tls_lines(s)
        + [f"    server {b.name} {b.address} {opts}" for b in sorted(servers, key=lambda b: b.name)],
        "tables": tables,
        **_log_blocks(s),
    }
    return fill(skeleton(TEMPLATE), values, blocks)


def _tls_lines(s: LBSettings) -> list[str]:
    """With [tls] ca_file, a default-server line naming it: HAProxy loads a CA file a server
    added through the Runtime API uses only if the config named it when it was read ("'ca-file'
    : unable to load", then a reload for every server added)."""
    if not s.tls_ca_file:
        return []
    return [
        "    # lb.conf [tls] ca_file: the servers are reached over TLS, verified against it",
        f"    default-server ssl verify required ca-file {s.tls_ca_file}",
    ]


def _log_blocks(s: LBSettings) -> dict[str, list[str]]:
    """HAProxy's request log (lb.conf [logging] access_log): to its standard output, which the
    controller appends to logs/haproxy.log."""
    if not s.access_log:
        return {"log_global_lines": [], "log_defaults_lines": []}
    return {
        "log_global_lines": ["    log stdout format raw local0 info"],
        "log_defaults_lines": ["    log global", f'    log-format "{LOG_FORMAT}"'],
    }


# HAProxy's HTTP log format (option httplog) with the request's CID (%ID, its unique id: the
# X-Zato-CID the server gets) where httplog puts captured headers; "-" for what HAProxy answered
# before reading a whole request (a 400, a 408). The request line's query string is redacted as
# the server's access log redacts it (zato.common.log.redact: the value after password, passwd,
# secret or token and "=" or ":" is ******): before, `?password=...` was in haproxy.log whole.
_REDACTED_URI = "%[capture.req.uri,regsub('(password|passwd|secret|token)([=:])[^&;]*','\\1\\2******','gi')]"
LOG_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %ID "
    f'\\"%HM {_REDACTED_URI} %HV\\"'
)


def _user_lines(s: LBSettings) -> list[str]:
    """Workers drop root for `haproxy_user` and its primary group (the master and the stats
    socket, mode 600, stay the controller's)."""
    if not s.haproxy_user:
        return []
    if not _SAFE_NAME_RE.fullmatch(s.haproxy_user):
        raise UnsafeValue(f"[haproxy] user {s.haproxy_user!r} is not a plain user name")
    return [f"    user {s.haproxy_user}", f"    group {haproxy_group(s.haproxy_user)}"]


def haproxy_group(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
