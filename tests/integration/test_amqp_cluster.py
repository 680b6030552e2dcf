"""Connectors in a real quickstart cluster: definitions made with `zato conn`, connector
processes run by the lease holder's supervisor, services invoked through the internal endpoint.
Round trips for every kind; a channel edited while messages flow; a killed connector process."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conn_support import Rabbit, broken_key, rabbitmqctl, services_source
from tests.metrics_lint import documented, exposed_name
from tests.support import REDIS_URL, free_port, wait_for, zato
from zato.coord import connector_stats
from zato.coord.keys import Keys
from zato.coord.lease import read_supervisor_status
from zato.coord.queues import OutQueue, encode
from zato.coord.signing import outgoing_key


def received(cluster: str) -> list:
    client = redis.Redis.from_url(REDIS_URL)
    return [json.loads(x) for x in client.lrange(f"zato:{cluster}:test:received", 0, -1)]


def children(cluster: str) -> dict[str, dict]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    status = read_supervisor_status(client, cluster) or {}
    return {c["name"]: c for c in status.get("children", [])}


def supervisor_epoch(cluster: str) -> int | None:
    status = read_supervisor_status(redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster) or {}
    return status.get("epoch")


def running(cluster: str, *names: str) -> dict | None:
    found = children(cluster)
    ok = all(str(found.get(n, {}).get("state")).lower() == "running" for n in names)
    return found if ok else None


@pytest.fixture(scope="module")
def cluster(module_quickstart, tmp_path_factory):
    qs = module_quickstart(servers=2, lb=False)
    qs.start()
    module = tmp_path_factory.mktemp("mod") / "conn_services.py"
    module.write_text(services_source())
    zato("deploy", qs.path, str(module))
    rabbit = Rabbit()
    qs.queue_in = rabbit.queue(f"zt-cl-in-{uuid.uuid4().hex[:8]}")
    qs.queue_out = rabbit.queue(f"zt-cl-out-{uuid.uuid4().hex[:8]}")
    qs.zmq_port = free_port()
    qs.rabbit = rabbit
    conn = ("conn", "create")
    zato(*conn, "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
    zato(
        *conn,
        "amqp-channel",
        qs.path,
        "--name",
        "in",
        "--def",
        "rabbit",
        "--queue",
        qs.queue_in,
        "--service",
        "conn.record",
        "--prefetch",
        "20",
    )
    zato(*conn, "amqp-outgoing", qs.path, "--name", "out", "--def", "rabbit", "--routing-key", qs.queue_out)
    zato(
        *conn,
        "zmq-channel",
        qs.path,
        "--name",
        "zin",
        "--address",
        f"tcp://127.0.0.1:{qs.zmq_port}",
        "--service",
        "conn.record",
    )
    zato(*conn, "zmq-outgoing", qs.path, "--name", "zout", "--address", f"tcp://127.0.0.1:{qs.zmq_port}")
    zato(
        "channel",
        "create",
        qs.path,
        "--name",
        "send-amqp",
        "--url-path",
        "/send-amqp",
        "--service",
        "conn.send-amqp",
    )
    zato(
        "channel",
        "create",
        qs.path,
        "--name",
        "send-zmq",
        "--url-path",
        "/send-zmq",
        "--service",
        "conn.send-zmq",
    )
    wait_for(
        lambda: running(qs.cluster, "amqp-channel:in", "amqp-outgoing:out", "zmq-channel:zin"),
        timeout=60,
        what="three connectors running",
    )
    try:
        yield qs
    finally:  # the channel's connector stopped first: running, it would declare its queue again
        try:
            zato("conn", "delete", "amqp-channel", qs.path, "--name", "in", check=False)
            wait_for(
                lambda: "amqp-channel:in" not in children(qs.cluster), 60, what="the channel's connector gone"
            )
        finally:
            qs.rabbit.close()  # the RabbitMQ restart test replaces the connection


def _clear(qs) -> None:
    redis.Redis.from_url(REDIS_URL).delete(f"zato:{qs.cluster}:test:received")


def test_amqp_channel_round_trip(cluster):
    _clear(cluster)
    for i in range(50):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"n": i}))
    wait_for(lambda: len(received(cluster.cluster)) >= 50, timeout=60, what="50 messages at the service")
    assert sorted(m["n"] for m in received(cluster.cluster)) == list(range(50))


def internal_calls(qs) -> float:
    """Internal invoke calls the cluster's servers have served, from their /metrics."""
    total = 0.0
    for name in qs.server_names:
        text = requests.get(qs.server_url(name) + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "zato_server_requests_total" and sample.labels.get("kind") == "internal":
                    total += sample.value
    return total


def test_a_busy_channel_sends_messages_together_and_a_failing_one_is_parked_alone(cluster):
    # A backlog meets a channel with prefetch 40: the broker delivers many at once and the
    # connector sends them to servers several per call. A message the service always fails
    # is retried and parked by itself; every other one is recorded and acked.
    _clear(cluster)
    queue = cluster.rabbit.queue(f"zt-cl-batch-{uuid.uuid4().hex[:8]}")
    n, failing = 200, {17, 99, 150}
    for i in range(n):
        cluster.rabbit.publish(queue, json.dumps({"b": i, "fail": i in failing}))
    before = internal_calls(cluster)
    create = ("conn", "create", "amqp-channel", cluster.path, "--name", "batchy", "--def", "rabbit")
    zato(*create, "--queue", queue, "--service", "conn.record", "--prefetch", "40", "--max-deliveries", "2")
    try:
        parked_q = queue + ".zato-parked"
        wait_for(lambda: cluster.rabbit.count(parked_q) == len(failing), timeout=90, what="3 parked")
        wait_for(lambda: cluster.rabbit.count(queue) == 0, timeout=60, what="the queue drained")
        got = {m["b"] for m in received(cluster.cluster) if "b" in m}
        assert got == set(range(n)) - failing
        parked = cluster.rabbit.get_all(parked_q)
        assert sorted(json.loads(body)["b"] for _, body in parked) == sorted(failing)
        for props, _ in parked:
            assert props.headers["x-zato-deliveries"] == 2
            assert "answered 500" in props.headers["x-zato-parked-reason"]
        calls = internal_calls(cluster) - before
        assert calls <= (n + len(failing)) / 2, f"{calls} internal calls for {n} messages"
    finally:
        zato("conn", "delete", "amqp-channel", cluster.path, "--name", "batchy")


def test_messages_over_the_body_limit_together_arrive_and_one_over_it_alone_is_parked(cluster):
    # The servers take at most [limits] max_body (4 MiB) in one call. Six 1 MiB messages,
    # delivered together, go in several batches within it and all reach the service; a 5 MiB
    # one is parked at once with the reason (before: servers closed the connection on it, the
    # connector took that for "no live server" and requeued it, uncounted, forever).
    _clear(cluster)
    queue = cluster.rabbit.queue(f"zt-cl-size-{uuid.uuid4().hex[:8]}")
    mib = 1024 * 1024
    for i in range(6):
        cluster.rabbit.publish(queue, json.dumps({"z": i, "pad": "x" * mib}))
    cluster.rabbit.publish(queue, json.dumps({"z": 99, "pad": "x" * (5 * mib)}))
    create = ("conn", "create", "amqp-channel", cluster.path, "--name", "sized", "--def", "rabbit")
    zato(*create, "--queue", queue, "--service", "conn.record", "--prefetch", "40")
    try:
        parked_q = queue + ".zato-parked"
        wait_for(lambda: cluster.rabbit.count(parked_q) == 1, timeout=60, what="the 5 MiB message parked")
        wait_for(lambda: {m.get("z") for m in received(cluster.cluster)} >= set(range(6)), timeout=60)
        wait_for(lambda: cluster.rabbit.count(queue) == 0, timeout=60, what="the queue drained")
        assert {m.get("z") for m in received(cluster.cluster)} == set(range(6))
        [(props, body)] = cluster.rabbit.get_all(parked_q)
        assert json.loads(body)["z"] == 99
        reason = props.headers["x-zato-parked-reason"]
        assert "over the servers' limit of 4194304 ([limits] max_body)" in reason, reason
        assert props.headers["x-zato-deliveries"] == 1  # parked at its first delivery
    finally:
        zato("conn", "delete", "amqp-channel", cluster.path, "--name", "sized")


def test_parked_messages_replayed_once_the_service_is_mended_reach_it_once_more(cluster):
    """A service with a bug parks every message; nothing put them back. Now `zato conn
    replay-parked` does: while the service still fails, each message replayed is parked again
    and the replay ends (it takes only what was parked when it started); once mended, every
    one reaches the service and the parking queue is empty."""
    _clear(cluster)
    client = redis.Redis.from_url(REDIS_URL)
    client.set(broken_key(cluster.cluster), 1)
    queue = cluster.rabbit.queue(f"zt-cl-replay-{uuid.uuid4().hex[:8]}")
    parked_q = queue + ".zato-parked"
    create = ("conn", "create", "amqp-channel", cluster.path, "--name", "mended", "--def", "rabbit")
    zato(*create, "--queue", queue, "--service", "conn.flaky", "--max-deliveries", "1")
    replay = ("conn", "replay-parked", "amqp-channel", cluster.path, "--name", "mended")
    try:
        for i in range(5):
            cluster.rabbit.publish(queue, json.dumps({"r": i}))
        wait_for(lambda: cluster.rabbit.count(parked_q) == 5, timeout=60, what="five messages parked")
        hint = (
            "amqp-channel:mended: 5 message(s) in its parking queue (the broker's count, whatever restarted"
            " meanwhile); once its service is mended: zato conn replay-parked amqp-channel DIR --name mended"
        )
        wait_for(lambda: hint in zato("cluster", "status", cluster.path, check=False).stdout, 30, what=hint)
        assert zato(*replay).stdout.startswith(
            f"amqp-channel mended: 5 parked message(s) moved back to queue {queue!r};"
        )
        wait_for(lambda: cluster.rabbit.count(parked_q) == 5, timeout=60, what="the five parked again")
        assert received(cluster.cluster) == []

        client.delete(broken_key(cluster.cluster))  # the service is mended
        moved = f"amqp-channel mended: 5 parked message(s) moved back to queue {queue!r}"
        assert zato(*replay).stdout == f"{moved}; 0 left in {parked_q!r}\n"
        wait_for(lambda: len(received(cluster.cluster)) == 5, timeout=60, what="the five at the service")
        assert sorted(m["r"] for m in received(cluster.cluster)) == list(range(5))
        wait_for(lambda: cluster.rabbit.count(queue) == 0, timeout=30, what="all acked")
        assert cluster.rabbit.count(parked_q) == 0
    finally:
        client.delete(broken_key(cluster.cluster))
        zato("conn", "delete", "amqp-channel", cluster.path, "--name", "mended")


def test_amqp_outgoing_round_trip_from_a_service(cluster):
    items = [{"o": i} for i in range(30)]
    for name in cluster.server_names:  # from every server
        r = requests.post(cluster.server_url(name) + "/send-amqp", json={"items": items}, timeout=30)
        assert r.status_code == 200, r.text
    seen: list = []

    def arrived() -> bool:
        seen.extend(cluster.rabbit.get_all(cluster.queue_out))
        return len(seen) >= 60

    wait_for(arrived, timeout=60, what="60 outgoing messages in RabbitMQ")
    assert sorted(json.loads(b)["o"] for _, b in seen) == sorted(list(range(30)) * 2)


def test_zmq_round_trip(cluster):
    _clear(cluster)
    r = requests.post(
        cluster.server_url("server2") + "/send-zmq", json={"items": [{"z": i} for i in range(20)]}, timeout=30
    )
    assert r.status_code == 200, r.text
    wait_for(
        lambda: len(received(cluster.cluster)) >= 20, timeout=60, what="20 ZeroMQ messages at the service"
    )
    assert sorted(m["z"] for m in received(cluster.cluster)) == list(range(20))


def test_stats_show_messages_and_no_password(cluster):
    """Its own 50 messages in and 60 out: a connector started again by an earlier test (or a
    lease moved under a loaded machine) counts from 0, and counting on the earlier tests'
    messages failed once in a whole run (the counters below 50/60 for 15 s)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    names = ["amqp-channel:in", "amqp-outgoing:out", "zmq-channel:zin"]
    _clear(cluster)
    for i in range(50):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"n": i}))
    items = [{"o": i} for i in range(30)]
    for name in cluster.server_names:
        r = requests.post(cluster.server_url(name) + "/send-amqp", json={"items": items}, timeout=30)
        assert r.status_code == 200, r.text
    wait_for(lambda: len(received(cluster.cluster)) >= 50, timeout=60, what="50 messages at the service")
    out: list = []
    wait_for(lambda: len(out.extend(cluster.rabbit.get_all(cluster.queue_out)) or out) >= 60, timeout=60,
             what="60 outgoing messages in RabbitMQ")  # fmt: skip

    def counted() -> bool:
        stats = connector_stats.read(client, cluster.cluster, names)
        return (
            stats["amqp-channel:in"]["messages_out"] >= 50
            and stats["amqp-outgoing:out"]["messages_out"] >= 60
        )

    wait_for(counted, timeout=30, what="connector stats counting the messages")  # written every second
    status = zato("cluster", "status", cluster.path, check=False).stdout
    assert "amqp-channel:in" in status and "running" in status
    # The status view carries each connector's own counters next to the supervisor's state.
    data = json.loads(zato("cluster", "status", cluster.path, "--json", check=False).stdout)
    by_name = {c["name"]: c for c in data["children"]}
    assert by_name["amqp-channel:in"]["messages_out"] >= 50
    assert by_name["amqp-outgoing:out"]["messages_out"] >= 60
    assert by_name["amqp-channel:in"]["state"] == "RUNNING"
    listing = zato("conn", "list", cluster.path).stdout
    assert "password=******" in listing and "guest" not in listing.replace("username=guest", "")


def test_edit_channel_while_messages_flow(cluster):
    _clear(cluster)
    epoch_before = supervisor_epoch(cluster.cluster)
    before = children(cluster.cluster)
    total = 400

    def publish() -> None:
        rabbit = Rabbit()
        for i in range(total):
            rabbit.publish(cluster.queue_in, json.dumps({"e": i}))
            if i % 50 == 0:
                time.sleep(0.05)
        rabbit.conn.close()

    t = threading.Thread(target=publish)
    t.start()
    wait_for(lambda: received(cluster.cluster), timeout=30, what="the first messages")
    zato("conn", "edit", "amqp-channel", cluster.path, "--name", "in", "--prefetch", "5")
    t.join(60)
    wait_for(
        lambda: len({m["e"] for m in received(cluster.cluster)}) == total,
        timeout=90,
        what=f"all {total} messages",
    )
    got = [m["e"] for m in received(cluster.cluster)]
    print(f"edit while flowing: {len(got)} received, {len(got) - len(set(got))} duplicates")
    after = wait_for(lambda: running(cluster.cluster, "amqp-channel:in"), what="channel running again")
    assert after["amqp-channel:in"]["pid"] != before["amqp-channel:in"]["pid"]  # restarted
    if supervisor_epoch(cluster.cluster) != epoch_before:
        # A loaded machine made the holder miss a renewal: every connector restarted with the
        # new epoch, so "only the edited one restarted" cannot be judged in this run.
        print("the lease changed hands during the edit; restart isolation not checked")
        return
    for other in ("amqp-outgoing:out", "zmq-channel:zin"):  # not restarted
        assert after[other]["pid"] == before[other]["pid"]


def test_killed_connector_is_restarted_and_nothing_is_lost(cluster):
    _clear(cluster)
    pid = children(cluster.cluster)["amqp-channel:in"]["pid"]
    for i in range(100):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"k": i}))
    wait_for(lambda: received(cluster.cluster), timeout=30, what="the first messages")
    os.kill(pid, signal.SIGKILL)
    for i in range(100, 200):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"k": i}))

    def restarted() -> dict | None:
        c = children(cluster.cluster).get("amqp-channel:in", {})
        return c if str(c.get("state")).lower() == "running" and c.get("pid") not in (pid, None) else None

    wait_for(restarted, timeout=60, what="the channel connector restarted")
    wait_for(lambda: len({m["k"] for m in received(cluster.cluster)}) == 200, timeout=60, what="200 messages")


def test_deleting_a_channel_stops_its_connector(cluster):
    zato(
        "conn",
        "create",
        "zmq-channel",
        cluster.path,
        "--name",
        "tmp",
        "--address",
        f"tcp://127.0.0.1:{free_port()}",
        "--service",
        "conn.record",
    )
    pid = wait_for(lambda: running(cluster.cluster, "zmq-channel:tmp"), timeout=60)["zmq-channel:tmp"]["pid"]
    zato("conn", "delete", "zmq-channel", cluster.path, "--name", "tmp")
    wait_for(lambda: "zmq-channel:tmp" not in children(cluster.cluster), timeout=60, what="connector gone")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), timeout=30, what=f"pid {pid} gone")
    assert Keys(cluster.cluster).connector_stats("x")  # keys stay in zato/coord


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_admin_api_manages_definitions(cluster):
    url = cluster.server_url("server2") + "/zato/admin/conn"
    auth = cluster.admin_auth
    r = requests.post(
        url + "/zmq-channel",
        json={"name": "api", "address": f"tcp://127.0.0.1:{free_port()}", "service": "conn.record"},
        auth=auth,
        timeout=10,
    )
    assert r.status_code == 201 and r.json()["socket_type"] == "PULL"
    wait_for(
        lambda: running(cluster.cluster, "zmq-channel:api"), timeout=60, what="connector of the API channel"
    )
    r = requests.patch(url + "/zmq-channel/api", json={"socket_type": "PUSH"}, auth=auth, timeout=10)
    assert r.status_code == 400 and "socket_type: 'PUSH' is not one of PULL, SUB" in r.text
    r = requests.get(url + "/amqp-def/nope", auth=auth, timeout=10)
    assert r.status_code == 404 and "no amqp-def named 'nope'" in r.text
    r = requests.get(url, params={"kind": "amqp-def"}, auth=auth, timeout=10)
    assert r.status_code == 200 and r.json()["connections"][0]["password"] == "******"
    assert requests.get(url, timeout=10).status_code == 401
    r = requests.delete(url + "/zmq-channel/api", auth=auth, timeout=10)
    assert r.status_code == 200
    wait_for(lambda: "zmq-channel:api" not in children(cluster.cluster), timeout=60, what="connector stopped")


def test_cli_errors_are_one_clear_line(cluster):
    bad = [
        (
            ("create", "amqp-channel", "--name", "x", "--def", "nope", "--queue", "q", "--service", "s"),
            "zato: error: amqp-channel def: no amqp-def named 'nope'",
        ),
        (
            ("edit", "amqp-channel", "--name", "in", "--prefetch", "many"),
            "zato: error: amqp-channel prefetch: 'many' is not a whole number",
        ),
        (
            ("delete", "amqp-def", "--name", "rabbit"),
            "zato: error: amqp-def 'rabbit' is used by amqp-channel 'in', amqp-outgoing 'out'",
        ),
        (("delete", "zmq-channel", "--name", "ghost"), "zato: error: no zmq-channel named 'ghost'"),
    ]
    for (action, kind, *rest), message in bad:
        proc = zato("conn", action, kind, cluster.path, *rest, check=False)
        assert proc.returncode == 1 and proc.stderr.strip().startswith(message), proc.stderr
        assert "Traceback" not in proc.stderr
    proc = zato(
        "conn", "edit", "amqp-def", cluster.path, "--name", "rabbit", "--password", "-", input="guest\n"
    )
    assert "password=******" in proc.stdout and "guest\n" not in proc.stdout


def test_cli_warns_of_a_service_no_server_has(cluster):
    """A typo in --service is saved (the module may be deployed later) but said at once:
    otherwise the first sign is parked messages or failed requests."""
    queue = cluster.rabbit.queue(f"zt-cl-typo-{uuid.uuid4().hex[:8]}")  # deleted with its parked one
    args = ("--def", "rabbit", "--queue", queue, "--service")
    proc = zato("conn", "create", "amqp-channel", cluster.path, "--name", "typo", *args, "conn.recrod")
    assert "created amqp-channel typo" in proc.stdout
    assert proc.stderr.strip() == (
        f"warning: no service named 'conn.recrod' is deployed in cluster {cluster.cluster}: "
        "its messages fail until a module defining it is (zato deploy)"
    )
    proc = zato("conn", "edit", "amqp-channel", cluster.path, "--name", "typo", "--service", "conn.record")
    assert "updated" in proc.stdout and proc.stderr == ""  # a deployed service: no warning
    zato("conn", "delete", "amqp-channel", cluster.path, "--name", "typo")
    proc = zato(
        "channel", "create", cluster.path, "--name", "typo", "--url-path", "/typo", "--service", "nope"
    )
    assert "requests to it fail until a module defining it is" in proc.stderr
    proc = zato(
        "channel", "create", cluster.path, "--name", "typo", "--url-path", "/typo", "--service", "zato.ping"
    )
    assert proc.stderr == ""  # the servers' own services are known
    zato("channel", "delete", cluster.path, "--name", "typo")
    admin = requests.Session()
    admin.auth = cluster.admin_auth
    base = f"{cluster.server_url('server1')}/zato/admin"
    body = {"name": "typo", "def": "rabbit", "queue": queue, "service": "conn.recrod"}
    r = admin.post(f"{base}/conn/amqp-channel", json=body)
    assert r.status_code == 201 and "'conn.recrod' is deployed" in r.json()["warnings"][0], r.text
    r = admin.patch(f"{base}/conn/amqp-channel/typo", json={"service": "conn.record"})
    assert r.status_code == 200 and "warnings" not in r.json(), r.text
    admin.delete(f"{base}/conn/amqp-channel/typo")
    r = admin.post(f"{base}/channels", json={"name": "typo", "url_path": "/typo", "service": "nope"})
    assert r.status_code == 201 and "requests to it fail" in r.json()["warnings"][0], r.text
    admin.delete(f"{base}/channels/typo")


@pytest.mark.exclusive  # every other test's RabbitMQ connections would drop with it
def test_amqp_channel_loses_nothing_across_a_rabbitmq_restart(cluster):
    """The broker application restarts (every connection drops; durable queues and persistent
    messages survive): the channel connector reconnects on its own and every message arrives."""
    _clear(cluster)
    for i in range(20):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"r": i}))
    wait_for(lambda: len(received(cluster.cluster)) >= 20, timeout=60, what="20 messages before")
    lost = "amqp-channel 'in': connection lost"
    before = _log_tail(cluster).count(lost)
    rabbitmqctl("stop_app")
    try:
        wait_for(
            lambda: _log_tail(cluster).count(lost) > before,
            timeout=30,
            what="the connector to log that the broker went away",
        )
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
    queues = cluster.rabbit.queues
    cluster.rabbit = Rabbit()  # the test's own connection died with the broker
    cluster.rabbit.queues = queues
    for i in range(20, 40):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"r": i}))
    wait_for(
        lambda: {m["r"] for m in received(cluster.cluster)} == set(range(40)),
        timeout=120,
        what="all 40 messages at the service after the restart",
    )


def _log_tail(cluster) -> str:  # noqa: ANN001
    """The last 20 kB of every server's log (the connector logs to its holder's log)."""
    out = []
    for name in cluster.server_names:
        path = os.path.join(cluster.server_dir(name), "logs", "server.log")
        with open(path, errors="replace") as f:
            f.seek(max(0, os.path.getsize(path) - 20000))
            out.append(f.read())
    return "\n".join(out)


def _log_sizes(qs) -> dict[str, int]:  # noqa: ANN001
    return {
        name: os.path.getsize(os.path.join(qs.server_dir(name), "logs", "server.log"))
        for name in qs.server_names
    }


def _log_since(qs, sizes: dict[str, int]) -> str:  # noqa: ANN001
    out = []
    for name in qs.server_names:
        with open(os.path.join(qs.server_dir(name), "logs", "server.log"), errors="replace") as f:
            f.seek(sizes[name])
            out.append(f.read())
    return "\n".join(out)


def test_a_burst_after_the_channel_was_idle_reaches_the_service_without_no_live_server(cluster):
    """The connector keeps connections to the servers alive; a server closes one idle for
    longer than its keepalive (gunicorn's, 2 s). Before, a burst after a quiet spell took those
    closed connections, and retried on another one just as closed: 'no live server answered
    (...: BrokenPipeError ...); message requeued'. Now a stale connection is not reused, and
    one found closed is replaced by a new connection to the same server."""
    _clear(cluster)
    sizes = _log_sizes(cluster)
    for round_ in range(2):
        for i in range(20):  # several calls at once: several pooled connections
            cluster.rabbit.publish(cluster.queue_in, json.dumps({"n": round_ * 20 + i, "wait_ms": 300}))
        expected = 20 * (round_ + 1)
        wait_for(
            lambda n=expected: len(received(cluster.cluster)) >= n, timeout=60, what=f"{expected} messages"
        )
        if round_ == 0:
            time.sleep(4)  # idle for longer than the servers' keepalive: they close the connections
    wait_for(lambda: cluster.rabbit.count(cluster.queue_in) == 0, what="all acked")
    assert sorted(m["n"] for m in received(cluster.cluster)) == list(range(40))
    log = _log_since(cluster, sizes)
    assert "no live server" not in log


def _scrape(url: str) -> dict[str, tuple[str, dict]]:
    """{documented name: (type, {sorted labels: value})} of one /metrics answer."""
    text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
    out = {}
    for family in text_string_to_metric_families(text):
        values = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        out[exposed_name(family)] = (family.type, values)
    return out


def _sample(qs, metric: str, connector: str) -> float | None:  # noqa: ANN001
    labels = (("connector", connector), ("kind", connector.partition(":")[0]))
    return _scrape(qs.server_url("server1")).get(metric, ("", {}))[1].get(labels)


def test_a_restarted_connector_counts_on_as_counters_and_every_server_shows_the_same(cluster):
    """Before, zato_connector_parked and zato_connector_restarts were gauges counting since a
    process started: a restart or a takeover set them back (parked 1 -> 0), which Prometheus
    reads as a fall, not a reset. Now they are counters, _total, with the same labels after
    the restart. And every cluster-wide metric (docs/metrics.md) reads the same on both servers."""
    queue = cluster.rabbit.queue(f"zt-cl-metr-{uuid.uuid4().hex[:8]}")
    name = "amqp-channel:metr"
    create = ("conn", "create", "amqp-channel", cluster.path, "--name", "metr", "--def", "rabbit")
    zato(*create, "--queue", queue, "--service", "conn.record")
    try:
        pid = wait_for(lambda: running(cluster.cluster, name), timeout=60, what="the channel running")[name][
            "pid"
        ]
        cluster.rabbit.publish(queue, b"not JSON")  # poison for a JSON channel: parked at once
        wait_for(lambda: _sample(cluster, "zato_channel_parking_queue", name) == 1, what="the message parked")
        scraped = _scrape(cluster.server_url("server1"))
        for metric in ("zato_connector_parked_total", "zato_connector_restarts_total"):
            assert scraped.get(metric, ("absent",))[0] == "counter", f"{metric}: {scraped.get(metric)}"
        wait_for(lambda: _sample(cluster, "zato_connector_parked_total", name) == 1, what="parked counted")
        assert _sample(cluster, "zato_connector_restarts_total", name) == 0

        os.kill(pid, signal.SIGKILL)

        def restarted() -> bool:
            return (
                _sample(cluster, "zato_connector_restarts_total", name) == 1
                and _sample(cluster, "zato_connector_parked_total", name) == 0  # a reset: the new process
                and _sample(cluster, "zato_channel_parking_queue", name) == 1  # the broker's count stays
            )

        wait_for(restarted, timeout=60, what="the restart counted and the new process's counters")
        _every_server_shows_the_same(cluster)
    finally:
        zato("conn", "delete", "amqp-channel", cluster.path, "--name", "metr")


def _every_server_shows_the_same(qs) -> None:  # noqa: ANN001
    """Both servers scraped at once show every cluster-wide metric with the same values (a
    scrape may straddle a connector's stats write: tried again then, a few times)."""
    docs = documented(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "metrics.md"))
    wide = {m for m, (_, scope) in docs.items() if scope == "cluster"}
    differ: dict = {}
    for _ in range(5):
        scrapes = list(ThreadPoolExecutor(2).map(_scrape, [qs.server_url(n) for n in qs.server_names]))
        first, second = ({m: v for m, v in s.items() if m in wide} for s in scrapes)
        assert set(first) == wide, f"documented as cluster-wide but not exposed: {wide - set(first)}"
        differ = {m: (first[m], second.get(m)) for m in first if first[m] != second.get(m)}
        if not differ:
            return
        time.sleep(0.5)
    raise AssertionError(f"cluster-wide metrics differ between servers: {differ}")


STUCK_MODULE = """
from zato.service import Service


class SendStuck(Service):
    name = "conn.send-stuck"

    def handle(self):
        self.outgoing.amqp.send({"stuck": True}, "stuck")
"""


def test_messages_waiting_for_an_inactive_outgoing_connection_stay_in_metrics(cluster, tmp_path):
    """Before: zato_outgoing_queue_depth had a series only for the holder's running outgoing
    connectors, so messages queued for a connection made inactive (its broker away, say) were
    in no metric: an alert on the depth went quiet while they waited."""
    module = tmp_path / "stuck_services.py"
    module.write_text(STUCK_MODULE)
    zato("deploy", cluster.path, str(module))
    conn = ("conn", "create")
    zato(
        *conn,
        "amqp-def",
        cluster.path,
        "--name",
        "nowhere",
        "--port",
        str(free_port()),
        "--password",
        "guest",
    )
    zato(*conn, "amqp-outgoing", cluster.path, "--name", "stuck", "--def", "nowhere", "--routing-key", "x")
    zato("channel", "create", cluster.path, "--name", "send-stuck", "--url-path", "/send-stuck",
         "--service", "conn.send-stuck")  # fmt: skip
    waiting = (
        ("connection", "stuck"),
        ("connector", "amqp-outgoing:stuck"),
        ("kind", "amqp-outgoing"),
        ("list", "waiting"),
    )

    def depth(server: str) -> float | None:
        return _scrape(cluster.server_url(server)).get("zato_outgoing_queue_depth", ("", {}))[1].get(waiting)

    try:
        url = cluster.server_url("server1") + "/send-stuck"
        wait_for(lambda: requests.post(url, json={}, timeout=10).ok, what="the channel served")
        assert requests.post(url, json={}, timeout=10).ok
        wait_for(lambda: depth("server1") == 2, what="two messages waiting (the broker is away)")
        zato("conn", "edit", "amqp-outgoing", cluster.path, "--name", "stuck", "--active", "false")
        wait_for(lambda: "amqp-outgoing:stuck" not in children(cluster.cluster), what="its connector stopped")
        assert [depth(server) for server in cluster.server_names] == [2, 2]
    finally:
        zato("conn", "delete", "amqp-outgoing", cluster.path, "--name", "stuck", "--force")
        zato("conn", "delete", "amqp-def", cluster.path, "--name", "nowhere")
        zato("channel", "delete", cluster.path, "--name", "send-stuck")
    assert depth("server1") is None  # deleted: its series goes (the messages left are in Redis)


def test_an_outgoing_connection_made_inactive_says_how_many_messages_wait_for_it(cluster):
    """Before: `--active false` (or the admin API's PATCH) on an outgoing connection with
    messages waiting in Redis said only "updated", and `zato cluster status` showed nothing:
    its connector stopped and the messages sat there with no word. Now the edit and the status
    say how many wait and that they go out once it is active again."""
    zato("conn", "create", "amqp-def", cluster.path, "--name", "paused-def", "--port", str(free_port()))
    zato("conn", "create", "amqp-outgoing", cluster.path, "--name", "paused", "--def", "paused-def")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    queue = OutQueue(client, cluster.cluster, "amqp", "paused")
    url = cluster.server_url("server1") + "/zato/admin/conn/amqp-outgoing/paused"
    try:
        for n in range(2):  # as a service's self.outgoing.amqp.send does, its broker away
            queue.push(
                encode({"n": n}, routing_key="x", key=outgoing_key(cluster.cluster_secret, cluster.cluster))
            )
        said = "amqp-outgoing 'paused' is inactive: 2 message(s) services sent through it wait in Redis"
        r = requests.patch(url, json={"is_active": False}, auth=cluster.admin_auth, timeout=10)
        assert r.status_code == 200 and r.json()["warnings"] == [f"{said} and go out once it is active again"]
        edited = zato("conn", "edit", "amqp-outgoing", cluster.path, "--name", "paused", "--active", "false")
        assert edited.stderr == f"warning: {said} and go out once it is active again\n"
        status = zato("cluster", "status", cluster.path, check=False).stdout
        assert "amqp-outgoing:paused: 2 message(s) waiting; the connection is inactive" in status, status
        edited = zato("conn", "edit", "amqp-outgoing", cluster.path, "--name", "paused", "--active", "true")
        assert edited.stderr == ""
        status = zato("cluster", "status", cluster.path, check=False).stdout
        assert "the connection is inactive" not in status
    finally:
        zato("conn", "delete", "amqp-outgoing", cluster.path, "--name", "paused", "--force")
        zato("conn", "delete", "amqp-def", cluster.path, "--name", "paused-def")
        client.close()
