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

A line is one os.write to the file opened O_APPEND, so the workers' lines never mix, without
the logging module's locks and per-record stat (the access log cost a fifth of a worker's
requests that way: `bench/service --access-log-cost`). Like server.log, the file is opened
again when logrotate moved it away, checked once a second: the lines of that second go to the
moved file, none is lost.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from zato.common.log import redact

logger = logging.getLogger("zato.access_log")

REOPEN_CHECK = 1.0  # seconds between checks that the file is still the one at its path


class _File:
    """An append-only file that follows its path when the file there is replaced. One that
    cannot be opened again (its folder renamed or deleted) leaves the old one in use; a line
    that cannot be written (the disk full) is dropped. Each is said once in server.log: before,
    the OSError ended the request the line was for (its connection closed unanswered)."""

    def __init__(self, path: str, as_json: bool):
        self.path, self.as_json = path, as_json
        self.fd = -1
        self.checked = 0.0
        self.astray = False  # the file at `path` cannot be opened: writing to the old one
        self.failing = False  # a line could not be written (said); until one is
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd

    def write(self, line: str) -> None:
        now = time.monotonic()
        if now - self.checked >= REOPEN_CHECK:
            self.checked = now
            self._follow()
        try:
            os.write(self.fd, (line + "\n").encode("utf-8", "backslashreplace"))
        except OSError as e:
            if not self.failing:
                self.failing = True
                logger.warning(
                    "cannot write the access log %s (%s): its lines are dropped until it can be",
                    self.path,
                    e.strerror or e,
                )
            return
        self.failing = False

    def _follow(self) -> None:
        try:
            if os.path.samestat(os.stat(self.path), os.fstat(self.fd)):
                return
        except OSError:  # moved away and not made again yet
            pass
        try:
            self._open()
        except OSError as e:
            if not self.astray:
                self.astray = True
                logger.warning(
                    "cannot open the access log %s again (%s): writing on to the file it had open (moved or"
                    " deleted) until it can",
                    self.path,
                    e.strerror or e,
                )
            return
        self.astray = False


_file: _File | None = None
_clock: dict[str, str | int] = {"second": -1, "stamp": ""}


def setup(path: str, fmt: str) -> None:
    """Open the access log of this process (and of the workers it forks) at `path`."""
    global _file
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _file = _File(path, fmt == "json")


def _clf_time(now: float) -> str:
    second = int(now)
    if second != _clock["second"]:  # one strftime a second, not one a request
        _clock["second"], _clock["stamp"] = (
            second,
            time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second)),
        )
    return str(_clock["stamp"])


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


class Answer:
    """A request's start_response, remembering the status and headers it was given, so that
    log() can write the request's line once it is answered."""

    __slots__ = ("_start_response", "started", "status", "headers")

    def __init__(self, start_response: Callable[..., Any]):
        self._start_response, self.started = start_response, time.perf_counter()
        self.status: str = ""
        self.headers: list[tuple[str, str]] = []

    def start(self, status: str, headers: list, exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return self._start_response(status, headers, exc_info)

    def force_close(self) -> None:
        """Close the connection after this answer: forwarded to the server's own response, which
        then says `Connection: close` (zato.server.body.close_connection finds this method)."""
        force_close = getattr(getattr(self._start_response, "__self__", None), "force_close", None)
        if callable(force_close):
            force_close()

    def log(self, environ: dict, cid: str) -> None:
        write(environ, self.status or "500", self.headers, cid, self.started)


def write(environ: dict, status: str, headers: list[tuple[str, str]], cid: str, started: float) -> None:
    """One access line for a request answered with `status` and `headers`."""
    f = _file
    if f is None:
        return
    took_ms = (time.perf_counter() - started) * 1000
    length = next((v for k, v in headers if k.lower() == "content-length"), "-")
    query = environ.get("QUERY_STRING") or ""
    target = environ.get("PATH_INFO") or "/"
    if query:
        target += "?" + redact(query)
    user = environ.get("zato.user") or "-"
    referer = environ.get("HTTP_REFERER") or "-"
    if referer != "-":
        referer = redact(referer)
    agent = environ.get("HTTP_USER_AGENT") or "-"
    forwarded = environ.get("HTTP_X_FORWARDED_FOR") or "-"
    method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
    remote = environ.get("REMOTE_ADDR", "-")
    if f.as_json:
        now = time.time()
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        doc = {
            "time": at,
            "remote": remote,
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
        }
        f.write(json.dumps(doc, ensure_ascii=False))
        return
    request = _quoted(f"{method} {target} {protocol}")
    f.write(
        f'{remote} - {_quoted(user)} [{_clf_time(time.time())}] "{request}" {status[:3]} {length} '
        f'"{_quoted(referer)}" "{_quoted(agent)}" {took_ms:.2f}ms {cid} "{_quoted(forwarded)}"'
    )
