"""A SQLite connection that waits for another process's write lock in Python, not in SQLite.

SQLite's own busy wait (sqlite3.connect's `timeout`, PRAGMA busy_timeout) sleeps in C: in a
gevent process (the dashboard) nothing else runs meanwhile. A write waiting for the lock of a
sqlite3 shell left in a transaction, a backup or another writer held every request of the
dashboard, its page's stream and its logins with it, for up to the whole busy wait (30 s).

Here SQLite answers "busy" at once (timeout 0) and the statement is tried again after a short
time.sleep(), which gevent's monkey-patching makes a switch to the other greenlets, until the
connection's `busy_wait` has passed; then SQLite's "database is locked" is raised as before.
Only plain SQLITE_BUSY is tried again: SQLITE_BUSY_SNAPSHOT (another writer committed after
this transaction read, in WAL mode) fails at once, as SQLite's own wait has it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

SQLITE_BUSY = 5  # SQLite's primary result code; the extended ones (BUSY_SNAPSHOT: 517) differ
FIRST_PAUSE, LONGEST_PAUSE = 0.005, 0.1  # seconds between two tries, doubling up to the longest

T = TypeVar("T")


def _busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)  # Python 3.11 on; before, the message alone
    return code == SQLITE_BUSY if code is not None else str(e) == "database is locked"


def retrying(busy_wait: float, call: Callable[[], T], clock: Callable[[], float] = time.monotonic) -> T:
    """call(), tried again while SQLite says the database is busy, for up to busy_wait seconds."""
    deadline, pause = clock() + busy_wait, FIRST_PAUSE
    while True:
        try:
            return call()
        except sqlite3.OperationalError as e:
            left = deadline - clock()
            if not _busy(e) or left <= 0:
                raise
        time.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)


class WaitingCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> WaitingCursor:
        wait = getattr(self.connection, "busy_wait", 0.0)  # a WaitingConnection's
        retrying(wait, lambda: sqlite3.Cursor.execute(self, sql, parameters))
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> WaitingCursor:
        rows = list(seq_of_parameters)  # an iterator is used up by the first try
        wait = getattr(self.connection, "busy_wait", 0.0)
        retrying(wait, lambda: sqlite3.Cursor.executemany(self, sql, rows))
        return self


class WaitingConnection(sqlite3.Connection):
    """sqlite3.connect(..., timeout=0, factory=WaitingConnection), then `busy_wait` set."""

    busy_wait = 30.0  # seconds a statement or commit waits for another process's lock

    def cursor(self, factory: Any = WaitingCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def commit(self) -> None:
        retrying(self.busy_wait, lambda: sqlite3.Connection.commit(self))
