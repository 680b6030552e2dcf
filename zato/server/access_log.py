"""The server's access log, logs/http_access.log: one line per request, as web servers write
it (the Combined Log Format), plus how long it took and its CID, so a request a client saw can
be found in logs/server.log too:

    127.0.0.1 - crm [05/Dec/2026:00:44:06 +0000] "POST /crm/clients HTTP/1.1" 201 57 "-"
        "curl/8.5.0" 3.12ms KKX9ZBTD943DTKRBM8W8XVEKWQJ8 "203.0.113.9"       (one line)

The fields: the peer's address (the LB's, for requests that came through it), `-`, the user
(of HTTP Basic Auth on a secured channel, the API key's security definition, the admin API's
or the invoke endpoints' user; else `-`), the time, the request line, the status, the body's
bytes, Referer, User-Agent, the time the server took, the CID and X-Forwarded-For as the
request carried it (the LB appends the client's address there; `-` without one). With
`[logging] format = json` each line is a JSON object of the same fields.

Health checks and scrapes (/zato/ping, /zato/ready, /metrics) are left out: the LB asks
several times a second. So are the connectors' calls (/zato/internal/...): one a message, they
would outnumber everything else; a message that fails is logged in server.log and by its
connector. A query string goes through the same redaction as every log line
(`password=...`, `token=...` masked). Off with `[logging] access_log = false`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from zato.common.log import redact

logger = logging.getLogger("zato.access")
_NEVER_BEFORE = -1


def setup(path: str, fmt: str) -> None:
    """Send this process's access records (and its forked workers') to `path`."""
    from logging.handlers import WatchedFileHandler

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = WatchedFileHandler(path)  # reopened when logrotate moves it (README, "Logs")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not in server.log too
    _state["json"] = fmt == "json"


_state: dict[str, Any] = {"json": False, "second": _NEVER_BEFORE, "stamp": ""}


def _clf_time(now: float) -> str:
    second = int(now)
    if second != _state["second"]:  # one strftime a second, not one a request
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        _state["second"], _state["stamp"] = second, stamp
    return _state["stamp"]


def _quoted(value: str) -> str:
    """A header's value inside "...": quotes and backslashes escaped, control characters as
    \\xNN, so one request stays one line."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else ch.encode("unicode_escape").decode())
        else:
            out.append(ch)
    return "".join(out)


def write(environ: dict, status: str, headers: list[tuple[str, str]], cid: str, started: float) -> None:
    """One access record for a request answered with `status` and `headers`."""
    if not logger.handlers:
        return
    took_ms = (time.perf_counter() - started) * 1000
    length = next((v for k, v in headers if k.lower() == "content-length"), "-")
    query = environ.get("QUERY_STRING") or ""
    target = environ.get("PATH_INFO") or "/"
    if query:
        target += "?" + redact(query)
    user = environ.get("zato.user") or "-"
    referer = redact(environ.get("HTTP_REFERER") or "-")
    agent = environ.get("HTTP_USER_AGENT") or "-"
    forwarded = environ.get("HTTP_X_FORWARDED_FOR") or "-"
    method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
    if _state["json"]:
        now = time.time()
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        line = json.dumps(
            {
                "time": at,
                "remote": environ.get("REMOTE_ADDR", "-"),
                "user": user,
                "method": method,
                "target": target,
                "protocol": protocol,
                "status": int(status[:3]),
                "bytes": int(length) if length.isdigit() else None,
                "referer": referer,
                "user_agent": agent,
                "duration_ms": round(took_ms, 3),
                "cid": cid,
                "forwarded_for": forwarded,
            },
            ensure_ascii=False,
        )
    else:
        request = _quoted(f"{method} {target} {protocol}")
        line = (
            f'{environ.get("REMOTE_ADDR", "-")} - {_quoted(user)} [{_clf_time(time.time())}] "{request}" '
            f'{status[:3]} {length} "{_quoted(referer)}" "{_quoted(agent)}" {took_ms:.2f}ms {cid} '
            f'"{_quoted(forwarded)}"'
        )
    logger.info("%s", line)
