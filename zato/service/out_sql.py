"""Outgoing SQL connections for services, as in Zato:

    with closing(self.outgoing.sql.get("CRM DB").session()) as session:
        session.execute(text("select 1"))

A definition (kind sql-outgoing: url without the password, password, pool_size) lives in
the ODB. Each worker keeps one SQLAlchemy engine (its connection pool) per connection and
makes a new one when the definition changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from zato.common.errors import ConnectorError
from zato.odb.engine import normalize_url
from zato.service.outgoing import PerWorker


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
    """What `self.outgoing.sql.get(name)` is: `.session()` gives a new SQLAlchemy Session."""

    def __init__(self, name: str, engine: Engine):
        self.name = name
        self._sessions = sessionmaker(bind=engine)
        self._dispose = engine.dispose

    def session(self) -> Session:
        return self._sessions()


class SQL(PerWorker):
    """`self.outgoing.sql`: `.get(name).session()`."""

    def make(self, name: str, definition: dict) -> SQLConnection:
        return SQLConnection(name, engine_of(name, definition))

    def close(self, conn: Any) -> None:
        conn._dispose()
