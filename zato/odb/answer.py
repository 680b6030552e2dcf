"""A bound on every wait for a PostgreSQL ODB's answer.

A PostgreSQL (or a pgbouncer) that takes connections and never answers (hung, stopped, its
disk stalled) held every call to it for ever: its kernel acknowledges what is sent and answers
libpq's keepalives, so neither those nor tcp_user_timeout end the wait, and libpq has no
timeout of its own for an answer. The admin API, the CLI, the lease keeper's epoch floor and
the supervisor's read of the definitions all waited as long as it did.

Here each call to the ODB is armed when it is sent (a statement, a commit, a rollback, the
ping of a pooled connection) and disarmed when its answer comes. A watchdog (a thread; a
greenlet in a gevent worker) shuts down the socket of a connection whose call has waited over
its bound: libpq then sees the connection closed, the call fails as on a broken link
(psycopg.OperationalError; SQLAlchemy drops the connection), and whoever waited says that the
ODB did not answer within that bound (cut_here()). A commit cut so is one whose answer was
lost: ODBUnavailable.at_commit, as when the link breaks.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

# Seconds a statement, commit or rollback may wait for its answer: above CHANGE_WAIT (15 s, what
# a change waits for a lock another holds, refused then by PostgreSQL itself).
ANSWER_WAIT = 20.0
# Seconds the ping of a pooled connection may wait (it takes no lock): as libpq's connect_timeout.
PING_WAIT = 10.0


class _Box:
    """What the watchdog tells one thread (or greenlet) that waited: the bound it went over."""

    cut: float | None = None


_locals: tuple[int, Any] = (0, None)


def _box() -> _Box:
    """This thread's (greenlet's) box: its threading.local made in this process, once a gevent
    worker is monkey-patched (one made by the arbiter before the fork would be the worker's
    one real thread's, shared by all its greenlets)."""
    global _locals  # noqa: PLW0603
    pid, here = _locals
    if pid != os.getpid():
        here = threading.local()
        _locals = (os.getpid(), here)
    box = getattr(here, "box", None)
    if box is None:
        box = here.box = _Box()
    return box


def cut_here() -> float | None:
    """The bound (seconds) over which a call of this thread (greenlet) waited for the ODB, its
    connection cut for it, since the last clear(); None if none was."""
    return _box().cut


def clear() -> None:
    _box().cut = None


class Watchdog:
    """One per process (made again in a forked child): the armed calls, by connection."""

    def __init__(self) -> None:
        self._pid = 0
        self._cond: Any = None
        self._due: dict[int, tuple[float, Any, float, _Box]] = {}

    def _started(self) -> Any:
        if self._pid != os.getpid():  # a new process: no thread of the parent's came with it
            self._pid, self._due = os.getpid(), {}
            self._cond = threading.Condition()
            watch = threading.Thread(target=self._run, args=(self._cond,), daemon=True)
            watch.name = "zato-odb-answer"
            watch.start()
        return self._cond

    def arm(self, dbapi_conn: Any, seconds: float) -> None:
        if dbapi_conn is None:  # no connection to watch (invalidated)
            return
        cond = self._started()
        with cond:
            self._due[id(dbapi_conn)] = (time.monotonic() + seconds, dbapi_conn, seconds, _box())
            cond.notify()

    def disarm(self, dbapi_conn: Any) -> None:
        if self._pid != os.getpid() or dbapi_conn is None:
            return
        with self._cond:
            self._due.pop(id(dbapi_conn), None)

    def _run(self, cond: Any) -> None:
        with cond:
            while cond is self._cond:
                now = time.monotonic()
                for key, (due, dbapi_conn, seconds, box) in list(self._due.items()):
                    if due <= now:
                        del self._due[key]
                        box.cut = seconds
                        _shut(dbapi_conn)
                nearest = min((due for due, *_ in self._due.values()), default=None)
                cond.wait(None if nearest is None else max(nearest - now, 0.01))


def _shut(dbapi_conn: Any) -> None:
    """Shut the connection's socket down (its owner still holds it, waiting): its wait ends."""
    try:
        fd = dbapi_conn.pgconn.socket  # psycopg: an error once the connection is closed
    except Exception:  # noqa: BLE001 - closed already: nothing waits on it
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


_watchdog = Watchdog()


def bound(engine: Engine) -> None:
    """Arm every call `engine` (psycopg) makes to the ODB; the engine must not pre-ping its
    pooled connections itself (its ping is made here, bounded)."""

    def dbapi(conn: Any) -> Any:
        """The DBAPI connection of SQLAlchemy Connection `conn`; None once it was invalidated (its
        link broken: a rollback then sends nothing). Reading `conn.connection` of an invalidated
        Connection raises PendingRollbackError, which took the place of the error that broke the
        link when a `with engine.connect()` block ended on it."""
        if conn.invalidated:
            return None
        try:
            return conn.connection.dbapi_connection
        except exc.SQLAlchemyError:
            return None

    @event.listens_for(engine, "connect")
    def _fresh(dbapi_conn: Any, record: Any) -> None:
        record.info["zato.fresh"] = True  # just connected: no ping needed

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if record.info.pop("zato.fresh", False):
            return
        _watchdog.arm(dbapi_conn, PING_WAIT)
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # closed by the ODB (restarted), cut by the watchdog: all stale
            raise exc.InvalidatePoolError(f"pooled connection to the ODB unusable: {e}") from e
        finally:
            _watchdog.disarm(dbapi_conn)

    @event.listens_for(engine, "before_cursor_execute")
    def _sent(conn: Any, *_args: Any) -> None:
        _watchdog.arm(dbapi(conn), ANSWER_WAIT)

    @event.listens_for(engine, "after_cursor_execute")
    def _answered(conn: Any, *_args: Any) -> None:
        _watchdog.disarm(dbapi(conn))

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _ending(conn: Any) -> None:  # answered by the time the connection goes back to the pool
        _watchdog.arm(dbapi(conn), ANSWER_WAIT)

    @event.listens_for(engine, "reset")
    def _resetting(dbapi_conn: Any, *_args: Any) -> None:  # the pool's rollback on return
        _watchdog.arm(dbapi_conn, ANSWER_WAIT)

    for name in ("checkin", "invalidate", "soft_invalidate", "close", "detach"):
        event.listen(engine, name, lambda dbapi_conn, *_args: _watchdog.disarm(dbapi_conn))
