"""Connector-server lease with real servers: one holder, SIGKILL takeover, graceful handover,
SIGSTOP fencing, and the supervisor re-spawned by its arbiter.

Three servers of one quickstart (no LB) share the module; a ZeroMQ channel gives the holder
a real connector process to run. Each test starts with every server running.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import requests

from tests.ha.cluster_view import (
    child_pids,
    cluster_status,
    ensure_running,
    holder,
    log_of,
    supervisor_pid,
    wait_connectors_running,
)
from tests.support import free_port, signed_headers, wait_for, zato


@pytest.fixture(scope="module")
def trio(module_quickstart):
    qs = module_quickstart(servers=3, lb=False)
    qs.start()
    port = free_port()
    zato(
        "conn", "create", "zmq-channel", qs.path, "--name", "orders",
        "--address", f"tcp://127.0.0.1:{port}", "--service", "zato.ping",
    )  # fmt: skip
    return qs


@pytest.fixture
def qs(trio):
    ensure_running(trio)
    wait_connectors_running(trio)
    return trio


def test_three_servers_have_exactly_one_holder_running_the_connectors(qs) -> None:
    data = cluster_status(qs.path)
    roles = sorted(s["role"] for s in data["servers"])
    assert roles == ["holder", "standby", "standby"]
    name = next(s["name"] for s in data["servers"] if s["role"] == "holder")
    assert data["lease"]["holder"] == name
    [child] = data["children"]
    assert child["name"].endswith("orders") and child["state"] == "RUNNING"
    # The connector runs under the holder's supervisor (forked by its zygote, or spawned by it
    # directly while the zygote is not ready), started under the holder's epoch.
    sup = supervisor_pid(qs, name)
    assert child["pid"] in child_pids(sup) + [p for z in child_pids(sup) for p in child_pids(z)]
    assert data["supervisor"]["server"] == name
    table = zato("cluster", "status", qs.path, check=False).stdout
    assert f"Lease: held by {name}, epoch {data['lease']['epoch']}" in table
    assert qs.cluster_secret not in table and qs.admin_auth[1] not in table
    # The same data from the admin API of any server; outsiders get 401.
    url = f"{qs.server_url(qs.server_names[-1])}/zato/admin/cluster/status"
    assert requests.get(url, timeout=10).status_code == 401
    reply = requests.get(url, auth=qs.admin_auth, timeout=10)
    assert reply.status_code == 200
    api = reply.json()
    assert api["lease"]["holder"] == name and [c["name"] for c in api["children"]] == [child["name"]]
    assert sorted(s["role"] for s in api["servers"]) == ["holder", "standby", "standby"]
    assert qs.cluster_secret not in reply.text


def test_sigkill_of_the_holder_server_moves_the_lease_and_its_connectors(qs) -> None:
    old, epoch = holder(qs)
    old_child = cluster_status(qs.path)["children"][0]["pid"]
    sup = supervisor_pid(qs, old)
    qs.kill(old, signal.SIGKILL)
    os.kill(sup, signal.SIGKILL)
    new, new_epoch = wait_for(lambda: _moved(qs, old), timeout=30, what="another server to take the lease")
    assert new_epoch == epoch + 1
    data = wait_connectors_running(qs)
    assert data["lease"]["holder"] == new
    assert data["children"][0]["pid"] != old_child
    wait_for(lambda: not _alive(old_child), timeout=10, what="the old holder's connector to exit")
    data = wait_for(lambda: _gone(qs, old), timeout=30, what=f"{old} to be shown as gone")
    assert [s["name"] for s in data["servers"] if s["role"] == "holder"] == [new]


def test_graceful_stop_of_the_holder_hands_the_lease_over(qs) -> None:
    old, epoch = holder(qs)
    qs.stop(old)
    new, new_epoch = holder(qs)
    assert new != old and new_epoch == epoch + 1
    assert f"released lease epoch {epoch}" in log_of(qs, old)
    data = wait_connectors_running(qs)
    assert data["lease"]["holder"] == new
    assert old not in [s["name"] for s in data["servers"] if s["live"]]


def test_a_paused_holder_is_fenced_off_and_steps_down_when_it_resumes(qs) -> None:
    old, epoch = holder(qs)
    old_child = cluster_status(qs.path)["children"][0]["pid"]
    sup = supervisor_pid(qs, old)
    os.kill(sup, signal.SIGSTOP)
    try:
        new, new_epoch = wait_for(lambda: _moved(qs, old), timeout=30, what="a new holder")
        assert new_epoch == epoch + 1
        # Its connectors still run, but whatever they do with the old epoch is refused.
        other = next(n for n in qs.server_names if n != old)
        assert _invoke(qs, other, epoch).status_code == 409
        assert _invoke(qs, other, new_epoch).status_code == 200
    finally:
        os.kill(sup, signal.SIGCONT)
    wait_for(
        lambda: f"stepped down from lease epoch {epoch}" in log_of(qs, old),
        timeout=20,
        what="the resumed old holder to step down",
    )
    wait_for(lambda: not _alive(old_child), timeout=10, what="the old holder's connector to stop")
    data = wait_connectors_running(qs)
    assert (data["lease"]["holder"], data["lease"]["epoch"]) == (new, new_epoch)
    roles = {s["name"]: s["role"] for s in data["servers"]}
    wait_for(lambda: _role(qs, old) == "standby", timeout=10, what=f"{old} to show as standby")
    assert roles[new] == "holder"
    assert "renewing the lease" not in log_of(qs, old)


def test_a_supervisor_killed_on_its_own_is_spawned_again(qs) -> None:
    name = qs.server_names[0]
    old = supervisor_pid(qs, name)
    os.kill(old, signal.SIGKILL)

    def respawned() -> int | None:
        pid = supervisor_pid(qs, name, wait=False)
        return pid if pid not in (None, old) else None

    new = wait_for(respawned, timeout=30, what="a new supervisor")
    title = f"zato-supervisor: {name} (cluster {qs.cluster})".encode()
    wait_for(lambda: title in _cmdline(new), timeout=15, what="the supervisor's process title")
    wait_for(lambda: _role(qs, name) in ("holder", "standby"), timeout=15, what=f"{name} back in the cluster")
    ensure_running(qs)
    wait_connectors_running(qs)
    assert len([s for s in cluster_status(qs.path)["servers"] if s["role"] == "holder"]) == 1


# -- helpers -----------------------------------------------------------------------------------


def _moved(qs, old: str) -> tuple[str, int] | None:
    name, epoch = holder(qs, wait=False) or (None, 0)
    return (name, epoch) if name not in (None, old) else None


def _gone(qs, name: str) -> dict | None:
    data = cluster_status(qs.path)
    row = next(s for s in data["servers"] if s["name"] == name)
    return data if not row["live"] else None


def _role(qs, name: str) -> str:
    data = cluster_status(qs.path)
    return next(s["role"] for s in data["servers"] if s["name"] == name and s["live"])


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def _alive(pid: int) -> bool:
    from zato.common.pidfile import pid_alive

    return pid_alive(pid)


def _invoke(qs, server: str, epoch: int) -> requests.Response:
    body = json.dumps({}).encode()
    headers = signed_headers(qs.cluster_secret, epoch, "zato.ping", body)
    headers["Content-Type"] = "application/json"
    url = f"{qs.server_url(server)}/zato/internal/invoke/zato.ping"
    return requests.post(url, data=body, headers=headers, timeout=10)
