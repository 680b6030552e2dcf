"""Logging set-up shared by every process role. Secrets never reach a log line.

Two formats, chosen by `[logging] format`: `text` (the default, one readable line) and
`json` (one JSON object per line: time, level, logger, role, server, pid, cid where there
is one, message, and exc for a traceback). The role (arbiter, worker, supervisor,
connector, zygote, lb) and server name are set once per process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

CID: ContextVar[str] = ContextVar("zato_cid", default="")  # the request being served, for log records

FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s"
FORMATS = ("text", "json")

_SECRET_RE = re.compile(r"(?i)(password|passwd|secret|token)([\"']?\s*[=:]\s*[\"']?)([^\s\"',&]+)")
_context = {"role": "", "server": ""}


class RedactingFilter(logging.Filter):
    """Masks `password=...`, `secret: ...` and URL passwords in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def printable(text: str, limit: int = 200) -> str:
    """Text a client chose (an AMQP message id) for a log line: on one line, with control and
    other unprintable characters escaped (a newline would start a line of the sender's
    choosing, an escape sequence would recolour a terminal), and at most `limit` characters."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."


# A URL's password: after "SCHEME://USER:" (USER may be empty: redis://:PASSWORD@host, Redis's
# own form for a password alone) up to the last "@" before the host's "/" (a password with an
# "@" of its own is hidden whole)
_URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)([^/\s]*)@")


def redact(text: str) -> str:
    text = _SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + "******", text)
    return _URL_PASSWORD_RE.sub(r"\1******@", text)


def redact_url(url: str) -> str:
    """A text given as a URL, for the error that refuses it: as redact, and one without "://"
    (user:PASSWORD@host/db, postgresql//user:PASSWORD@host) shows nothing before its last "@"
    when a ":" (a password's) may be there."""
    if "://" in url:
        return redact(url)
    head, at, tail = url.rpartition("@")
    return redact(url) if not at or ":" not in head else "******@" + tail


class TextFormatter(logging.Formatter):
    """FORMAT, with tracebacks redacted too (an exception's text may carry a URL or a secret)."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "role": _context["role"],
            "server": _context["server"],
            "pid": record.process,
            "message": record.getMessage(),
        }
        cid = getattr(record, "cid", "") or CID.get()
        if cid:
            doc["cid"] = cid
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def set_role(role: str, server: str | None = None) -> None:
    """The process role (and server name) every later record carries."""
    _context["role"] = role
    if server is not None:
        _context["server"] = server


def setup_logging(
    logfile: str | None = None,
    level: str = "INFO",
    stream: bool = False,
    fmt: str = "text",
    role: str = "",
    server: str = "",
) -> None:
    set_role(role, server)
    root = logging.getLogger()
    root.setLevel(level.upper())
    # pika tells at INFO how it opens and tears down each connection (a dozen lines per close,
    # transport states and socket reprs) beside the connectors' own one line: kept for DEBUG.
    logging.getLogger("pika").setLevel(logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING)
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers: list[logging.Handler] = []
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        from zato.common.logfile import LogFileHandler  # socket, pickle...: file loggers only

        # Reopened when logrotate (or anyone) moves the file away: every process of a server
        # writes to it, so none may rotate it itself (README, "Logs"). Never raises into the
        # thread that logs (its folder deleted, the disk full).
        handlers.append(LogFileHandler(logfile))
    if stream or not logfile:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
        h.addFilter(RedactingFilter())
        root.addHandler(h)


class _PikaAtDebug(logging.Handler):
    """pika's own records, as DEBUG records of the root logger without their tracebacks: a
    reconnecting connector says what failed in one line of its own per attempt, where pika
    logged 5-6 ERROR lines and tracebacks (120 lines a minute for 4 misconfigured connectors)."""

    def emit(self, record: logging.LogRecord) -> None:
        root = logging.getLogger()
        if not root.isEnabledFor(logging.DEBUG):
            return
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        root.handle(record)


def pika_at_debug() -> None:
    """Route pika's log records at DEBUG (seen only when the process logs DEBUG): an AMQP
    connector's process calls this once, and the dashboard (its Replay parked) at start."""
    pika_logger = logging.getLogger("pika")
    if not any(isinstance(h, _PikaAtDebug) for h in pika_logger.handlers):
        pika_logger.addHandler(_PikaAtDebug())
    pika_logger.propagate = False
    pika_logger.setLevel(
        logging.DEBUG if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.CRITICAL
    )


def setup_component_logging(settings: Any, role: str, stream: bool = False) -> None:
    """setup_logging from a component's settings ([logging] level and format)."""
    server = getattr(settings, "name", "")
    setup_logging(settings.logfile, settings.log_level, stream, settings.log_format, role, server)
