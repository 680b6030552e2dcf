"""A change made with the CLI (or the admin API, the dashboard) while the Redis URL it uses names
a read-only replica, the servers running on its master: a replica takes PUBLISH, and tells the
change's event to none of the servers, which listen on the master. Before: the ODB was changed,
the CLI said 'channel X created' and exited 0, and the servers never applied it (an HTTP
channel, a deployed module: not in 60 s, only once each restarted; connection definitions
within 5 s, read again by the lease holder). Now nothing is changed, and the CLI says that Redis
at URL is a read-only replica, with the hint the servers' logs give, and exits 1; `zato cluster
status` read from a replica says so as a problem. A real master and replica of the test's own
(tests/integration/test_redis_refusals_log.py), a real server and the real CLI."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator

import pytest
import requests

from tests.support import cluster_name, master_and_replica, one_line_error, wait_for, zato
from zato.common.errors import CoordError
from zato.config.settings import RedisSettings
from zato.coord import events
from zato.coord.client import connect

SOURCE = """
from zato.server.service import Service


class Hi(Service):
    name = "replica.hi"

    def handle(self):
        self.response.payload = {"hi": "there"}
"""
HINT = "check [kvdb] url: it must name the master, not a replica (behind Sentinel: a failover may be"


@contextlib.contextmanager
def replica_urls(folder: pathlib.Path) -> Iterator[tuple[str, str]]:
    """tests.support.master_and_replica as URLs: (the master's, the replica's)."""
    with master_and_replica(folder) as (master_port, replica_port, _):
        yield f"redis://127.0.0.1:{master_port}/0", f"redis://127.0.0.1:{replica_port}/0"


def answers(url: str) -> int:
    return requests.get(url, timeout=10).status_code


def served_on_the_master(quickstart, master: str, servers: int = 1):  # noqa: ANN001, ANN201
    """A quickstart on `master` with server1 running, a module deployed and a channel to it."""
    qs = quickstart(servers=servers, lb=False, workers=1, extra_conf={"kvdb": {"url": master}})
    qs.start("server1")
    qs.deploy("replica_hi", SOURCE)
    zato(
        "channel", "create", qs.path, "--name", "one", "--url-path", "/replica/one", "--service", "replica.hi"
    )
    wait_for(lambda: answers(qs.server_url("server1") + "/replica/one") == 200, 30, what="channel one")
    return qs


def through(qs, url: str) -> None:  # noqa: ANN001
    """The CLI's Redis (server.conf's [kvdb] url) is `url` from now on; the server running
    read its own at start and stays on the master."""
    for name in qs.server_names:
        qs._merge(f"{qs.server_dir(name)}/config/server.conf", "kvdb", {"url": url})


def test_a_change_made_through_a_replica_changes_nothing_and_says_redis_is_a_replica(quickstart, tmp_path):
    with replica_urls(tmp_path) as (master, replica):
        qs = served_on_the_master(quickstart, master)
        through(qs, replica)
        said = f"Redis at {replica} is a read-only replica (READONLY: "
        nothing = "would hear of no change published there, so nothing was changed; "

        created = zato("channel", "create", qs.path, "--name", "two", "--url-path", "/replica/two",
                       "--service", "replica.hi", check=False)  # fmt: skip
        line = one_line_error(created, said, nothing + HINT)
        assert "channel two created" not in created.stdout, created.stdout
        assert "two:" not in zato("channel", "list", qs.path).stdout  # the ODB as it was
        deleted = zato("channel", "delete", qs.path, "--name", "one", check=False)
        one_line_error(deleted, said, nothing + HINT)
        assert "one: any /replica/one" in zato("channel", "list", qs.path).stdout
        module = tmp_path / "replica_other.py"
        module.write_text(SOURCE.replace("replica.hi", "replica.other"))
        one_line_error(zato("deploy", qs.path, str(module), check=False), said, nothing + HINT)
        conn = zato(
            "conn", "create", "amqp-def", qs.path, "--name", "local", "--password", "guest", check=False
        )
        one_line_error(conn, said, nothing + HINT)
        assert "local" not in zato("conn", "list", "--kind", "amqp-def", qs.path).stdout

        through(qs, master)  # mended: the same command is told to the server, which applies it
        zato(
            "channel",
            "create",
            qs.path,
            "--name",
            "two",
            "--url-path",
            "/replica/two",
            "--service",
            "replica.hi",
        )
        wait_for(lambda: answers(qs.server_url("server1") + "/replica/two") == 200, 30, what="channel two")
        assert line.count("read-only replica") == 1 and line.endswith("Sentinels give)"), line


def test_an_event_a_replica_took_after_the_change_says_no_server_was_told(tmp_path):
    """Redis became a replica between the check and the event (a failover): PUBLISH answers
    that it reached no subscriber, and the error says the change is saved and not told."""
    with replica_urls(tmp_path) as (_, replica):
        client = connect(RedisSettings(url=replica))
        try:
            with pytest.raises(CoordError) as e:
                events.announce(
                    client, cluster_name("replev"), {"kind": "channel", "name": "c1"}, "channel c1"
                )
        finally:
            client.close()
    said = str(e.value)
    assert said.startswith(
        f"channel c1 is saved in the ODB, but the servers were not told: Redis at {replica} is a read-only"
        " replica (READONLY: "
    ), said
    assert "where the event reached none of them (they listen on its master); " + HINT in said, said
    assert said.endswith(
        "each applies it only when it restarts: restart them once the event can be published"
    )


def test_cluster_status_and_cli_errors_name_a_replica_with_what_to_do(quickstart, tmp_path):
    with replica_urls(tmp_path) as (master, replica):
        qs = served_on_the_master(quickstart, master, servers=2)  # server2 stopped: one to forget
        through(qs, replica)
        status = zato("cluster", "status", qs.path, check=False)
        assert status.returncode == 3, status.stdout + status.stderr
        (problem,) = [line for line in status.stdout.splitlines() if "read-only replica" in line]
        assert problem.startswith(f"problem: Redis at {replica} is a read-only replica (READONLY: "), problem
        assert "each change made through it (zato deploy, channel, conn) is refused; " + HINT in problem
        rows = {
            line.split()[0]: line.split()[1]
            for line in status.stdout.splitlines()
            if line.startswith("server")
        }
        assert rows == {"server1": "live", "server2": "gone"}, (
            status.stdout
        )  # what it read: the master's copy
        forget = zato("cluster", "forget", qs.path, "server2", check=False)
        line = one_line_error(forget, f"Redis at {replica} is a read-only replica (READONLY: ", HINT)
        assert "nothing was changed" in line and line.endswith("Sentinels give)"), line

        through(qs, master)
        mended = zato("cluster", "status", qs.path, check=False)
        assert "read-only replica" not in mended.stdout, mended.stdout
        # before, the ODB row went before Redis refused the drain hold's removal: server2 was
        # forgotten by a command that failed
        assert any(line.split()[:2] == ["server2", "gone"] for line in mended.stdout.splitlines()), (
            mended.stdout
        )
        assert "server server2 forgotten" in zato("cluster", "forget", qs.path, "server2").stdout
