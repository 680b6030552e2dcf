"""The same server name started twice (two hosts, or two folders on one host): `zato start`
refuses a name a live server has, but it cannot lock, so two started at once, or one started
while the other was paused past its ttl, both run. Each heartbeat then replaces the other's
membership entry and the load balancer moves the name between the two addresses every second.
Before, nothing said why; now each server logs one ERROR naming both addresses and what to do."""

from __future__ import annotations

import contextlib
import os
import signal

from tests.ha.cluster_view import supervisor_pid
from tests.support import REDIS_URL, cluster_name, wait_for
from zato.config.settings import RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys

SHARED = "is also used by the server at"


def _log(qs, folder: str) -> str:  # noqa: ANN001 - a Quickstart
    text = ""
    logs = os.path.join(qs.server_dir(folder), "logs")
    for name in sorted(os.listdir(logs)):
        with open(os.path.join(logs, name), errors="replace") as f:
            text += f.read()
    return text


def test_two_servers_of_one_name_each_say_so_once(quickstart):
    qs = quickstart(servers=2, lb=False, cluster=cluster_name("ha2-samename"))
    # server2's folder runs a second "server1", on its own port
    qs._merge(os.path.join(qs.server_dir("server2"), "config", "server.conf"), "main", {"name": "server1"})
    client = connect(RedisSettings(url=REDIS_URL))
    entry = Keys(qs.cluster).member("server1")
    try:
        qs.start("server1")
        wait_for(lambda: client.exists(entry), 30, what="server1's entry")
        first = qs.settings("server1")
        paused = supervisor_pid(qs, "server1")
        os.kill(paused, signal.SIGSTOP)  # its entry expires: the name looks free
        try:
            wait_for(lambda: not client.exists(entry), 30, what="the paused server's entry expired")
            qs.start("server2")
        finally:  # stopped 30 s (a slow start of server2), the arbiter replaced it as hung
            with contextlib.suppress(ProcessLookupError):
                os.kill(paused, signal.SIGCONT)
        second = qs.settings("server2")
        wait_for(lambda: SHARED in _log(qs, "server1") and SHARED in _log(qs, "server2"), 30,
                 what="each server saying the name is used twice")  # fmt: skip
        one, two = _log(qs, "server1"), _log(qs, "server2")
        assert f"{SHARED} 127.0.0.1:{second.port}" in one
        assert f"{SHARED} 127.0.0.1:{first.port}" in two
        for _ in range(4):  # more heartbeats of both, each replacing the other's entry
            before = client.get(entry)
            wait_for(lambda before=before: client.get(entry) != before, 10, what="another heartbeat")
        assert _log(qs, "server1").count(SHARED) == 1
        assert _log(qs, "server2").count(SHARED) == 1
    finally:
        client.close()
