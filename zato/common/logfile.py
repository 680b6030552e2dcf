"""The log file handler of every process (zato.common.log.setup_logging): a file loggers only
import, since logging.handlers brings socket, pickle and the rest with it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from logging.handlers import WatchedFileHandler


class LogFileHandler(WatchedFileHandler):
    """Opened again when logrotate (or anyone) moves the file away, like the stock one, but a
    failure to open or write never reaches the thread that logs.

    The stock handler closes its file, then opens the one at its path, outside emit()'s error
    handling: with the log's folder deleted or renamed, FileNotFoundError went up through
    logger.info() and ended that thread (a server's drain thread: the server then never
    stopped). Here, a file that cannot be opened again leaves the one it had open in use (a
    renamed folder keeps its log; a deleted one writes on to the deleted file), each record
    tries again, and any other failure (the disk full) goes to handleError. Each is said once
    on stderr (the process's stdout.log, or the terminal), not as logging's traceback per
    record."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.astray = False  # the file at its path cannot be opened: writing to the old one
        self.failing = False  # a record could not be written (said); until one is
        self.failed = False  # the record being written could not be

    def reopenIfNeeded(self) -> None:  # noqa: N802 - logging's name
        try:
            now = os.stat(self.baseFilename)
        except OSError:
            now = None
        if self.stream is None or (now is not None and (now.st_dev, now.st_ino) == (self.dev, self.ino)):
            return  # the same file (or none open yet: emit() opens it)
        try:
            stream = self._open()
        except OSError as e:
            if not self.astray:
                self.astray = True
                say(
                    f"cannot open log file {self.baseFilename} again ({e.strerror or e}): writing on to the"
                    " file it had open (moved or deleted) until it can"
                )
            return
        old, self.stream = self.stream, stream
        with contextlib.suppress(OSError):
            old.close()
        self._statstream()
        self.astray = False

    def emit(self, record: logging.LogRecord) -> None:
        self.failed = False
        try:
            super().emit(record)  # a failed write goes to handleError from in there
        except RecursionError:  # as logging's own handlers do
            raise
        except Exception:  # noqa: BLE001 - to logging's documented hook for it
            self.handleError(record)
        if not self.failed and not self.astray and self.stream is not None:
            self.failing = False  # written to the file at its path: a failure is said again

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802, ARG002 - logging's name
        self.failed = True
        if not self.failing:
            self.failing = True
            error = sys.exc_info()[1]
            say(
                f"cannot write log file {self.baseFilename} ({getattr(error, 'strerror', None) or error}):"
                " its records are dropped until it can be written again"
            )


def say(line: str) -> None:
    """One line on stderr, where nothing may raise."""
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        sys.stderr.flush()
