"""Logging set-up shared by every process role. Secrets never reach a log line."""

from __future__ import annotations

import logging
import os
import re
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s"

_SECRET_RE = re.compile(r"(?i)(password|passwd|secret|token)([\"']?\s*[=:]\s*[\"']?)([^\s\"',&]+)")


class RedactingFilter(logging.Filter):
    """Masks `password=...`, `secret: ...` and URL passwords in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def redact(text: str) -> str:
    text = _SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + "******", text)
    return re.sub(r"(://[^:/@\s]+:)([^@\s]+)@", r"\1******@", text)


def setup_logging(logfile: str | None = None, level: str = "INFO", stream: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers: list[logging.Handler] = []
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    if stream or not logfile:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(logging.Formatter(FORMAT))
        h.addFilter(RedactingFilter())
        root.addHandler(h)
