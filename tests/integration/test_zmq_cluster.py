"""ZeroMQ channels in a real quickstart cluster: what a channel had received survives an edit,
a graceful stop of the holder and a connector SIGKILLed while it runs what was handed over;
a deleted channel's hand-off goes with it; a service slower than the channel's timeout is a
failed attempt; bind problems are refused up front, waited out, or shown with their reason in
`zato cluster status`."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket

import pytest
import redis
import zmq

from tests.conn_support import services_source
from tests.support import REDIS_URL, free_port, wait_for, zato
from zato.common.pidfile import pid_alive
from zato.coord import connector_stats
from zato.coord.keys import Keys
from zato.coord.lease import read_supervisor_status

MESSAGES = 300
# A failing call of the killed-connector test takes this long: its five attempts (the retry
# delays between them about 4 s) take about 30 s, the time the test has to kill the connector
# once it saw one fail, a few seconds on a quiet machine.
FAIL_AFTER_MS = 5000


def _client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def _status(cluster: str) -> dict:
    return read_supervisor_status(_client(), cluster) or {}


def _child(cluster: str, name: str) -> dict:
    return {c["name"]: c for c in _status(cluster).get("children", [])}.get(name, {})


def _running(cluster: str, name: str) -> dict | None:
    child = _child(cluster, name)
    return child if str(child.get("state")).lower() == "running" else None


def _received(qs) -> collections.Counter:
    """How often each message number reached the service (conn.record writes them to Redis)."""
    raws = _client().lrange(f"zato:{qs.cluster}:test:received", 0, -1)
    return collections.Counter(json.loads(r)["n"] for r in raws)


@pytest.fixture(scope="module")
def qs(module_quickstart, tmp_path_factory):
    cluster = module_quickstart(servers=2, lb=False)
    cluster.start()
    module = tmp_path_factory.mktemp("mod") / "conn_services.py"
    module.write_text(services_source())
    zato("deploy", cluster.path, str(module))
    return cluster


def _slow_channel(
    qs, name: str, messages: int = MESSAGES, in_flight: int = 2, **extra
) -> tuple[str, zmq.Context, zmq.Socket]:
    """The field report's channel: a service taking 0.2 s, --max-in-flight 2, bound; a pyzmq
    PUSH connected to it that sent MESSAGES JSON messages (with `extra` in each); once some
    arrived."""
    _client().delete(f"zato:{qs.cluster}:test:received")
    address = f"tcp://127.0.0.1:{free_port()}"
    create = ("conn", "create", "zmq-channel", qs.path, "--name", name, "--address", address)
    zato(*create, "--service", "conn.record", "--max-in-flight", str(in_flight))
    wait_for(lambda: _running(qs.cluster, f"zmq-channel:{name}"), timeout=60, what=f"{name} running")
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, 60000)
    push.connect(address)
    for i in range(messages):
        push.send(json.dumps({"n": i, "wait_ms": 200, **extra}).encode())
    wait_for(lambda: sum(_received(qs).values()) >= 10, timeout=60, what="the first messages at the service")
    return address, zctx, push


def _all_arrived(qs, what: str, messages: int = MESSAGES) -> collections.Counter:
    def done() -> collections.Counter | None:
        counts = _received(qs)
        return counts if set(counts) == set(range(messages)) else None

    try:
        counts = wait_for(done, timeout=180, interval=0.5, what=what)
    except AssertionError:
        counts = _received(qs)
        raise AssertionError(
            f"{what}: {messages - len(counts)} of {messages} messages never arrived"
        ) from None
    duplicates = sum(counts.values()) - messages
    print(f"{what}: {messages} of {messages} arrived, {duplicates} duplicates")
    return counts


def _stats(qs, name: str) -> dict:
    return connector_stats.read(_client(), qs.cluster, [name]).get(name) or {}


def _replaced(qs, name: str, pid: int) -> dict:
    """The child `name` running again, in a process other than `pid`."""

    def running_again() -> dict | None:
        child = _running(qs.cluster, name)
        return child if child and child["pid"] != pid else None

    return wait_for(running_again, timeout=60, what=f"{name} running again")


def test_an_edit_loses_nothing_the_channel_had_received_and_logs_no_bind_error(qs):
    """Field report: edited while 266 messages waited in its socket, the channel lost them
    (34 of 300 reached the service); the new process, started before the old one let the port
    go, logged "cannot bind ... Address already in use", was restarted and kept
    `exited with code 4` as its last error while RUNNING."""
    _, zctx, push = _slow_channel(qs, "xzslow")
    pid = _child(qs.cluster, "zmq-channel:xzslow")["pid"]
    zato("conn", "edit", "zmq-channel", qs.path, "--name", "xzslow", "--max-in-flight", "4")
    child = _replaced(qs, "zmq-channel:xzslow", pid)
    assert "cannot bind" not in qs.server_logs("*.log")
    assert child["last_error"] == ""
    _all_arrived(qs, "an edit")
    assert "were dropped" not in qs.server_logs("*.log")
    push.close(linger=0)
    zctx.term()
    zato("conn", "delete", "zmq-channel", qs.path, "--name", "xzslow")


def test_a_bind_that_fails_says_why_in_cluster_status(qs):
    """Field report: FATAL with `last_error: 'exited with code 4'`, the reason only in the log."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        create = ("conn", "create", "zmq-channel", qs.path, "--name", "busy")
        zato(*create, "--address", f"tcp://127.0.0.1:{port}", "--service", "conn.record")

        def said() -> str | None:
            out = zato("cluster", "status", qs.path, check=False).stdout
            return out if "Address already in use" in out else None

        out = wait_for(said, timeout=60, interval=0.5, what="the reason in zato cluster status")
        assert "exited with code 4" not in out
    finally:
        taken.close()
        zato("conn", "delete", "zmq-channel", qs.path, "--name", "busy")


@pytest.mark.parametrize("address", ["tcp://999.1.1.1:5555", "tcp://127.0.0.1:0", "tcp://127.0.0.1"])
def test_an_address_libzmq_would_refuse_is_refused_by_conn_create(qs, address):
    """Field report: `zato conn create` took tcp://999.1.1.1, and the connector went FATAL."""
    proc = zato("conn", "create", "zmq-channel", qs.path, "--name", "bad", "--address", address,
                "--service", "conn.record", check=False)  # fmt: skip
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "zmq-channel address" in proc.stderr
    assert "bad" not in zato("conn", "list", qs.path).stdout.split()


def test_a_port_of_the_cluster_is_refused(qs):
    """Field report: a channel bound server1's port after a takeover; server1 then would not start."""
    ports = {"server server1": qs.settings("server1").port, "dashboard": qs.dashboard_port}
    for what, port in ports.items():
        proc = zato("conn", "create", "zmq-channel", qs.path, "--name", "clash",
                    "--address", f"tcp://*:{port}", "--service", "conn.record", check=False)  # fmt: skip
        assert proc.returncode == 1, (what, proc.stdout)
        assert len(proc.stderr.strip().splitlines()) == 1 and f"port {port}" in proc.stderr, proc.stderr
        assert what.split()[0] in proc.stderr
    zato("conn", "create", "zmq-channel", qs.path, "--name", "ok", "--address", f"tcp://127.0.0.1:{free_port()}",
         "--service", "conn.record")  # fmt: skip
    proc = zato("conn", "edit", "zmq-channel", qs.path, "--name", "ok",
                "--address", f"tcp://127.0.0.1:{qs.settings('server2').port}", check=False)  # fmt: skip
    assert proc.returncode == 1 and "server server2" in proc.stderr
    zato("conn", "delete", "zmq-channel", qs.path, "--name", "ok")


def test_a_graceful_stop_of_the_holder_loses_nothing_the_channel_had_received(qs):
    """Field report: `zato stop` of the holder while messages waited in the channel's socket:
    235 of 300 lost, the log saying only `connector zmq-channel 'xzslow' stopped (exit code 0)`."""
    _, zctx, push = _slow_channel(qs, "xzstop")
    holder = _status(qs.cluster)["server"]
    zato("stop", qs.server_dir(holder))
    other = next(n for n in qs.server_names if n != holder)
    wait_for(lambda: _status(qs.cluster).get("server") == other, timeout=60, what=f"{other} taking over")
    try:
        _all_arrived(qs, "a graceful stop of the holder")
        assert "were dropped" not in qs.server_logs("*.log")
    finally:
        push.close(linger=0)
        zctx.term()
        qs.start(holder)
        zato("conn", "delete", "zmq-channel", qs.path, "--name", "xzstop")


def test_a_connector_killed_while_it_runs_handed_over_messages_loses_none(qs):
    """Before: the next connector took each handed-over message out of Redis (LPOP) before its
    service answered, so one SIGKILLed while it tried them again (their service failing for a
    moment) lost them. Now they stay in Redis until answered and its successor runs them.
    The edit hands over what the first connector had not run yet, and the service fails only
    from then on; each failing call takes FAIL_AFTER_MS, so the killed connector is still
    trying them, far from giving them up. Before, 40 messages (8 s of work) could all be done
    before a slow `zato conn edit` came, leaving none to hand over and no failure to wait for;
    and a call the kill left running recorded its message once the service mended."""
    n, switch = 200, f"zato:{qs.cluster}:test:failing"
    fail = {"fail_while": switch, "fail_after_ms": FAIL_AFTER_MS}
    _, zctx, push = _slow_channel(qs, "xzkill", messages=n, in_flight=1, **fail)
    name = "zmq-channel:xzkill"
    try:
        pid = _child(qs.cluster, name)["pid"]
        zato("conn", "edit", "zmq-channel", qs.path, "--name", "xzkill", "--max-in-flight", "2")
        _client().set(switch, 1)  # the service fails from now on: what is taken is held, retried
        holder = _replaced(qs, name, pid)["pid"]

        def retrying() -> bool:
            stats = _stats(qs, name)
            return stats.get("pid") == holder and stats.get("failures", 0) >= 1

        wait_for(retrying, timeout=60, interval=0.05, what="the new connector retrying handed-over messages")
        os.kill(holder, signal.SIGKILL)
        _client().delete(switch)
        _replaced(qs, name, holder)
        _all_arrived(qs, "a connector SIGKILLed while it ran handed-over messages", messages=n)
    finally:
        _client().delete(switch)
        push.close(linger=0)
        zctx.term()
        zato("conn", "delete", "zmq-channel", qs.path, "--name", "xzkill")


def test_a_deleted_channel_takes_the_messages_handed_over_with_it(qs):
    """Before: a channel deleted while its hand-off list held messages left that list in Redis
    for good. Now `zato conn delete` deletes it and says how many messages went with it."""
    n, switch = 20, f"zato:{qs.cluster}:test:failing-del"
    _client().set(switch, 1)
    handoff = Keys(qs.cluster).channel_handoff("zmq-channel", "xzdel")
    address = f"tcp://127.0.0.1:{free_port()}"
    zato("conn", "create", "zmq-channel", qs.path, "--name", "xzdel", "--address", address,
         "--service", "conn.record", "--max-in-flight", "1")  # fmt: skip
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    try:
        wait_for(lambda: _running(qs.cluster, "zmq-channel:xzdel"), timeout=60, what="xzdel running")
        push.connect(address)
        for i in range(n):
            push.send(json.dumps({"n": i, "fail_while": switch}).encode())
        wait_for(lambda: _stats(qs, "zmq-channel:xzdel").get("failures", 0) >= 1, what="a failed attempt")
        pid = _child(qs.cluster, "zmq-channel:xzdel")["pid"]
        zato("conn", "edit", "zmq-channel", qs.path, "--name", "xzdel", "--active", "false")
        wait_for(lambda: not pid_alive(pid), timeout=60, what="its connector stopped")
        handed = _client().llen(handoff)
        assert handed >= n - 2  # the one it was trying, and those in its socket
        proc = zato("conn", "delete", "zmq-channel", qs.path, "--name", "xzdel")
        said = "its connectors had received and handed over, not processed, were dropped with it"
        assert f"warning: {handed} message(s) {said}" in proc.stderr
        assert not _client().exists(handoff)
    finally:
        _client().delete(switch)
        push.close(linger=0)
        zctx.term()


def test_a_service_slower_than_the_channel_timeout_is_a_failed_attempt(qs):
    """Before: a ZeroMQ channel had no timeout of its own (`--timeout` was refused): its service
    had 30 s. Now `--timeout S` says how long; a slower answer is a failed attempt, retried,
    then logged as dropped."""
    _client().delete(f"zato:{qs.cluster}:test:received")
    address = f"tcp://127.0.0.1:{free_port()}"
    out = zato("conn", "create", "zmq-channel", qs.path, "--name", "xztime", "--address", address,
               "--service", "conn.record", "--timeout", "1").stdout  # fmt: skip
    assert "timeout=1" in out
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    try:
        wait_for(lambda: _running(qs.cluster, "zmq-channel:xztime"), timeout=60, what="xztime running")
        push.connect(address)
        push.send(json.dumps({"n": 0, "wait_ms": 1500}).encode())
        wait_for(
            lambda: "'xztime': message dropped after 5 failed attempts" in qs.server_logs("*.log"),
            timeout=60,
            what="the message dropped after 5 attempts",
        )
        said = "'xztime': attempt 1 of 5 failed: the service did not answer within 1 s (service 'conn.record'"
        assert said in qs.server_logs("*.log")
        wait_for(lambda: _stats(qs, "zmq-channel:xztime").get("failures") == 5, what="5 failures counted")
    finally:
        push.close(linger=0)
        zctx.term()
        zato("conn", "delete", "zmq-channel", qs.path, "--name", "xztime")
