"""What the HA tests look at: the cluster status (the same data `zato cluster status --json`
prints), the current lease holder, and the processes of a server found through /proc."""

from __future__ import annotations

import os

from tests.support import process_table, wait_for
from zato.cli.cluster import gather
from zato.common.pidfile import pid_alive
from zato.config.settings import load_server_settings
from zato.coord.client import connect
from zato.coord.lease import read_holder


def cluster_status(path: str) -> dict:
    return gather(path)


def holder(qs, wait: bool = True, timeout: float = 30) -> tuple[str, int] | None:  # noqa: ANN001
    settings = load_server_settings(qs.server_dir(qs.server_names[0]))

    def read() -> tuple[str, int] | None:
        client = connect(settings.redis)
        try:
            h = read_holder(client, settings.cluster)
        finally:
            client.close()
        return (h.server, h.epoch) if h else None

    return wait_for(read, timeout=timeout, what="a lease holder") if wait else read()


def ensure_running(qs, timeout: float = 60) -> None:  # noqa: ANN001
    """Start the servers that are not running and wait until every one is a live member."""
    down = [n for n in qs.server_names if not (qs.pid(n) and pid_alive(qs.pid(n)))]
    if down:
        qs.start(*down, timeout=timeout)

    def all_live() -> bool:
        return all(s["live"] for s in cluster_status(qs.path)["servers"])

    wait_for(all_live, timeout=timeout, what="every server to be a live member")


def wait_connectors_running(qs, timeout: float = 30) -> dict:  # noqa: ANN001
    """The status once the holder runs every connector (state RUNNING, with a pid)."""

    def ready() -> dict | None:
        data = cluster_status(qs.path)
        kids = data["children"]
        ok = data["lease"]["holder"] and kids and all(c["state"] == "RUNNING" and c["pid"] for c in kids)
        return data if ok else None

    return wait_for(ready, timeout=timeout, what="the holder's connectors to run")


def child_pids(pid: int) -> list[int]:
    return [p for p, ppid, _ in process_table() if ppid == pid]


def supervisor_pid(qs, name: str, wait: bool = True) -> int | None:  # noqa: ANN001
    """The pid of the connector supervisor under `name`'s arbiter."""

    def find() -> int | None:
        arbiter = qs.pid(name)
        for p, ppid, cmd in process_table():
            if ppid == arbiter and (b"zato-supervisor" in cmd or b"zato.connector.supervisor" in cmd):
                return p
        return None

    return wait_for(find, timeout=30, what=f"the supervisor of {name}") if wait else find()


def log_of(qs, name: str) -> str:  # noqa: ANN001
    with open(os.path.join(qs.server_dir(name), "logs", "server.log"), errors="replace") as f:
        return f.read()
