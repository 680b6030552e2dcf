"""A server laid out as docs/multi-host.md lays it out: in a folder not named after it
(/opt/zato/server on every host), binding 0.0.0.0 and announcing its host's address."""

from __future__ import annotations

import configparser
import contextlib
import json
import os

from tests.support import cluster_name, free_port, zato
from zato.common.pidfile import read_pidfile


def _app1(qs, tmp_path) -> tuple[str, int]:
    """app1 of the quickstart's cluster, in .../opt/zato/server (the folder every host uses)."""
    path, port = str(tmp_path / "app1" / "opt" / "zato" / "server"), free_port()
    zato("create", "server", path, "--join", qs.server_dir("server1"), "--host", "0.0.0.0",
         "--announce-host", "127.0.0.1", "--port", str(port), "--name", "app1")  # fmt: skip
    return path, port


def test_zato_stop_names_the_server_it_stopped_not_its_folder(quickstart, tmp_path):
    """Before: `zato start` said `server app1 started`, and `zato stop` of the same folder
    `server server stopped` (the folder's name), on each of the hosts alike."""
    qs = quickstart(servers=1, lb=False)
    path, _ = _app1(qs, tmp_path)
    try:
        assert zato("start", path).stdout.splitlines()[-1].startswith("server app1 started (pid ")
        pid = read_pidfile(os.path.join(path, "pidfile")).pid
        assert zato("stop", path).stdout == f"server app1 stopped (pid {pid})\n"
    finally:
        with contextlib.suppress(AssertionError):
            zato("stop", path)


def test_cluster_status_shows_a_server_not_running_at_the_address_it_announces(quickstart, tmp_path):
    """Before: `zato cluster status` of a server folder showed its own server, while not live
    (stopped, or Redis not answering), at the address it binds, 0.0.0.0:17010, where no one
    reaches it, and the other servers at the address each announces (from the ODB)."""
    qs = quickstart(servers=1, lb=False)
    path, port = _app1(qs, tmp_path)
    data = json.loads(zato("cluster", "status", path, "--json", check=False).stdout)
    rows = {s["name"]: (s["live"], s["address"]) for s in data["servers"]}
    assert rows["app1"] == (False, f"127.0.0.1:{port}")


def test_the_redis_acl_hint_of_quickstart_names_every_file_with_a_redis_url(tmp_path):
    """Before: the hint said to set the ACL user's URL 'in every server.conf and lb.conf'; the
    dashboard's dashboard.conf has a [kvdb] url too, and once Redis's default user is off
    (docs/redis-acl.md) a dashboard left on it reads nothing."""
    path = tmp_path / "qs"
    out = zato("quickstart", "create", str(path), "--cluster", cluster_name("mhdocs")).stdout
    hint = next(line for line in out.splitlines() if "[kvdb] url =" in line)
    with_url = set()
    for conf in path.rglob("*.conf"):
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(conf)
        if cp.has_option("kvdb", "url"):
            with_url.add(conf.name)
    assert with_url == {"server.conf", "lb.conf", "dashboard.conf"}
    assert all(name in hint for name in with_url), hint
