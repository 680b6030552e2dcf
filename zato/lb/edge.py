"""The public edge of the load balancer: the HAProxy lines that protect the frontend from slow
and hostile clients, decide what the public port exposes, and terminate TLS.

Pure functions over `EdgeSettings` (lb.conf), used by `zato.lb.render`. What each rule does:
- `maxconn` (global and frontend) bounds what HAProxy holds; `timeout http-request` closes a
  client that has not sent its whole request (headers, and with `option http-buffer-request`
  the start of its body) in time, however slowly it trickles bytes; `timeout http-keep-alive`
  closes idle kept-alive connections.
- Per client address (stick table `per_source`): more than `max_conn_per_source` connections at
  once are closed at accept, so one address flooding the port costs its own sockets only.
- A path with a malformed percent-escape (a `%` not followed by two hexadecimal digits) is
  refused with 400 in Zato's envelope before any other rule: HAProxy's `url_dec` gives no
  value for it, so no rule on the decoded path below would match, while the servers decode
  the rest of it and keep the bad `%` as it is (`/zato/internal/invoke/x%` reached the
  internal endpoint, `/zato/admin/services%` the admin API's login, through_lb or not).
- `/zato/internal/` (connector -> server calls, which go to the servers directly) is refused
  with 403 in Zato's envelope; the path is matched percent-decoded, as the servers see it.
  So is `/metrics` (each server's Prometheus page is scraped on the server's own port; HAProxy's
  own exporter is `/zato-lb-metrics`, behind the stats credentials).
- `/zato/admin/` and `/zato/api/invoke/` (Zato's invoke endpoints, for zato-client): reachable
  with their credentials unless `[admin] through_lb = false` (403); an address whose failed
  logins (401 answers) exceed `[admin] max_failures` in a minute gets 429 for those paths until
  its rate falls (stick table `admin_failures`); the 429 says in Retry-After how many seconds
  until it has certainly fallen (`retry_after_lines`). Callers of secured channels likewise.
- The stats page and HAProxy's metrics page (behind `[stats] username/password`): an address
  whose requests there carried wrong credentials `[stats] max_failures` times in a minute gets
  429 on those pages until its rate falls (stick table `stats_failures`, `stats_lines`). HAProxy
  answers their 401 itself, which `http-response` rules never see, so a failure is counted as
  the request comes in: an Authorization header that `http_auth` does not accept.
- TLS: `bind ... ssl crt PEM alpn h2,http/1.1` when `[tls] cert` is set.
"""

from __future__ import annotations

from dataclasses import replace

from zato.config.settings import EdgeSettings

SOURCE_TABLE = "per_source"
ADMIN_TABLE = "admin_failures"
CHANNEL_TABLE = "channel_failures"
STATS_TABLE = "stats_failures"
INTERNAL_PATH = "/zato/internal"
ADMIN_PATH = "/zato/admin"
API_INVOKE_PATH = "/zato/api/invoke"  # Zato's APIClient; /zato/admin/invoke is under ADMIN_PATH
METRICS_PATH = "/metrics"


def envelope(detail: str) -> str:
    """Zato's error envelope as an HAProxy lf-string (the CID is the request's unique id); a
    `%` in `detail` is written as the lf-string's `%%`."""
    return (
        '{\\"zato_env\\": {\\"details\\": \\"' + detail.replace("%", "%%") + '\\", '
        '\\"result\\": \\"ZATO_ERROR\\", \\"cid\\": \\"%[unique-id]\\"}}'
    )


def _return(status: int, detail: str, condition: str, retry_after: bool = False) -> str:
    extra = f"hdr Retry-After %[var({RETRY_AFTER_VAR})] " if retry_after else ""
    return (
        f"    http-request return status {status} content-type application/json "
        f'hdr X-Zato-CID %[unique-id] {extra}lf-string "{envelope(detail)}" {condition}'
    )


RATE_PERIOD = 60  # seconds: the stick tables' gpc0_rate(60s)
RATE_VAR = "txn.zato_failure_rate"
RETRY_AFTER_VAR = "txn.zato_retry_after"


def retry_after_lines(counter: int, table: str, limit: int, condition: str) -> list[str]:
    """Rules that set RETRY_AFTER_VAR to the seconds after which an address refused for its
    rate of failures (sc<counter>_gpc0_rate >= `limit`) is certainly let through again.
    HAProxy's rate r is the count of the current 60 s period plus the previous period's count
    weighted by the time left in the current one; a refused address adds no failures, so its
    rate is under `limit` within P * (2 - limit / r) seconds (P = 60): 60 s when it just
    reached the limit, 120 s at most. Sent as 2P + 1 - floor(P * limit / r), never too soon."""
    rate = f"sc{counter}_gpc0_rate({table})"
    wait = f"int({RATE_PERIOD * limit}),div({RATE_VAR}),neg,add({2 * RATE_PERIOD + 1})"
    return [
        f"    http-request set-var({RATE_VAR}) {rate} {condition}",
        f"    http-request set-var({RETRY_AFTER_VAR}) {wait} {condition}",
    ]


def global_lines(e: EdgeSettings) -> list[str]:
    return [f"    maxconn {e.maxconn}"]


def defaults_lines(e: EdgeSettings) -> list[str]:
    return [
        f"    timeout http-request {e.timeout_http_request_ms}ms",
        f"    timeout http-keep-alive {e.timeout_keep_alive_ms}ms",
    ]


def bind_line(host: str, port: int, e: EdgeSettings) -> str:
    line = f"    bind {host}:{port}"
    if e.tls_cert:
        line += f" ssl crt {quote(e.tls_cert)} alpn {e.tls_alpn}"
    return line


def connection_lines(e: EdgeSettings) -> list[str]:
    """The public frontend's limits on connections (evaluated before any HTTP rule)."""
    lines = [f"    maxconn {e.maxconn}", "    option http-buffer-request"]
    if e.max_conn_per_source:
        lines += [
            f"    tcp-request connection track-sc0 src table {SOURCE_TABLE}",
            f"    tcp-request connection reject if {{ sc0_conn_cur gt {e.max_conn_per_source} }}",
        ]
    return lines


# A `%` not followed by two hexadecimal digits (POSIX ERE: HAProxy may be built without PCRE).
BAD_ESCAPE_RE = "%([^0-9A-Fa-f]|[0-9A-Fa-f][^0-9A-Fa-f]|[0-9A-Fa-f]?$)"
BAD_ESCAPE_DETAIL = "malformed request path: a % not followed by two hexadecimal digits (send a % as %25)"


def frontend_lines(e: EdgeSettings) -> list[str]:
    """HTTP rules of the public frontend, in the order HAProxy evaluates them."""
    lines = [
        # first: every rule below matches the decoded path, which such a path does not have
        f"    acl zato_bad_escape path -m reg {BAD_ESCAPE_RE}",
        _return(400, BAD_ESCAPE_DETAIL, "if zato_bad_escape"),
        f"    acl zato_internal path,url_dec -m beg {INTERNAL_PATH}/",
        f"    acl zato_internal path,url_dec -m str {INTERNAL_PATH}",
        f"    acl zato_admin path,url_dec -m beg {ADMIN_PATH}/",
        f"    acl zato_admin path,url_dec -m str {ADMIN_PATH}",
        f"    acl zato_admin path,url_dec -m beg {API_INVOKE_PATH}/",
        _return(403, f"{INTERNAL_PATH}/ is not served on the public port", "if zato_internal"),
        # each server's /metrics is for Prometheus on the servers' own ports, not the public
        f"    acl zato_server_metrics path,url_dec -m str {METRICS_PATH}",
        _return(403, f"{METRICS_PATH} is served on each server's own port", "if zato_server_metrics"),
    ]
    if not e.admin_through_lb:
        detail = f"{ADMIN_PATH}/ and {API_INVOKE_PATH}/ are not served through the load balancer"
        lines.append(_return(403, detail, "if zato_admin"))
    elif e.admin_max_failures:
        refused = f"if zato_admin {{ sc1_gpc0_rate({ADMIN_TABLE}) ge {e.admin_max_failures} }}"
        lines += [
            f"    http-request track-sc1 src table {ADMIN_TABLE} if zato_admin",
            *retry_after_lines(1, ADMIN_TABLE, e.admin_max_failures, refused),
            _return(429, "too many failed admin logins from this address; try again later", refused, True),
            "    http-response sc-inc-gpc0(1) if { status 401 }  # sc1 is tracked on admin paths only",
        ]
    if e.channel_max_failures:  # callers of secured channels guessing passwords or keys
        refused = f"if !zato_admin {{ sc2_gpc0_rate({CHANNEL_TABLE}) ge {e.channel_max_failures} }}"
        lines += [
            f"    http-request track-sc2 src table {CHANNEL_TABLE} if !zato_admin",
            *retry_after_lines(2, CHANNEL_TABLE, e.channel_max_failures, refused),
            _return(429, "too many failed logins from this address; try again later", refused, True),
            "    http-response sc-inc-gpc0(2) if { status 401 }  # sc2 is tracked on other paths only",
        ]
    return lines


def stats_lines(e: EdgeSettings, pages: tuple[str, str], userlist: str) -> list[str]:
    """Rules guarding the stats page (`pages[0]`, which HAProxy serves under any path it begins)
    and the metrics page (`pages[1]`) against guessed passwords; to be evaluated before the
    rules that ask for their credentials. Stick counter 1 is free on these paths (it is tracked
    on the admin paths only)."""
    if not e.stats_max_failures:
        return []
    stats_page, metrics_page = pages
    refused = f"if zato_lb_page {{ sc1_gpc0_rate({STATS_TABLE}) ge {e.stats_max_failures} }}"
    detail = "too many failed logins to the load balancer's pages from this address; try again later"
    return [
        f"    acl zato_lb_page path -m beg {stats_page}",
        f"    acl zato_lb_page path {metrics_page}",
        f"    http-request track-sc1 src table {STATS_TABLE} if zato_lb_page",
        *retry_after_lines(1, STATS_TABLE, e.stats_max_failures, refused),
        _return(429, detail, refused, True),
        # a failed login: credentials sent and refused (a first request without any, as a
        # browser sends before it asks for them, is not one)
        f"    http-request sc-inc-gpc0(1) if zato_lb_page {{ req.hdr_cnt(authorization) gt 0 }} "
        f"!{{ http_auth({userlist}) }}",
    ]


def table_sections(e: EdgeSettings) -> list[str]:
    """Backends that only hold stick tables (HAProxy 2.6 has no top-level `table`)."""
    out = []
    if e.max_conn_per_source:
        out.append(f"backend {SOURCE_TABLE}\n    stick-table type ipv6 size 1m expire 30s store conn_cur\n")
    if e.admin_through_lb and e.admin_max_failures:
        store = "gpc0,gpc0_rate(60s)"
        out.append(f"backend {ADMIN_TABLE}\n    stick-table type ipv6 size 100k expire 60s store {store}\n")
    if e.channel_max_failures:
        store = "gpc0,gpc0_rate(60s)"
        out.append(f"backend {CHANNEL_TABLE}\n    stick-table type ipv6 size 100k expire 60s store {store}\n")
    if e.stats_max_failures:
        store = "gpc0,gpc0_rate(60s)"
        out.append(f"backend {STATS_TABLE}\n    stick-table type ipv6 size 100k expire 60s store {store}\n")
    return out


FD_RESERVE = 100  # open files HAProxy needs besides two per connection (listeners, checks, logs)


def fit_maxconn(e: EdgeSettings, fd_hard_limit: int) -> tuple[EdgeSettings, str]:
    """HAProxy refuses to start when it cannot raise its open-files limit to about
    2 x maxconn: lower maxconn to what the hard limit allows, with a warning to log."""
    fits = max(10, (fd_hard_limit - FD_RESERVE) // 2)
    if fd_hard_limit < 0 or e.maxconn <= fits:  # RLIM_INFINITY is -1
        return e, ""
    warning = (
        f"[haproxy] maxconn {e.maxconn} needs about {2 * e.maxconn + FD_RESERVE} open files but the "
        f"hard limit (ulimit -Hn) is {fd_hard_limit}: using maxconn {fits}"
    )
    return replace(e, maxconn=fits), warning


def server_limits(e: EdgeSettings) -> str:
    """Per-server options: requests in flight, and a bounded queue behind them."""
    return f"maxconn {e.server_maxconn} maxqueue {e.server_maxqueue}"


def quote(value: str) -> str:
    """Escape a value for an unquoted HAProxy config word."""
    import re

    return re.sub(r"([\s\\\"'#])", r"\\\1", value)
