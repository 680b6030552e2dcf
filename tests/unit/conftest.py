"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from zato.odb.engine import ODB, create_schema


@pytest.fixture
def odb(tmp_path):
    """An empty ODB with the schema, in a SQLite file."""
    db = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
    create_schema(db.engine)
    yield db
    db.dispose()
