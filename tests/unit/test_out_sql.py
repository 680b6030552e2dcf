"""Rows of an outgoing SQL connection's text queries, as Zato's examples read them (an
in-memory SQLite database: the real SQLAlchemy engine and session, no server)."""

from __future__ import annotations

import copy
from contextlib import closing

import pytest
from sqlalchemy import create_engine, text

from zato.service.out_sql import SQLConnection
from zato.service.sio import io_of, render_output

QUERY = "SELECT 1 AS client_id, 'John Doe' AS name UNION ALL SELECT 2, 'Jane Roe' ORDER BY client_id"


@pytest.fixture
def conn() -> SQLConnection:
    return SQLConnection("t", create_engine("sqlite://"))


def test_a_row_by_column_name_position_attribute_and_as_a_dict(conn: SQLConnection) -> None:
    with closing(conn.session()) as session:
        rows = list(session.execute(QUERY))
    first = rows[0]
    assert (first["name"], first[0], first.name, first[-1]) == ("John Doe", 1, "John Doe", "John Doe")
    assert dict(first) == first._asdict() == first._mapping == {"client_id": 1, "name": "John Doe"}
    assert first.items() == [("client_id", 1), ("name", "John Doe")] and first.keys() == ["client_id", "name"]
    assert first == (1, "John Doe") and tuple(rows[1]) == (2, "Jane Roe")  # still a tuple of the values
    assert copy.deepcopy(first) == first
    with pytest.raises(KeyError, match=r"no column named 'nmae' in this row \(it has: client_id, name\)"):
        first["nmae"]
    with pytest.raises(AttributeError, match="no column named 'nmae'"):
        first.nmae  # noqa: B018


def test_every_way_of_fetching_gives_such_rows(conn: SQLConnection) -> None:
    with closing(conn.session()) as session:
        assert session.execute(QUERY).fetchone()["name"] == "John Doe"
        assert [r["client_id"] for r in session.execute(QUERY).fetchall()] == [1, 2]
        assert [r["client_id"] for r in session.execute(QUERY).all()] == [1, 2]
        assert [r["client_id"] for r in session.execute(QUERY).fetchmany(1)] == [1]
        assert session.execute(QUERY).first()["name"] == "John Doe"
        assert session.execute(text("SELECT 7 AS n")).one()["n"] == 7
        assert session.execute("SELECT 7 AS n WHERE 0").one_or_none() is None
        # SQLAlchemy's own calls on the result are as they were
        assert session.execute(QUERY).scalar() == 1
        assert session.execute(QUERY).mappings().first() == {"client_id": 1, "name": "John Doe"}
        assert session.execute(QUERY).keys() == ["client_id", "name"]


def test_such_a_row_is_one_record_of_a_declared_output(conn: SQLConnection) -> None:
    with closing(conn.session()) as session:
        row = session.execute(QUERY).first()

    class Clients:
        class SimpleIO:
            output_required = ("client_id", "name")

    assert render_output(io_of(Clients), row, "t.sql") == {"client_id": 1, "name": "John Doe"}


def test_statements_without_rows_and_the_connections_own_calls(conn: SQLConnection) -> None:
    assert conn.execute("CREATE TABLE c (client_id INT, name TEXT)") == []
    assert conn.execute("INSERT INTO c VALUES (:i, :n)", {"i": 3, "n": "Max"}) == []
    assert conn.execute("SELECT * FROM c") == [{"client_id": 3, "name": "Max"}]
    assert conn.one("SELECT * FROM c") == {"client_id": 3, "name": "Max"}


def test_a_text_querys_result_is_a_context_manager_as_sqlalchemys(conn: SQLConnection) -> None:
    """Before, `with session.execute(...) as result:` (SQLAlchemy's own results allow it) was
    TypeError: 'Records' object does not support the context manager protocol."""
    with closing(conn.session()) as session:
        with session.execute(QUERY) as result:
            rows = result.fetchall()
        assert [r["name"] for r in rows] == ["John Doe", "Jane Roe"]
        assert result.closed
