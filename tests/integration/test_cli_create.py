"""`zato create ...` and `zato quickstart create` given a wrong value or the wrong directory:
one line, nothing half-made (no directory, no ODB row), and the same command mended works."""

from __future__ import annotations

import os

import sqlalchemy as sa

from tests.support import PG_URL, cluster_name, free_port, one_line_error, zato
from zato.odb import api as odb_api
from zato.odb.engine import ODB


def test_a_server_refused_for_a_bad_value_can_be_created_again_once_mended(tmp_path):
    """Before: the ODB row came first and the directory was half-written when its config was
    refused, so the mended command said 'exists and is not an empty directory', and once the
    directory was removed by hand, "server 's1' already exists in cluster ...": no way on."""
    url = f"sqlite:///{tmp_path}/odb.db"
    cluster = cluster_name("hcli")
    zato("create", "cluster", url, cluster)
    server_dir = tmp_path / "s1"
    common = ("create", "server", str(server_dir), "--odb", url, "--cluster", cluster)
    one_line_error(zato(*common, "--workers", "0", check=False), "[main] workers: 0 is not in 1..256")
    assert not server_dir.exists()
    one_line_error(zato(*common, "--name", "no good", check=False), "[main] name: 'no good'")
    one_line_error(zato(*common, "--redis", "localhost:6379", check=False), "--redis 'localhost:6379'")
    server_dir.mkdir()  # an empty directory given is left empty
    one_line_error(zato(*common, "--workers", "0", check=False), "workers")
    assert os.listdir(server_dir) == []
    port = str(free_port())
    out = zato(*common, "--port", port).stdout
    assert f"server s1 of cluster {cluster} created in {server_dir} (port {port})" in out, out
    odb = ODB(url)
    try:
        assert [s.name for s in odb_api.list_servers(odb, cluster)] == ["s1"]
    finally:
        odb.dispose()
    # a row the ODB refuses (the name taken) leaves no directory
    other = tmp_path / "s1-again"
    proc = zato(
        "create", "server", str(other), "--name", "s1", "--odb", url, "--cluster", cluster, check=False
    )
    one_line_error(proc, "server 's1' already exists")
    assert not other.exists()


def test_a_quickstart_refused_leaves_no_folder_and_no_row_in_its_odb(tmp_path):
    """Before: `quickstart create DIR --odb PG --cluster C --redis BAD` added cluster C to the
    PostgreSQL ODB and left DIR half-made: the mended command said DIR is not empty."""
    cluster = cluster_name("hcli")
    path = tmp_path / "qs"
    base = free_port()
    args = ("quickstart", "create", str(path), "--odb", PG_URL, "--cluster", cluster, "--servers", "1")
    ports = ("--base-port", str(base), "--lb-port", str(free_port()), "--dashboard-port", str(free_port()))
    odb = ODB(PG_URL)
    try:
        one_line_error(
            zato(*args, *ports, "--redis", "127.0.0.1:6379", check=False),
            "'127.0.0.1:6379' is not a redis:// URL",
        )
        assert not path.exists()
        with odb.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM zato_cluster WHERE name = :n"), {"n": cluster})
            assert rows.scalar() == 0
        conflicting = ("--redis", "redis://127.0.0.1:6379/0", "--sentinels", "127.0.0.1:26379")
        one_line_error(
            zato(*args, *ports, *conflicting, "--sentinel-master", "m", check=False),
            "give --redis URL or --sentinels HOST:PORT,... (the master they name), not both",
        )
        one_line_error(
            zato(*args, *ports[:2], "--cluster", "my cluster", check=False), "--cluster 'my cluster'"
        )
        assert not path.exists()
        out = zato(*args, *ports).stdout
        assert f"Created quickstart cluster {cluster!r}" in out, out
        assert [s.name for s in odb_api.list_servers(odb, cluster)] == ["server1"]
        assert f"port = {base}" in (path / "server1" / "config" / "server.conf").read_text()
    finally:
        with odb.engine.begin() as conn:  # its servers go with it (ON DELETE CASCADE)
            conn.execute(sa.text("DELETE FROM zato_cluster WHERE name = :n"), {"n": cluster})
        odb.dispose()


def test_create_names_the_directory_of_the_wrong_kind(quickstart, tmp_path):
    """Before: 'QS/load-balancer/config/server.conf: config file not found' for a --join or
    --server that was the load balancer's, and '.../lb.conf: config file not found' for an --lb
    that was a server's; a quickstart's folder, which holds its servers, was refused the same way."""
    qs = quickstart(servers=1)
    lb_dir, server_dir = qs.lb_dir, qs.server_dir("server1")
    one_line_error(
        zato("create", "server", str(tmp_path / "s"), "--join", lb_dir, check=False),
        f"--join {lb_dir}: a load-balancer directory; give a server directory (or a quickstart's)",
    )
    dashboard = ("create", "dashboard", str(tmp_path / "d"), "--port", str(free_port()))
    one_line_error(zato(*dashboard, "--server", lb_dir, check=False), f"--server {lb_dir}: a load-balancer")
    one_line_error(
        zato(*dashboard, "--server", qs.path, "--lb", server_dir, check=False),
        f"--lb {server_dir}: a server directory; give a load-balancer directory",
    )
    assert not (tmp_path / "s").exists() and not (tmp_path / "d").exists()
    out = zato(*dashboard, "--server", qs.path, "--lb", lb_dir).stdout  # a quickstart's: its server1
    assert "dashboard created in" in out, out
    assert f"name = {qs.cluster}" in (tmp_path / "d" / "config" / "dashboard.conf").read_text()
    one_line_error(
        zato("create", "cluster", f"sqlite:///{tmp_path}/odb.db", "", check=False),
        "cluster name '' may hold only letters, digits, - _ .",
    )


def test_a_server_of_an_odb_not_made_yet_says_which_create_makes_it(tmp_path):
    """Before: 'ODB error: (sqlite3.OperationalError) no such table: zato_cluster', an empty
    odb.db made where the URL pointed, and 'cluster 'c1' does not exist in the ODB' with no
    word of how to make it."""
    url = f"sqlite:///{tmp_path}/odb.db"
    cluster = cluster_name("hcli")
    argv = ("create", "server", str(tmp_path / "s1"), "--odb", url, "--cluster", cluster, "--port", "17099")
    one_line_error(
        zato(*argv, check=False),
        "does not exist yet (no file",
        f"make it first: zato create cluster ODB_URL {cluster}",
    )
    assert not (tmp_path / "odb.db").exists() and not (tmp_path / "s1").exists()
    zato("create", "odb", url)
    one_line_error(
        zato(*argv, check=False),
        f"cluster {cluster!r} does not exist in the ODB",
        f"make it first: zato create cluster ODB_URL {cluster}",
    )
    zato("create", "cluster", url, cluster)
    assert f"server s1 of cluster {cluster} created" in zato(*argv).stdout


def test_a_load_balancer_listening_on_no_host_is_refused_when_made(tmp_path):
    """Before: `zato create load-balancer DIR --host 'a b'` made it, and `zato start DIR` then
    said 'port a b:PORT is not free (Name or service not known)': the port was never the matter."""
    port = str(free_port())
    argv = (
        "create",
        "load-balancer",
        str(tmp_path / "lb"),
        "--cluster",
        cluster_name("hcli"),
        "--port",
        port,
    )
    one_line_error(
        zato(*argv, "--host", "a b", check=False),
        "[main] host: 'a b' is neither an IP address nor a host name",
    )
    assert not (tmp_path / "lb").exists()
    assert "load balancer of cluster" in zato(*argv, "--host", "localhost").stdout


def test_a_quickstart_whose_ports_overlap_is_refused_and_not_made(tmp_path):
    """Before: `quickstart create DIR --base-port 25010 --lb-port 25011` (server2's port) made the
    quickstart, and each `zato start DIR` of it started the servers and the dashboard, failed on
    HAProxy's bind and stopped them again. Also --base-port 65534 with two servers was taken
    while --lb-port 65535 was 'not a usable port'."""
    path = tmp_path / "qs"
    for ports, said in (
        (
            ("--base-port", "25010", "--lb-port", "25011"),
            "--lb-port 25011 is server2's port (--base-port 25010 with --servers 2: 25010..25011)",
        ),
        (
            ("--base-port", "25010", "--dashboard-port", "25010"),
            "--dashboard-port 25010 is server1's port",
        ),
        (
            ("--lb-port", "25020", "--dashboard-port", "25020"),
            "--dashboard-port 25020 is the load balancer's",
        ),
        (("--base-port", "65535"), "--base-port 65535: not a usable port for 2 server(s)"),
    ):
        args = ("quickstart", "create", str(path), "--cluster", cluster_name("ports"), *ports)
        one_line_error(zato(*args, check=False), said)
        assert not path.exists()
    zato("quickstart", "create", str(path), "--base-port", "65533", "--lb-port", "65535", "--cluster", "x")
    assert path.is_dir()
