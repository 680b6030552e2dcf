"""The connector supervisor as a real process: it runs exactly the connectors the ODB defines,
restarts only the one whose definition changed, and leaves when its parent dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.ha.supervised import SupervisedCluster
from tests.support import free_port, wait_for
from zato.common.pidfile import pid_alive
from zato.connector import definitions
from zato.coord.lease import read_holder, read_supervisor_status
from zato.odb import api as odb_api
from zato.odb.engine import ODB, create_schema


def with_odb(size: int) -> Iterator[SupervisedCluster]:
    """`size` supervisors of a cluster of their own, with a SQLite ODB (c.odb)."""
    c = SupervisedCluster(size=size)
    odb = ODB(f"sqlite:///{c.root}/odb.db")
    create_schema(odb.engine)
    odb_api.ensure_cluster(odb, c.cluster)
    c.odb = odb
    yield c
    c.close()
    odb.dispose()


@pytest.fixture
def one():
    yield from with_odb(1)


def children(c: SupervisedCluster) -> dict[str, dict]:
    status = read_supervisor_status(c.client, c.cluster) or {}
    return {k["name"]: k for k in status.get("children", [])}


def running(c: SupervisedCluster, names: set[str]) -> dict[str, dict] | None:
    kids = children(c)
    ok = set(kids) == names and all(k["state"] == "RUNNING" and k["pid"] for k in kids.values())
    return kids if ok else None


def zmq_channel(c: SupervisedCluster, name: str) -> None:
    values = {"name": name, "address": f"tcp://127.0.0.1:{free_port()}", "service": "zato.ping"}
    definitions.create(c.odb, c.client, c.cluster, "zmq-channel", values)


def test_connectors_follow_their_definitions_and_only_changed_ones_restart(one) -> None:
    zmq_channel(one, "a")
    zmq_channel(one, "b")
    one.start("server1")
    kids = wait_for(
        lambda: running(one, {"zmq-channel:a", "zmq-channel:b"}), timeout=30, what="a and b running"
    )
    pid_a, pid_b = kids["zmq-channel:a"]["pid"], kids["zmq-channel:b"]["pid"]
    definitions.edit(
        one.odb, one.client, one.cluster, "zmq-channel", "b", {"address": f"tcp://127.0.0.1:{free_port()}"}
    )

    def b_restarted() -> dict | None:
        kids = running(one, {"zmq-channel:a", "zmq-channel:b"})
        return kids if kids and kids["zmq-channel:b"]["pid"] != pid_b else None

    kids = wait_for(b_restarted, timeout=30, what="b restarted with its new address")
    assert kids["zmq-channel:a"]["pid"] == pid_a  # untouched
    definitions.delete(one.odb, one.client, one.cluster, "zmq-channel", "a")
    kids = wait_for(lambda: running(one, {"zmq-channel:b"}), timeout=30, what="a stopped")
    wait_for(lambda: not pid_alive(pid_a), timeout=10, what="a's process to be gone")
    log = one.log("server1")
    assert "child zmq-channel:a RUNNING->STOPPING" in log and "child zmq-channel:b STOPPED->STARTING" in log


def test_the_supervisor_leaves_cleanly_when_its_parent_dies(one) -> None:
    # A shell stands in for the server's arbiter.
    argv = [sys.executable, "-m", "zato.connector.supervisor", one.dirs["server1"]]
    parent = subprocess.Popen(
        ["sh", "-c", '"$@" & echo $!; wait', "sh", *argv], stdout=subprocess.PIPE, text=True
    )
    supervisor = int(parent.stdout.readline())
    try:
        wait_for(
            lambda: read_holder(one.client, one.cluster), timeout=30, what="the supervisor to take the lease"
        )
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not pid_alive(supervisor), timeout=30, what="the orphan supervisor to exit")
        log = one.log("server1")
        assert f"WARNING {supervisor} zato.supervisor: stopping: parent process {parent.pid} is gone" in log
        assert "released lease epoch 1" in log and "left cluster" in log
        assert read_holder(one.client, one.cluster) is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGKILL)
