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

from contextlib import closing
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import CursorResult, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from zato.common.errors import ConnectorError
from zato.odb.engine import normalize_url
from zato.service.outgoing import PerWorker


class ZatoSession(Session):
    """A Session whose execute() takes SQL as a string too, as Zato 3.2's examples pass it."""

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if isinstance(statement, str):
            statement = text(statement)
        return super().execute(statement, *args, **kwargs)


def engine_of(name: str, d: dict) -> Engine:
    try:
        url = make_url(normalize_url(d["url"]))
        if d.get("password"):
            url = url.set(password=d["password"])
        if url.get_backend_name() == "sqlite":
            return create_engine(url)
        return create_engine(url, pool_size=d.get("pool_size") or 5, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise ConnectorError(f"outgoing SQL {name!r}: cannot use its URL: {e}") from None


class SQLConnection:
    """What `self.outgoing.sql.get(name)` (also `self.out.sql[name]`) is: `.session()` gives a
    new SQLAlchemy Session; `.execute`, `.one` and `.one_or_none` run one query in a session
    of their own and give rows as dicts."""

    def __init__(self, name: str, engine: Engine):
        self.name = name
        self._sessions = sessionmaker(bind=engine, class_=ZatoSession)
        self._dispose = engine.dispose

    def session(self) -> Session:
        return self._sessions()

    def execute(self, query: Any, params: dict | None = None) -> list[dict]:
        """Every row as a dict (an empty list for a statement that returns none); committed."""
        with closing(self.session()) as session:
            result = session.execute(query, params or {})
            returns_rows = not isinstance(result, CursorResult) or result.returns_rows  # UPDATE: none
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
