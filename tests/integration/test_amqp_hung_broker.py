"""A broker that takes the TCP connection and never answers the AMQP handshake (a hung broker,
or another service on its port): the AMQP connectors say so and try again, in the same process,
until the definition points at a broker that answers; the CLI's replay ends with one line."""

from __future__ import annotations

import json
import socket
import threading
import uuid

import redis
import requests

from tests.conn_support import Rabbit, services_source
from tests.support import REDIS_URL, cluster_name, wait_for, zato
from zato.coord import connector_stats
from zato.coord.lease import read_supervisor_status

CONNECTORS = ("amqp-channel:in", "amqp-outgoing:out")
HANDSHAKE = 2  # the amqp-def's handshake_timeout (seconds; 15 by default): each wait for it is this
SAID = (
    f"Timeout during AMQP handshake (none within {HANDSHAKE} s: the port takes the connection but nothing"
    " answers as an AMQP broker; a hung broker, or another service on that port)"
)


class SilentPort:
    """Accepts every connection on a port of its own, reads what comes and never writes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket) -> None:
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def children(cluster: str) -> dict[str, dict]:
    status = read_supervisor_status(redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster) or {}
    return {c["name"]: c for c in status.get("children", [])}


def stats(cluster: str) -> dict[str, dict]:
    return connector_stats.read(
        redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster, list(CONNECTORS)
    )


def received(cluster: str) -> list:
    client = redis.Redis.from_url(REDIS_URL)
    return [json.loads(x) for x in client.lrange(f"zato:{cluster}:test:received", 0, -1)]


def test_connectors_retry_a_broker_that_never_answers_and_flow_once_pointed_at_one(quickstart, tmp_path):
    """Before, the channel's handshake timeout (pika's AMQPConnectorStackTimeout, not an
    AMQPError) ended its process: a traceback in stdout.log and a restart by the supervisor
    every 15 s, `zato cluster status` saying only 'exited with code 1'. The definition's
    handshake_timeout is HANDSHAKE here, so the test waits seconds for each timeout, not 15."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("hung"))
    silent = SilentPort()
    rabbit = Rabbit()
    try:
        qs.start()
        module = tmp_path / "conn_services.py"
        module.write_text(services_source())
        zato("deploy", qs.path, str(module))
        queue_in = rabbit.queue(f"zt-hung-in-{uuid.uuid4().hex[:8]}")
        queue_out = rabbit.queue(f"zt-hung-out-{uuid.uuid4().hex[:8]}")
        zato("channel", "create", qs.path, "--name", "send-amqp", "--url-path", "/send-amqp",
             "--service", "conn.send-amqp")  # fmt: skip
        conn = ("conn", "create")
        zato(*conn, "amqp-def", qs.path, "--name", "hung", "--port", str(silent.port), "--password", "guest",
             "--handshake-timeout", str(HANDSHAKE))  # fmt: skip
        zato(*conn, "amqp-channel", qs.path, "--name", "in", "--def", "hung", "--queue", queue_in,
             "--service", "conn.record")  # fmt: skip
        zato(*conn, "amqp-outgoing", qs.path, "--name", "out", "--def", "hung", "--routing-key", queue_out)

        def failed_once() -> bool:  # a handshake timed out and was said, or a connector restarted
            found = children(qs.cluster)
            if any(found.get(name, {}).get("restarts") for name in CONNECTORS):
                return True
            now = stats(qs.cluster)
            return all(SAID in (now.get(name, {}).get("last_error") or "") for name in CONNECTORS)

        wait_for(failed_once, timeout=120, interval=0.5, what="both connectors to fail a handshake")
        found = children(qs.cluster)
        assert [found[name]["restarts"] for name in CONNECTORS] == [0, 0], found
        for name, one in stats(qs.cluster).items():
            assert one["state"] == "reconnecting", (name, one)
            assert one["last_error"].startswith(
                f"cannot connect to {'AMQP broker ' if name.startswith('amqp-channel') else ''}"
                f"amqp://guest@127.0.0.1:{silent.port}/ (definition 'hung'): "
            ), one
        status = zato("cluster", "status", qs.path, check=False).stdout
        lines = [line for line in status.splitlines() if line.startswith(CONNECTORS)]
        assert len(lines) == 2 and all(
            "RUNNING/reconnecting" in line and SAID[:40] in line for line in lines
        ), status
        assert "Traceback" not in qs.server_logs("*.log")

        # the CLI's replay of the channel's parked messages: one line, within the handshake timeout
        replay = zato(
            "conn", "replay-parked", "amqp-channel", qs.path, "--name", "in", check=False, timeout=60
        )
        assert replay.returncode == 1 and replay.stdout == "", replay
        assert replay.stderr == (
            f"zato: error: amqp-channel in: cannot connect to the AMQP broker amqp://guest@127.0.0.1:{silent.port}/"
            f" (definition 'hung'): AMQPConnectorStackTimeout: {SAID}; nothing moved\n"
        )

        # pointed at the broker: messages flow both ways
        zato("conn", "edit", "amqp-def", qs.path, "--name", "hung", "--host", "127.0.0.1", "--port", "5672")
        for i in range(5):
            rabbit.publish(queue_in, json.dumps({"n": i}))
        wait_for(lambda: sorted(m["n"] for m in received(qs.cluster)) == list(range(5)), timeout=60,
                 what="5 messages through the channel")  # fmt: skip
        items = [{"o": i} for i in range(5)]
        r = requests.post(qs.server_url("server1") + "/send-amqp", json={"items": items}, timeout=30)
        assert r.status_code == 200, r.text
        seen: list = []

        def arrived() -> bool:
            seen.extend(rabbit.get_all(queue_out))
            return len(seen) >= 5

        wait_for(arrived, timeout=60, what="5 outgoing messages in RabbitMQ")
        assert sorted(json.loads(b)["o"] for _, b in seen) == list(range(5))
        assert "Traceback" not in qs.server_logs("*.log")
    finally:
        silent.close()
        qs.close()  # before the queues go: a running channel would declare its queue again
        rabbit.close()
