"""Outgoing SQL connections for services, as in Zato:

    with closing(self.outgoing.sql.get("CRM DB").session()) as session:      # Zato 3.2
        session.execute("select name from clients where id = :id", {"id": 1})

    conn = self.out.sql["CRM DB"]                                            # Zato 3.3 / 4.1
    rows = conn.execute("select * from clients where segment = :s", {"s": "A"})  # list of dicts
    row = conn.one(query, params)          # a dict; raises unless exactly one row
    row = conn.one_or_none(query, params)  # a dict or None; raises on more than one row

A query given as a string is SQL text with :named bind parameters, as Zato's examples write it
(SQLAlchemy 2 would refuse the bare string; `text(...)` and SQLAlchemy's own statements work
as well). A definition (kind sql-outgoing: url without the password, password, pool_size) lives
in the ODB. Each worker keeps one SQLAlchemy engine (its connection pool) per connection and
makes a new one when the definition changes.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from contextlib import closing
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import CursorResult, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import TextClause

from zato.common.errors import ConnectorError
from zato.odb.engine import PG_NETWORK, normalize_url
from zato.service.call_scope import at_end
from zato.service.outgoing import PerWorker

logger = logging.getLogger("zato.outgoing")


class Record(tuple):
    """A row of an SQL text query as Zato's examples read it (SQLAlchemy 1.3's RowProxy, which
    Zato 3.2 ships): by position (`row[0]`), by column name (`row['name']`, as Zato 4.1's SQL
    docs do), as an attribute (`row.name`), and as a dict (`dict(row)`, `row.items()`).
    SQLAlchemy 2's own Row takes no column name in brackets (TypeError: tuple indices must be
    integers or slices, not str). Like that Row it is a tuple of the values, with `_fields`,
    `_mapping` and `_asdict()`. `_fields` is set on a subclass made for each result."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _index(self, name: str, error: type[LookupError] | type[AttributeError]) -> int:
        try:
            return self._fields.index(name)
        except ValueError:
            raise error(f"no column named {name!r} in this row (it has: {', '.join(self._fields)})") from None

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            key = self._index(key, KeyError)
        return tuple.__getitem__(self, key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and the like look for these
            raise AttributeError(name)
        return tuple.__getitem__(self, self._index(name, AttributeError))

    def keys(self) -> list[str]:
        return list(self._fields)

    def values(self) -> list[Any]:
        return list(self)

    def items(self) -> list[tuple[str, Any]]:
        return list(zip(self._fields, self, strict=True))

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    @property
    def _mapping(self) -> dict[str, Any]:
        return self._asdict()


class Records:
    """The result of a text query in a ZatoSession: SQLAlchemy's CursorResult whose rows come
    as Records (iterating, fetchone/fetchmany/fetchall, first/one/one_or_none/all); everything
    else (scalar, scalars, mappings, rowcount, keys, close...) is the result's own."""

    def __init__(self, result: CursorResult):
        self._result = result
        fields = tuple(result.keys())
        self._record = type("Record", (Record,), {"__slots__": (), "_fields": fields})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    # Looked up on the type, never through __getattr__: `with session.execute(...) as result:`
    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self._result.close()

    def _one(self, row: Any) -> Any:
        return None if row is None else self._record(row)

    def _many(self, rows: Any) -> list[Record]:
        return [self._record(row) for row in rows]

    def __iter__(self) -> Any:
        return (self._record(row) for row in self._result)

    def __next__(self) -> Record:
        return self._record(next(self._result))

    def fetchone(self) -> Record | None:
        return self._one(self._result.fetchone())

    def fetchmany(self, size: int | None = None) -> list[Record]:
        return self._many(self._result.fetchmany(size))

    def fetchall(self) -> list[Record]:
        return self._many(self._result.fetchall())

    all = fetchall

    def first(self) -> Record | None:
        return self._one(self._result.first())

    def one(self) -> Record:
        return self._record(self._result.one())

    def one_or_none(self) -> Record | None:
        return self._one(self._result.one_or_none())


class ZatoSession(Session):
    """A Session whose execute() takes SQL as a string too, as Zato 3.2's examples pass it, and
    gives the rows of a text query as Records: `row['name']` and `dict(row)` work as in Zato."""

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if isinstance(statement, str):
            statement = text(statement)
        result = super().execute(statement, *args, **kwargs)
        if isinstance(statement, TextClause) and isinstance(result, CursorResult) and result.returns_rows:
            return Records(result)
        return result


def engine_of(name: str, d: dict) -> Engine:
    try:
        url = make_url(normalize_url(d["url"]))
        if d.get("password"):
            url = url.set(password=d["password"])
        if url.get_backend_name() == "sqlite":
            return create_engine(url)
        connect_args = {}
        if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
            # as the ODB's (zato.odb.engine.PG_NETWORK), unless the URL sets them: without a
            # connect_timeout, a database that takes the connection and never answers (a
            # PostgreSQL hung, a proxy paused) held every call to it, and its request, for ever
            connect_args = {k: v for k, v in PG_NETWORK.items() if k not in url.query}
        return create_engine(
            url, pool_size=d.get("pool_size") or 5, pool_pre_ping=True, connect_args=connect_args
        )
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise ConnectorError(f"outgoing SQL {name!r}: cannot use its URL: {e}") from None


def _close_left(conn: str, ref: weakref.ref, service: str) -> None:
    """At the end of the call that opened it: a session the service did not close is closed,
    its transaction rolled back and its database connection back in the pool. Before, one left
    in a transaction (a service that raised, or forgot `with closing(...)`) stayed 'idle in
    transaction' until Python's garbage collector found it, holding its locks: every later call
    that touched those rows waited for ever, and the pool ran dry (QueuePool limit ... reached)."""
    session = ref()
    if session is None:
        return
    if session.in_transaction():
        unsaid = _LEFT_SAID.due((service, conn))
        if unsaid is not None:  # a service that never closes its sessions: not a line a call
            logger.warning(
                "service %s left a session of outgoing SQL connection %r in a transaction: rolled back"
                " and closed at the end of its call (commit what it wrote, and close it: with"
                " closing(...)); said once a minute at most, %d more time(s) since the last line",
                service,
                conn,
                unsaid,
            )
    session.close()


class _OncePerKey:
    """At most one line a minute per key (a service and its connection), with how many came
    meanwhile; the oldest key forgotten past MAX_KEYS."""

    MAX_KEYS = 256

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._said: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (said at, unsaid since)

    def due(self, key: tuple[str, str]) -> int | None:
        now = time.monotonic()
        said_at, unsaid = self._said.get(key, (-self.every, 0))
        if now - said_at < self.every:
            self._said[key] = (said_at, unsaid + 1)
            return None
        if key not in self._said and len(self._said) >= self.MAX_KEYS:
            del self._said[min(self._said, key=lambda k: self._said[k][0])]
        self._said[key] = (now, 0)
        return unsaid


_LEFT_SAID = _OncePerKey()


class SQLConnection:
    """What `self.outgoing.sql.get(name)` (also `self.out.sql[name]`) is: `.session()` gives a
    new SQLAlchemy Session; `.execute`, `.one` and `.one_or_none` run one query in a session
    of their own and give rows as dicts."""

    def __init__(self, name: str, engine: Engine):
        self.name = name
        self._sessions = sessionmaker(bind=engine, class_=ZatoSession)
        self._dispose = engine.dispose

    def session(self) -> Session:
        session = self._sessions()
        at_end(functools.partial(_close_left, self.name, weakref.ref(session)))
        return session

    def execute(self, query: Any, params: dict | None = None) -> list[dict]:
        """Every row as a dict (an empty list for a statement that returns none); committed."""
        with closing(self.session()) as session:
            result = session.execute(query, params or {})
            returns_rows = getattr(result, "returns_rows", True)  # UPDATE: none
            rows = [dict(row) for row in result.mappings()] if returns_rows else []
            session.commit()
        return rows

    def one(self, query: Any, params: dict | None = None) -> dict:
        """The one row as a dict; sqlalchemy.exc.NoResultFound or MultipleResultsFound else."""
        with closing(self.session()) as session:
            return dict(session.execute(query, params or {}).mappings().one())

    def one_or_none(self, query: Any, params: dict | None = None) -> dict | None:
        """The row as a dict, None without one; MultipleResultsFound on more than one."""
        with closing(self.session()) as session:
            row = session.execute(query, params or {}).mappings().one_or_none()
        return None if row is None else dict(row)


class SQL(PerWorker):
    """`self.outgoing.sql`: `.get(name)` or `[name]`, a SQLConnection."""

    def make(self, name: str, definition: dict) -> SQLConnection:
        return SQLConnection(name, engine_of(name, definition))

    def close(self, conn: Any) -> None:
        conn._dispose()
