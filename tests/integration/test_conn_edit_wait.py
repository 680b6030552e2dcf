"""`zato conn edit ... --wait SECONDS` in a real one-server cluster (it holds the lease) with the
real RabbitMQ: the command returns once the lease holder runs the connector with the change and
says how long that took, or says that it did not within SECONDS (exit 1).

Before, `zato conn edit` returned once the ODB had the change and the event was published: a
script could not tell when the holder ran the new configuration (a message sent right after
could still go out under the old one), and had to poll `zato cluster status` for a new pid."""

from __future__ import annotations

import re
import uuid

from tests.conn_support import Rabbit, running_pids
from tests.support import free_port, wait_for, zato

APPLIED = re.compile(r"^applied in (\d+\.\d\d) s: server1 runs (\S+) with it \(pid (\d+)\)$", re.M)


_running = running_pids


def _all_running(cluster: str, names: tuple[str, ...]) -> dict[str, int] | None:
    running = _running(cluster)
    return running if all(name in running for name in names) else None


def test_edit_wait_returns_once_the_holder_runs_the_change(quickstart):
    qs = quickstart(servers=1, lb=False)
    rabbit = Rabbit()
    try:
        qs.start()
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        queue = rabbit.queue(f"zt-ewait-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out", "--def", "rabbit",
             "--routing-key", queue)  # fmt: skip
        before = wait_for(lambda: _running(qs.cluster).get("amqp-outgoing:out"), 60, what="the connector")
        edit = ("conn", "edit", "amqp-outgoing", qs.path)

        said = zato(*edit, "--name", "out", "--content-type", "text/plain", "--wait", "60").stdout
        found = APPLIED.search(said)
        assert found and found.group(2) == "amqp-outgoing:out", said
        pid = int(found.group(3))
        assert pid != before and _running(qs.cluster)["amqp-outgoing:out"] == pid  # it runs when it says so

        said = zato(*edit, "--name", "out", "--content-type", "text/plain", "--wait", "60").stdout
        assert "nothing changed: the lease holder runs amqp-outgoing 'out' as before" in said, said

        said = zato(*edit, "--name", "out", "--new-name", "out2", "--wait", "60").stdout
        found = APPLIED.search(said)
        assert found and found.group(2) == "amqp-outgoing:out2", said
        assert "amqp-outgoing:out" not in _running(qs.cluster)

        said = zato(*edit, "--name", "out2", "--active", "false", "--wait", "60").stdout
        assert re.search(r"^applied in \d+\.\d\d s: server1 stopped amqp-outgoing:out2$", said, re.M), said

        qs.stop("server1")  # nobody holds the lease: nothing applies it
        late = zato(*edit, "--name", "out2", "--active", "true", "--wait", "1", check=False)
        assert late.returncode == 1, late
        saved = "zato: error: the change is saved, but not applied within 1 s: "
        assert late.stderr.startswith(saved), late.stderr
    finally:
        rabbit.close()
        qs.close()


def test_def_edit_wait_returns_once_every_connector_through_it_runs_the_change(quickstart):
    """An edit of an amqp-def restarts every active connector that connects through it; before,
    `zato conn edit amqp-def ... --wait` was refused (exit 2: unrecognized arguments: --wait),
    so a script changing the broker's address could not tell when the connectors used it."""
    qs = quickstart(servers=1, lb=False)
    rabbit = Rabbit()
    try:
        qs.start()
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        queue = rabbit.queue(f"cliux-dwait-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-channel", qs.path, "--name", "in", "--def", "rabbit", "--queue", queue,
             "--service", "dwait.none")  # fmt: skip
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out", "--def", "rabbit",
             "--routing-key", queue)  # fmt: skip
        users = ("amqp-channel:in", "amqp-outgoing:out")
        before = wait_for(lambda: _all_running(qs.cluster, users), 60, what="the connectors")
        edit = ("conn", "edit", "amqp-def", qs.path, "--name", "rabbit")

        said = zato(*edit, "--heartbeat", "40", "--wait", "60").stdout
        lines = [line for line in said.splitlines() if line.startswith("applied in ")]
        assert len(lines) == 1, said
        pids = dict(re.findall(r"server1 runs (\S+) with it \(pid (\d+)\)", lines[0]))
        assert sorted(pids) == list(users), said
        now = _running(qs.cluster)
        for user in users:  # each one restarted, and runs when it says so
            assert int(pids[user]) != before[user] and now[user] == int(pids[user]), (said, before, now)

        said = zato(*edit, "--heartbeat", "40", "--wait", "60").stdout
        assert (
            "nothing changed: the lease holder runs the connectors that connect through amqp-def 'rabbit'"
            in said
        ), said

        for user in users:
            kind, _, name = user.partition(":")
            zato("conn", "edit", kind, qs.path, "--name", name, "--active", "false", "--wait", "60")
        said = zato(*edit, "--heartbeat", "50", "--wait", "60").stdout
        assert "nothing to wait for: no active connector connects through amqp-def 'rabbit'" in said, said
    finally:
        rabbit.close()
        qs.close()


def test_def_edit_wait_says_when_the_connectors_cannot_reach_the_new_broker(quickstart):
    """An edit that points an amqp-def at a broker nobody answers at restarts its connectors,
    whose new processes run but keep reconnecting. Before, `--wait` said 'applied' as soon as
    the new process ran, as though the new address worked; now it waits until each connector
    says it connected, and says why not when the time runs out (exit 1)."""
    qs = quickstart(servers=1, lb=False)
    rabbit = Rabbit()
    try:
        qs.start()
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        queue = rabbit.queue(f"zt-ewait-away-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-channel", qs.path, "--name", "in", "--def", "rabbit", "--queue", queue,
             "--service", "dwait.none")  # fmt: skip
        before = wait_for(lambda: _all_running(qs.cluster, ("amqp-channel:in",)), 60, what="the connector")
        edit = ("conn", "edit", "amqp-def", qs.path, "--name", "rabbit")

        late = zato(*edit, "--port", str(free_port()), "--wait", "8", check=False)
        assert late.returncode == 1 and "applied in" not in late.stdout, late.stdout + late.stderr
        assert (
            "the change is saved, but not applied within 8 s: server1 has amqp-channel:in RUNNING, pid"
            in (late.stderr)
        ), late.stderr
        assert ", not working: reconnecting" in late.stderr, late.stderr
        assert _running(qs.cluster)["amqp-channel:in"] != before["amqp-channel:in"]  # it did restart

        said = zato(*edit, "--port", "5672", "--wait", "60").stdout  # back to the broker that answers
        assert APPLIED.search(said) and "amqp-channel:in" in said, said
    finally:
        rabbit.close()
        qs.close()
