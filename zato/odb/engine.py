"""Engines and sessions for the ODB; the only place that knows about database URLs."""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator
from typing import TypeVar

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from zato.common.errors import ConfigError, ODBError, ODBUnavailable
from zato.common.log import redact, redact_url
from zato.odb import answer
from zato.odb.models import Base


def normalize_url(url: str) -> str:
    """Accept the usual spellings; pick the drivers we ship (psycopg 3, oracledb)."""
    for old, new in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("oracle://", "oracle+oracledb://"),
    ):
        if url.startswith(old):
            return new + url[len(old) :]
    return url


# A PostgreSQL ODB behind a link that died (a host cut off, a blackhole) would hold a query, or
# a pooled connection's ping, for as long as the kernel retransmits (minutes): the supervisor's
# read of the connector definitions with it. These libpq settings end such a wait in seconds
# (a query the server is still working on is not affected: its kernel answers the keepalives).
PG_NETWORK = {
    "connect_timeout": 10,  # seconds to connect
    "keepalives": 1,
    "keepalives_idle": 5,  # seconds idle (waiting for an answer) before the first probe
    "keepalives_interval": 2,
    "keepalives_count": 3,  # so a dead peer is noticed about 11 s into a wait
    "tcp_user_timeout": 10000,  # ms that sent data may stay unacknowledged
}


# Text goes to and from PostgreSQL as UTF-8 whatever the database's own encoding: psycopg takes
# the database's by default, so a LATIN1 one failed in Python on the first character it lacks
# (a traceback from `zato deploy`, a 500 from the admin API) and a SQL_ASCII one gave bytes,
# not text (a TypeError in SQLAlchemy at the first connection). Now PostgreSQL converts, and a
# character a database's encoding lacks is its one-line error (UntranslatableCharacter).
PG_TEXT = {"client_encoding": "UTF8"}


def is_sqlite(url: str) -> bool:
    try:
        return make_url(normalize_url(url)).get_backend_name() == "sqlite"
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return False


def load_dialect(url: str) -> None:
    """Import SQLAlchemy's dialect of `url` (not its database driver, which it imports only
    when an engine is made)."""
    with contextlib.suppress(ArgumentError, ValueError, ImportError):
        make_url(normalize_url(url)).get_dialect()


SQLITE_BUSY_WAIT = 30.0  # seconds a write waits for another process's lock on the SQLite file


def make_engine(url: str, busy_wait: float = SQLITE_BUSY_WAIT, wait_in_python: bool = False) -> Engine:
    """wait_in_python: a SQLite ODB's busy wait in Python (zato.odb.sqlite_wait), which gevent
    turns into a switch to the other greenlets, instead of SQLite's own, which holds the process."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"ODB URL {redact_url(url)!r} is not a database URL") from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise _misread(url, "its port is not a number") from None
    if parsed.host and "@" in parsed.host:
        raise _misread(url, "its host holds an '@'")
    if parsed.get_backend_name() == "sqlite":
        from zato.odb.sqlite_wait import WaitingConnection

        own_wait = 0.0 if wait_in_python else busy_wait  # SQLite's own: 0 answers "busy" at once
        connect_args: dict = {"timeout": own_wait}
        if wait_in_python:
            connect_args["factory"] = WaitingConnection
        engine = create_engine(url, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            if isinstance(dbapi_conn, WaitingConnection):
                dbapi_conn.busy_wait = busy_wait
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(own_wait * 1000)}")
            cur.close()

        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        # libpq's own settings (both drivers are libpq), unless the URL sets them
        connect_args = {k: v for k, v in {**PG_NETWORK, **PG_TEXT}.items() if k not in parsed.query}
    # psycopg: every wait for an answer bounded (zato.odb.answer), which pings pooled connections
    bounded = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg"
    try:
        engine = create_engine(
            url, pool_pre_ping=not bounded, pool_size=5, max_overflow=5, connect_args=connect_args
        )
    except (ArgumentError, ImportError, SQLAlchemyError) as e:
        raise ConfigError(f"ODB URL {redact_url(url)!r}: {e}") from None
    if bounded:
        answer.bound(engine)
    return engine


def _misread(url: str, why: str) -> ConfigError:
    """A URL whose user or password holds what a URL may not (an '@', ':', '/' not
    percent-encoded): read so, part of the password was taken for the host or the port, and
    said in errors and logs (`failed to resolve host 'cretXYZ@db'`), or a traceback
    (ValueError). Shown with everything before its last '@' masked."""
    scheme, sep, rest = url.partition("://")
    shown = f"{scheme}://******@{rest.rpartition('@')[2]}" if sep and "@" in rest else redact_url(url)
    return ConfigError(
        f"ODB URL {shown!r} cannot be read: {why}; a user or password holding @ : / # ? or % must be"
        " percent-encoded in the URL (@ as %40, : %3A, / %2F, # %23, ? %3F, % %25)"
    )


_SCHEMA_LOCK = 0x7A61_746F  # "zato": the PostgreSQL advisory lock held while the schema is made
_CHANGES_LOCK = 0x7A63  # the first key of a cluster's advisory lock for changes (ODB.change)
CHANGE_WAIT = 15.0  # seconds a change waits for a lock another holds (PostgreSQL's lock_timeout)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE of a lock_timeout


def create_schema(engine: Engine) -> None:
    """Create what is missing: tables, and nullable columns a newer version added to an
    existing table (an ODB made by an older version keeps working after an upgrade)."""
    try:
        if _schema_complete(engine):  # every start but the first: nothing to make
            return
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Servers starting at once on a new database: without it, each sees a table
                # missing, each creates it, and all but one fail on PostgreSQL's catalogue.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            Base.metadata.create_all(conn)
        _add_missing_columns(engine)
    except SQLAlchemyError as e:
        raise ODBError(f"cannot create the ODB schema at {redact(str(engine.url))}: {e}") from None


def _schema_complete(engine: Engine) -> bool:
    """Whether the ODB has every table and column, read in one query on PostgreSQL and Oracle:
    create_all and the per-table check below cost 76 round trips to an ODB that had them all,
    7.6 s of each server's start for an ODB 50 ms away (docs/benchmarks.md)."""
    tables = Base.metadata.sorted_tables
    with engine.connect() as conn:
        found = inspect(conn).get_multi_columns(filter_names=[t.name for t in tables])
    have = {name: {c["name"] for c in columns} for (_schema, name), columns in found.items()}
    return all(t.name in have and {c.name for c in t.columns} <= have[t.name] for t in tables)


def _add_missing_columns(engine: Engine) -> None:
    found = inspect(engine)
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name in have or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
            except SQLAlchemyError:  # another process starting at the same time added it
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise


def check_odb(engine: Engine) -> None:
    """Raise ODBError with one clear line unless the ODB answers. A SQLite file that does not
    exist is not made here: a server started on an empty one said its cluster did not exist."""
    database = engine.url.database
    if (
        engine.dialect.name == "sqlite"
        and database
        and database != ":memory:"
        and not os.path.exists(database)
    ):
        raise ODBUnavailable(
            f"ODB at {redact(str(engine.url))}: the SQLite file {database} does not exist (moved or deleted?)"
        )
    answer.clear()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1" if engine.dialect.name != "oracle" else "SELECT 1 FROM DUAL"))
    except SQLAlchemyError as e:
        reason = _silent(getattr(e, "orig", None)) or str(getattr(e, "orig", None) or e).splitlines()[0]
        raise ODBUnavailable(f"ODB at {redact(str(engine.url))} does not answer: {reason}") from None


E = TypeVar("E", bound=ODBError)


SILENT = "the ODB did not answer within"


def _silent(orig: object) -> str:
    """For an ODB that took the connection and did not answer (a hung PostgreSQL or pgbouncer):
    what it did not answer within; "" for any other error."""
    waited = answer.cut_here()
    if waited is not None and orig is not None:
        answer.clear()  # said once
        return (
            f"{SILENT} {waited:g} s (its connection was closed; a hung"
            f" PostgreSQL or pgbouncer, or a link where nothing comes back?) ({_said(orig)})"
        )
    if type(orig).__name__ == "ConnectionTimeout":  # psycopg's: no answer while connecting
        return (
            f"{SILENT} libpq's connect_timeout while being connected to"
            f" ({PG_NETWORK['connect_timeout']} s unless the ODB URL sets it) ({_said(orig)})"
        )
    return ""


def _said(orig: object) -> str:
    said = (str(orig).splitlines() or [""])[0]
    return f"{type(orig).__module__}.{type(orig).__name__}: {said}"


def reason(e: SQLAlchemyError) -> str:
    """One line of what went wrong with the ODB (zato.odb.epoch's errors)."""
    return _first_line(e)


def _first_line(e: SQLAlchemyError) -> str:
    """The database's own error, `(psycopg.errors.X) what`, as SQLAlchemy words it; without the
    note it puts first on an error of an autoflush (the whole of what was said before)."""
    orig = getattr(e, "orig", None)
    silent = _silent(orig)
    if silent:
        return silent
    if isinstance(orig, Exception):
        said = (str(orig).splitlines() or [""])[0]
        return f"({type(orig).__module__}.{type(orig).__name__}) {said}"
    return str(e).splitlines()[0]


class ODB:
    """An engine plus a session factory; one per process (created after fork)."""

    def __init__(self, url: str, busy_wait: float = SQLITE_BUSY_WAIT, wait_in_python: bool = False):
        """`busy_wait`: what a write to a SQLite ODB waits for another process's lock;
        `wait_in_python`: waited so that a gevent process serves its other requests meanwhile
        (make_engine)."""
        self.url, self.busy_wait = url, busy_wait
        self.engine = make_engine(url, busy_wait, wait_in_python)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        answer.clear()
        s = self._factory()
        committing = False
        try:
            yield s
            committing = True
            s.commit()
        except (OperationalError, InterfaceError) as e:  # the database's side, or the link to it
            with contextlib.suppress(SQLAlchemyError):
                s.rollback()
            error = self._error(ODBUnavailable, e)
            error.at_commit = committing
            raise error from e
        except SQLAlchemyError as e:
            s.rollback()
            raise self._error(ODBError, e) from e
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextlib.contextmanager
    def _change(self, cluster: str) -> Iterator[Session]:
        """A session for a change to `cluster`'s definitions (connections, channels, deployed
        modules, user config) that reads what it checks and then writes. On PostgreSQL it first
        waits for any other such change of the cluster, made by any server or CLI, to end: under
        READ COMMITTED two admins' changes at once each checked what the other had not yet
        committed, so both of two renames of one connection were answered 200 (the ODB kept
        one), a create of a name being created got a 503 with the database's UniqueViolation,
        an edit of one being deleted a 503 'expected to update 1 row(s); 0 were matched'."""
        with self.session() as s:
            if self.engine.dialect.name == "postgresql":
                # A change or a transaction that holds what this one needs and does not end (its
                # process stopped mid-change, a psql session left open, a table rewritten) gets
                # it refused after CHANGE_WAIT: before, the request waited as long as that did.
                s.execute(text(f"SET LOCAL lock_timeout = {int(CHANGE_WAIT * 1000)}"))
                key = zlib.crc32(cluster.encode("utf-8")) - 2**31  # an int4, as the function takes
                s.execute(
                    text("SELECT pg_advisory_xact_lock(CAST(:kind AS integer), CAST(:key AS integer))"),
                    {"kind": _CHANGES_LOCK, "key": key},
                )
            yield s

    @contextlib.contextmanager
    def change(self, cluster: str) -> Iterator[Session]:
        """_change, its error saying what became of the change when the ODB did not answer."""
        try:
            with self._change(cluster) as s:
                yield s
        except ODBUnavailable as e:
            if SILENT not in str(e) or "nothing was changed" in str(e):
                raise
            said = (
                "sent to be committed: whether the ODB made the change is unknown until it answers again"
                if e.at_commit
                else "nothing was changed"
            )
            error = ODBUnavailable(f"{e}: {said}")
            error.where, error.at_commit = e.where, e.at_commit
            raise error from e

    def _error(self, kind: type[E], e: SQLAlchemyError) -> E:
        said = _first_line(e)
        if getattr(getattr(e, "orig", None), "sqlstate", None) == LOCK_NOT_AVAILABLE:
            said = (
                f"what this change needs was held for over {CHANGE_WAIT:g} s by another change or"
                " transaction that has not ended (a server or CLI stopped mid-change, a transaction"
                f" left open on the ODB, a table being rewritten): nothing was changed; try again ({said})"
            )
        elif "database is locked" in said:  # SQLite waited its busy timeout for another writer (or not
            # at all: a change made at the same moment, which it tells apart without waiting)
            said += (
                "; another process holds the SQLite file's write lock (a sqlite3 shell or a backup in a"
                f" transaction, or a change made at the same moment), waited for {self.busy_wait:g} s at"
                " most: end it, then try again"
            )
        error = kind(f"ODB error: {said}")
        error.where = redact(str(self.engine.url))
        return error

    def dispose(self) -> None:
        self.engine.dispose()
