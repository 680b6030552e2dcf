"""The connector fork server ("zygote") as real processes: connectors forked from it work,
log to the server log and hold none of its sockets; they die with the supervisor; a killed
zygote is started again; a child's exit status still drives the state machine."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import time

import pytest

from tests.ha.cluster_view import child_pids
from tests.ha.supervised import SupervisedCluster
from tests.integration import test_lease_supervisor as lease_tests
from tests.support import free_port, wait_for
from zato.common.errors import EXIT_CONFIG
from zato.common.pidfile import pid_alive
from zato.connector import definitions
from zato.coord.lease import read_supervisor_status

TITLE = b"zato-connector-zygote: server1"
one = lease_tests.one  # the fixture: one supervisor of its own cluster, with an ODB


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def zygote_of(c: SupervisedCluster, exclude: int = 0) -> int | None:
    """The live zygote under server1's supervisor, once it is ready to fork."""
    log = c.log("server1")
    for pid in child_pids(c.procs["server1"].pid):
        ready = f"connector zygote ready (pid {pid})" in log
        if pid != exclude and ready and TITLE in cmdline(pid) and pid_alive(pid):
            return pid
    return None


def connector(c: SupervisedCluster, name: str, state: str = "RUNNING") -> dict | None:
    status = read_supervisor_status(c.client, c.cluster) or {}
    kid = next((k for k in status.get("children", []) if k["name"] == f"zmq-channel:{name}"), None)
    return kid if kid and kid["state"] == state and (kid["pid"] or state != "RUNNING") else None


def zmq_channel(c: SupervisedCluster, name: str) -> int:
    port = free_port()
    values = {"name": name, "address": f"tcp://127.0.0.1:{port}", "service": "zato.ping"}
    definitions.create(c.odb, c.client, c.cluster, "zmq-channel", values)
    return port


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def started_with_zygote(c: SupervisedCluster) -> int:
    c.start("server1")
    return wait_for(lambda: zygote_of(c), timeout=30, what="the zygote to be ready")


def test_a_connector_forked_by_the_zygote_serves_and_logs_to_the_server_log(one) -> None:
    zygote = started_with_zygote(one)
    port = zmq_channel(one, "orders")
    kid = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")
    assert kid["pid"] in child_pids(zygote)  # forked, not started from scratch
    wait_for(lambda: accepts(port), timeout=30, what="the connector's ZeroMQ port")
    assert b"zato-connector: zmq-channel orders" in cmdline(kid["pid"])
    log = wait_for(
        lambda: "connector zmq-channel 'orders' started" in one.log("server1") and one.log("server1"),
        timeout=30,
        what="the connector's start in the server log",
    )
    assert f"connector zmq-channel 'orders' started (pid {kid['pid']}" in log
    # The zygote's end of its socketpair with the supervisor stayed in the zygote.
    assert not socket_inodes(zygote) & socket_inodes(kid["pid"])


def test_connectors_and_the_zygote_die_with_the_supervisor(one) -> None:
    zygote = started_with_zygote(one)
    zmq_channel(one, "orders")
    kid = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")
    assert kid["pid"] in child_pids(zygote)
    one.signal("server1", signal.SIGKILL)
    one.procs["server1"].wait(10)
    wait_for(lambda: not pid_alive(zygote), timeout=10, what="the zygote to die with its supervisor")
    wait_for(lambda: not pid_alive(kid["pid"]), timeout=10, what="the connector to die with the supervisor")


def test_a_killed_zygote_is_started_again_and_connectors_run_again(one) -> None:
    zygote = started_with_zygote(one)
    port = zmq_channel(one, "orders")
    first = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")["pid"]
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: not pid_alive(first), timeout=10, what="the connector to die with the zygote")
    again = wait_for(
        lambda: (k := connector(one, "orders")) and k["pid"] != first and k,
        timeout=30,
        what="the connector running again",
    )
    wait_for(lambda: accepts(port), timeout=30, what="the connector's ZeroMQ port again")
    assert again["restarts"] >= 1
    second = wait_for(lambda: zygote_of(one, exclude=zygote), timeout=30, what="a new zygote")
    log = one.log("server1")
    assert f"connector zygote (pid {zygote}) lost" in log and "connector zygote restarted" in log
    # The next connector comes from the new zygote.
    zmq_channel(one, "more")
    kid = wait_for(lambda: connector(one, "more"), timeout=30, what="the second connector running")
    assert kid["pid"] in child_pids(second)


def test_a_bad_configuration_exit_of_a_forked_connector_is_fatal(one) -> None:
    # Connectors run on the supervisor's settings (server.conf is not read again), so the bad
    # configuration here is one a forked connector finds itself: an IBM MQ channel on a host
    # without the IBM MQ client (zato.connector.run exits EXIT_CONFIG).
    if importlib.util.find_spec("ibmmq") or importlib.util.find_spec("pymqi"):
        pytest.skip("the IBM MQ client is installed here")
    zygote = started_with_zygote(one)
    values = {"name": "qm", "queue_manager": "QM1", "channel": "DEV.APP.SVRCONN", "conn_name": "127.0.0.1(1)"}
    definitions.create(one.odb, one.client, one.cluster, "ibm-mq-def", values)
    values = {"name": "in", "def": "qm", "queue": "DEV.QUEUE.1", "service": "zato.ping"}
    definitions.create(one.odb, one.client, one.cluster, "ibm-mq-channel", values)
    kid = wait_for(lambda: ibmmq_channel(one, "FATAL"), timeout=30, what="the connector to be FATAL")
    assert kid["last_error"] == f"exited with code {EXIT_CONFIG}" and kid["restarts"] == 0
    log = one.log("server1")
    assert "bad configuration: not restarting until it changes" in log
    assert "connector ibm-mq-channel 'in' cannot start" in log and "zato-ha[ibmmq]" in log
    assert zygote_of(one) == zygote  # forked by the zygote, which is still there


def test_a_connector_runs_on_the_settings_its_server_started_with(one) -> None:
    """server.conf edited under a running server (here into a file that does not even load):
    a connector started after still runs, on the settings the supervisor handed down; none of
    its secrets is on its command line."""
    zygote = started_with_zygote(one)
    conf = os.path.join(one.dirs["server1"], "config", "server.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("heartbeat = 0.5", "heartbeat = 5.0"))  # refused: over the member TTL
    port = zmq_channel(one, "orders")
    kid = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")
    assert kid["pid"] in child_pids(zygote) and kid["restarts"] == 0
    wait_for(lambda: accepts(port), timeout=30, what="the connector's ZeroMQ port")
    secret = "s3cret-value"  # [auth] cluster_secret of tests.ha.supervised
    assert secret in text and secret.encode() not in cmdline(kid["pid"]) and secret not in one.log("server1")


def ibmmq_channel(c: SupervisedCluster, state: str) -> dict | None:
    status = read_supervisor_status(c.client, c.cluster) or {}
    kid = next((k for k in status.get("children", []) if k["name"] == "ibm-mq-channel:in"), None)
    return kid if kid and kid["state"] == state else None


def maps_sqlalchemy(pid: int) -> bool:
    """SQLAlchemy's compiled modules are mapped: the process has imported it."""
    with open(f"/proc/{pid}/maps") as f:
        return "/sqlalchemy/" in f.read()


def test_a_forked_connector_runs_its_edited_definition_without_sqlalchemy(one) -> None:
    zygote = started_with_zygote(one)
    port = zmq_channel(one, "orders")
    first = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")
    wait_for(lambda: accepts(port), timeout=30, what="the connector's ZeroMQ port")
    assert first["pid"] in child_pids(zygote)
    # The supervisor reads the definitions from the ODB (through SQLAlchemy) and hands each
    # connector its own; neither the zygote nor the connector imports SQLAlchemy.
    assert maps_sqlalchemy(one.procs["server1"].pid)
    assert not maps_sqlalchemy(zygote) and not maps_sqlalchemy(first["pid"])
    # An edited definition reaches the restarted connector.
    moved = free_port()
    values = {"address": f"tcp://127.0.0.1:{moved}"}
    definitions.edit(one.odb, one.client, one.cluster, "zmq-channel", "orders", values)
    again = wait_for(
        lambda: (k := connector(one, "orders")) and k["pid"] != first["pid"] and k,
        timeout=30,
        what="the connector restarted",
    )
    wait_for(lambda: accepts(moved), timeout=30, what="the connector on its new address")
    wait_for(lambda: not accepts(port), timeout=30, what="the old address to be closed")
    assert again["pid"] in child_pids(zygote) and not maps_sqlalchemy(again["pid"])


def test_a_hung_connector_is_killed_and_started_again(one) -> None:
    """A connector that is alive but does nothing (SIGSTOP here; a deadlock, a client library
    stuck in a call) was RUNNING for ever: only exits were restarted. Now one whose progress
    file is not touched for [main] connector_hang_after seconds is killed and started again."""
    conf = os.path.join(one.dirs["server1"], "config", "server.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("[main]\n", "[main]\nconnector_hang_after = 3\n", 1))
    started_with_zygote(one)
    port = zmq_channel(one, "orders")
    kid = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")
    wait_for(lambda: accepts(port), timeout=30, what="the connector's ZeroMQ port")
    time.sleep(4)  # longer than connector_hang_after: a working connector is left alone
    assert connector(one, "orders")["pid"] == kid["pid"]
    os.kill(kid["pid"], signal.SIGSTOP)
    again = wait_for(
        lambda: (k := connector(one, "orders")) and k["pid"] != kid["pid"] and k,
        timeout=30,
        what="the hung connector replaced",
    )
    assert again["restarts"] == 1
    wait_for(lambda: not pid_alive(kid["pid"]), timeout=10, what="the hung one gone")
    log = one.log("server1")
    assert f"child zmq-channel:orders (pid {kid['pid']}) made no progress for 3 s" in log
    wait_for(lambda: accepts(port), timeout=30, what="the new connector's ZeroMQ port")
