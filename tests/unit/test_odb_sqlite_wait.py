"""zato.odb.sqlite_wait: a SQLite ODB's busy wait done in Python (for the gevent dashboard)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from zato.common.errors import ODBError
from zato.odb import api
from zato.odb.engine import ODB, create_schema


def test_a_write_waits_for_the_lock_and_goes_on_once_it_is_let_go(tmp_path):
    db = ODB(f"sqlite:///{tmp_path}/odb.db", busy_wait=30, wait_in_python=True)
    create_schema(db.engine)
    shell = sqlite3.connect(tmp_path / "odb.db", isolation_level=None, check_same_thread=False)
    shell.execute("BEGIN IMMEDIATE")
    let_go = threading.Timer(0.3, lambda: shell.execute("ROLLBACK"))
    let_go.start()
    try:
        assert api.ensure_cluster(db, "waited") is True  # made once the shell let go, not refused
    finally:
        let_go.join()
        shell.close()
    assert api.ensure_cluster(db, "waited") is False  # there already
    db.dispose()


def test_a_lock_held_past_the_busy_wait_is_refused_saying_so(tmp_path):
    db = ODB(f"sqlite:///{tmp_path}/odb.db", busy_wait=0.3, wait_in_python=True)
    create_schema(db.engine)
    shell = sqlite3.connect(tmp_path / "odb.db", isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ODBError) as caught:
            api.ensure_cluster(db, "refused")
    finally:
        shell.execute("ROLLBACK")
        shell.close()
        db.dispose()
    said = str(caught.value)
    assert "database is locked; another process holds the SQLite file's write lock" in said, said
    assert "waited for 0.3 s at most: end it, then try again" in said, said


def test_a_transaction_that_read_before_another_committed_is_not_tried_again(tmp_path):
    """SQLITE_BUSY_SNAPSHOT (WAL): waiting cannot mend it, so it fails at once, as SQLite's own
    wait has it, instead of trying for the whole busy wait."""
    from zato.odb.sqlite_wait import WaitingConnection

    path = tmp_path / "snap.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (x)")
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, factory=WaitingConnection)
    conn.busy_wait = 3600.0  # an hour: were it tried again, the test would not end
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("SELECT * FROM t")
    other.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        cur.execute("INSERT INTO t VALUES (2)")
    conn.close()
    other.close()
