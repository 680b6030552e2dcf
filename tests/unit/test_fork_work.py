"""zato.server.fork.start_child / odb_work: the arbiter's work with a networked ODB runs in a
child forked for it (so no database driver is imported into the arbiter, and from it into
the gevent workers before their monkey-patching); its result or error comes back as if it had
run in the arbiter. Real forks, real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.support import PG_URL
from zato.common.errors import ODBError, ZatoError
from zato.server.fork import odb_work, start_child


def in_child(work, what: str):  # noqa: ANN001, ANN201
    return start_child(work, what).result()


class Odd(Exception):
    def __init__(self, a, b):  # noqa: ANN001 - does not unpickle: its args are not (a, b)
        super().__init__(f"{a}/{b}")


def test_the_result_and_the_error_come_back_from_the_child():
    assert in_child(lambda: ("done", os.getpid()), "x")[1] != os.getpid()
    with pytest.raises(ODBError, match="ODB at x does not answer"):
        in_child(lambda: (_ for _ in ()).throw(ODBError("ODB at x does not answer")), "x")

    def odd():
        raise Odd(1, 2)

    with pytest.raises(ZatoError, match="1/2"):  # its text, when the exception itself cannot travel
        in_child(odd, "x")
    with pytest.raises(ZatoError, match="checking the ODB: the process forked for it ended without"):
        in_child(lambda: os._exit(3), "checking the ODB")


def test_odb_work_forks_for_a_networked_odb_and_not_for_sqlite(tmp_path):
    assert odb_work(f"sqlite:///{tmp_path}/odb.db", os.getpid, "x") == os.getpid()
    assert odb_work(PG_URL, os.getpid, "x") != os.getpid()


def test_the_arbiter_side_checks_leave_no_database_driver_in_the_process(tmp_path):
    """What zato.server.prechecks does with a PostgreSQL ODB, in a fresh interpreter: psycopg
    is imported in the child that did the work, never in the process itself."""
    code = textwrap.dedent(f"""
        import sys
        from zato.odb.engine import check_odb, create_schema, make_engine
        from zato.server.fork import odb_work

        def work():
            engine = make_engine({PG_URL!r})
            check_odb(engine)
            create_schema(engine)
            engine.dispose()
            return "psycopg" in sys.modules

        print(odb_work({PG_URL!r}, work, "checking the ODB"), "psycopg" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("work", [lambda: "done", lambda: os._exit(3)], ids=["answer", "no-answer"])
def test_the_answer_is_read_while_a_process_forked_meanwhile_holds_the_pipe(monkeypatch, work):
    """gunicorn forks a worker from its own thread while the arbiter's ticker thread runs
    odb_work: that worker holds a copy of the answer pipe's write end, so reading until EOF
    would wait as long as the worker lives. Here the pipe is made, then a sleeper forked."""
    real_pipe, sleepers = os.pipe, []

    def pipe_and_fork():  # noqa: ANN202
        r, w = real_pipe()
        pid = os.fork()
        if pid == 0:  # holds every fd of the parent's, as a forked gunicorn worker does
            time.sleep(60)
            os._exit(0)
        sleepers.append(pid)
        return r, w

    monkeypatch.setattr(os, "pipe", pipe_and_fork)
    pending = start_child(work, "storing module m")
    monkeypatch.setattr(os, "pipe", real_pipe)
    got: list = []

    def read() -> None:
        try:
            got.append(pending.result())
        except ZatoError as e:
            got.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        reader.join(20)
        assert not reader.is_alive(), "still waiting for EOF"
        if got[0] != "done":
            assert "storing module m: the process forked for it ended without an answer" in str(got[0])
    finally:
        for pid in sleepers:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
