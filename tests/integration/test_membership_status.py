"""`zato cluster status` against the real Redis, with supervisors as real processes."""

from __future__ import annotations

import json

from tests.ha.supervised import SupervisedCluster, write_server_dir
from tests.support import cluster_name, wait_for, zato


def test_status_shows_live_and_gone_servers_the_holder_and_no_secret() -> None:
    c = SupervisedCluster(size=2)
    try:
        c.start("server1")
        wait_for(lambda: c.holder() and c.holder()["server"] == "server1", what="server1 to hold the lease")

        def both_listed() -> dict | None:
            data = json.loads(zato("cluster", "status", c.dirs["server1"], "--json").stdout)
            return data if data["servers"] and data["servers"][0]["live"] else None

        data = wait_for(both_listed, timeout=20, what="server1 live in the status")
        assert data["lease"]["holder"] == "server1" and data["lease"]["epoch"] == 1
        assert [s["role"] for s in data["servers"]] == ["holder"]
        table = zato("cluster", "status", c.dirs["server1"]).stdout
        assert "server1  live" in table and "Lease: held by server1, epoch 1" in table
        assert "s3cret-value" not in table and "admin-pw-123" not in table
        c.stop("server1")
        table = wait_for(
            lambda: (t := zato("cluster", "status", c.dirs["server1"]).stdout) and "server1  gone" in t and t,
            timeout=20,
            what="server1 to show as gone",
        )
        assert "Lease: not held (newest epoch 1)" in table
    finally:
        c.close()


def test_status_with_redis_unreachable_says_so_in_one_line(tmp_path) -> None:
    path = write_server_dir(str(tmp_path), "server1", cluster_name(), 17010, "redis://127.0.0.1:1/0", {})
    out = zato("cluster", "status", path).stdout
    assert "Lease: unknown (Redis unreachable: see below)" in out
    assert "warning: Redis: membership read: ConnectionError" in out
    assert "Traceback" not in out


def test_status_of_a_folder_that_is_not_a_component_is_a_one_line_error(tmp_path) -> None:
    proc = zato("cluster", "status", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"zato: error: {tmp_path}: not a Zato component directory (no .zato file)"
