"""Helpers for the connector tests (AMQP, ZeroMQ): a server directory without a running
server, a real HTTP server standing in for the internal invoke endpoint, connector processes
started by pid, and RabbitMQ queues that are deleted afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pika
import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, stop_process, wait_for  # noqa: F401 - re-exported
from zato.common import batch
from zato.common.signing import REFUSED_HEADER, SIGNATURE_HEADER, STAMP_HEADER, verify
from zato.config.component import SERVER, write_marker
from zato.config.settings import RedisSettings
from zato.coord import membership
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.lease import read_supervisor_status
from zato.coord.signing import member_key, outgoing_key, sign_outgoing
from zato.odb import api as odb_api
from zato.odb.engine import ODB, create_schema

SECRET = "s3cret-for-tests"


def out_key(cluster: str, secret: str = SECRET) -> bytes:
    """The key the servers of `cluster` sign outgoing messages with, which its outgoing
    connectors verify (zato.coord.signing.outgoing_key)."""
    return outgoing_key(secret, cluster)


def signed(cluster: str, raw: str, kind: str = "amqp", secret: str = SECRET) -> str:
    """`raw` (a JSON object, as json.dumps writes it) signed as the servers of `cluster` sign an
    outgoing message of queue kind `kind`: what another producer holding the key stores."""
    return sign_outgoing(outgoing_key(secret, cluster), kind, raw)


SERVER_CONF = """[main]
name = {name}
host = 127.0.0.1
port = {port}
workers = 1

[cluster]
name = {cluster}

[odb]
url = {odb_url}

[kvdb]
url = {redis_url}

[auth]
admin_username = admin
admin_password = admin-pw
cluster_secret = {secret}
"""


def make_server_dir(
    base: str, cluster: str, name: str = "server1", port: int | None = None, redis_url: str = REDIS_URL
) -> str:
    """A server directory (config and a SQLite ODB with its schema) for connector processes;
    `redis_url`: where its Redis is (a proxy in front of the real one)."""
    path = os.path.join(base, name)
    os.makedirs(os.path.join(path, "config"), exist_ok=True)
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    odb_url = f"sqlite:///{os.path.join(base, 'odb.sqlite')}"
    with open(os.path.join(path, "config", "server.conf"), "w") as f:
        f.write(
            SERVER_CONF.format(
                name=name,
                port=port or free_port(),
                cluster=cluster,
                odb_url=odb_url,
                redis_url=redis_url,
                secret=SECRET,
            )
        )
    write_marker(path, SERVER)
    odb = ODB(odb_url)
    create_schema(odb.engine)
    odb.dispose()
    return path


def set_epoch(cluster: str, epoch: int) -> None:
    redis.Redis.from_url(REDIS_URL).set(Keys(cluster).epoch, epoch)


class FakeServer:
    """A real HTTP server implementing POST /zato/internal/invoke/{service} the way servers do
    (secret, epoch against Redis), registered as a live member of the cluster. Each call is
    recorded; `fail` makes a service answer 500, `reject` 400, `unavailable` 503; a service in
    `held` waits until `release` is set before answering, and `active`/`peak` count such calls
    running at once. It answers a
    batch of invocations and messages with their metadata (zato.common.batch) with 404, as a
    server from before batches would; with `serves_messages` it runs each message of a call to
    invoke-messages as a server does (recorded in `calls`, its metadata in `metas`) and answers
    with their results, or with the next of `unusable_answers` (status, body) while any is left
    (a server whose answer cannot be used after its services ran). A service in `cut` runs,
    then its answer's headers and half its body are sent and the connection closed (the
    server's worker killed after the service ran); `cut` applies to invoke-messages too."""

    def __init__(self, cluster: str, name: str = "fake1"):
        self.cluster, self.name = cluster, name
        self.calls: list[tuple[str, bytes]] = []
        self.fail: set[str] = set()
        self.reject: set[str] = set()  # services that answer 400 (bad input)
        # services answered 503, as a server whose Redis is away answers (unavailable_calls: how many)
        self.unavailable: set[str] = set()
        self.unavailable_calls = 0
        self.secret = SECRET  # what it checks calls with (another: as a server of another release)
        self.old_release = False  # refuses as servers did before REFUSED_HEADER (their 401's details)
        self.held: set[str] = set()
        self.release = threading.Event()
        self.active = self.peak = 0
        self.batches = 0  # calls to the batch endpoint, which this stand-in does not have
        self.serves_messages = False
        self.metas: list[bytes] = []  # the metadata of each message run through invoke-messages
        self.unusable_answers: list[tuple[int, bytes]] = []
        self.cut: set[str] = set()  # services whose answer is cut after the headers
        self._count = threading.Lock()
        self.redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.httpd.daemon_threads = True
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, daemon=True),
            threading.Thread(target=self._heartbeat, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def hold(self) -> None:
        with self._count:
            self.active += 1
            self.peak = max(self.peak, self.active)
        self.release.wait(60)
        with self._count:
            self.active -= 1

    def bodies(self, service: str) -> list[bytes]:
        return [b for s, b in list(self.calls) if s == service]

    def _heartbeat(self) -> None:
        me = membership.Member(self.name, "127.0.0.1", self.port, os.getpid(), time.time())
        while not self._stop.is_set():
            membership.announce(self.redis, self.cluster, me, 3.0, member_key(SECRET, self.cluster))
            self._stop.wait(0.5)
        membership.withdraw(self.redis, self.cluster, self.name)

    def _handler(self):  # noqa: ANN202
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.serves_messages and self.path.startswith(batch.MESSAGES_PREFIX):
                    self._messages(body)
                    return
                if self.path.startswith(("/zato/internal/invoke-many/", "/zato/internal/invoke-messages/")):
                    fake.batches += 1  # as a server from before batches: no such path
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                service = unquote(self.path.rsplit("/", 1)[-1])
                epoch = int(fake.redis.get(Keys(fake.cluster).epoch) or 0)
                given = self.headers.get(SIGNATURE_HEADER, "")
                claimed = int(self.headers.get("X-Zato-Epoch", -1))
                stamp = self.headers.get(STAMP_HEADER, "")
                if not verify(
                    fake.secret, given, claimed, service, self.headers.get("X-Zato-CID", ""), stamp, body
                ):
                    status = 401
                elif int(self.headers.get("X-Zato-Epoch", -1)) < epoch:
                    status = 409
                elif service in fake.unavailable:
                    fake.unavailable_calls += 1
                    status = 503
                elif service in fake.fail:
                    status = 500
                elif service in fake.reject:  # as a service answers bad input
                    fake.calls.append((service, body))
                    status = 400
                elif service in fake.held:
                    fake.hold()
                    fake.calls.append((service, body))
                    status = 200
                else:
                    fake.calls.append((service, body))
                    status = 200
                out = json.dumps({"status": status}).encode()
                if status == 401 and fake.old_release:
                    env = {"details": "bad or missing X-Zato-Signature", "result": "ZATO_ERROR", "cid": "K1"}
                    out = json.dumps({"zato_env": env}).encode()
                self.send_response(status)
                if status in (401, 409) and not fake.old_release:  # as a server says it refused the call
                    self.send_header(REFUSED_HEADER, "credentials" if status == 401 else "stale")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self._write(service, out)

            def _write(self, service: str, out: bytes) -> None:
                if service not in fake.cut:
                    self.wfile.write(out)
                    return
                self.wfile.write(out[: len(out) // 2])
                self.wfile.flush()
                self.close_connection = True  # the rest never comes: the connection is closed

            def _messages(self, body: bytes) -> None:
                service = unquote(self.path.rsplit("/", 1)[-1])
                given, stamp = self.headers.get(SIGNATURE_HEADER, ""), self.headers.get(STAMP_HEADER, "")
                claimed, cid = int(self.headers.get("X-Zato-Epoch", -1)), self.headers.get("X-Zato-CID", "")
                if not verify(fake.secret, given, claimed, batch.messages_service(service), cid, stamp, body):
                    status, out = 401, b"{}"
                else:
                    messages = batch.decode_messages(body)
                    for meta, one in messages:
                        fake.calls.append((service, one))
                        fake.metas.append(meta)
                    status, out = 200, batch.encode_results([(200, "", "")] * len(messages))
                    if fake.unusable_answers:
                        status, out = fake.unusable_answers.pop(0)
                self.send_response(status)
                if status == 401:
                    self.send_header(REFUSED_HEADER, "credentials")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self._write(service, out)

        return Handler

    def close(self) -> None:
        self._stop.set()
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(5)
        self.redis.close()


def start_connector(
    server_dir: str, kind: str, name: str, epoch: int = 1, stack_bytes: int | None = None
) -> subprocess.Popen:
    """The connector process; `stack_bytes`: its stack limit (ulimit -s), as a host may set it."""
    env = dict(os.environ, ZATO_EPOCH=str(epoch), ZATO_SERVER_DIR=server_dir)

    def limit_stack() -> None:
        if stack_bytes is not None:
            resource.setrlimit(resource.RLIMIT_STACK, (stack_bytes, stack_bytes))

    return subprocess.Popen(
        [sys.executable, "-m", "zato.connector.run", server_dir, kind, name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=limit_stack if stack_bytes is not None else None,  # noqa: PLW1509 - setrlimit only
    )


def log_text(server_dir: str) -> str:
    try:
        with open(os.path.join(server_dir, "logs", "server.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl against the local broker (the one every AMQP test shares); its output."""
    argv = ["rabbitmqctl", "-q", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=180).stdout.strip()


class Rabbit:
    """A blocking pika connection for tests; every queue declared through it is deleted on close."""

    def __init__(self):
        # No heartbeats: tests wait long without pumping this connection.
        self.conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, heartbeat=0))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.queues: list[str] = []

    def queue(self, name: str, arguments: dict | None = None) -> str:
        self.ch.queue_declare(name, durable=True, arguments=arguments)
        self.queues += [name, name + ".zato-parked"]
        return name

    def publish(self, queue: str, body: bytes | str, **props) -> None:
        self.ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, **props))

    def count(self, queue: str) -> int:
        """Messages ready in `queue`; -1 while it does not exist."""
        try:
            return self.ch.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            self.ch = self.conn.channel()
            self.ch.confirm_delivery()
            return -1

    def get_all(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        out = []
        while True:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    def close(self) -> None:
        """Delete every queue declared through it, on a fresh channel if the broker closed the
        test's one (a refused declare or publish), or on a new connection if the broker dropped
        this one (a restart of RabbitMQ meanwhile), then close the connection."""
        try:
            self._delete_queues()
        except pika.exceptions.AMQPConnectionError:
            self.conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, heartbeat=0))
            self.ch = self.conn.channel()
            self._delete_queues()
        with contextlib.suppress(pika.exceptions.AMQPConnectionError):  # dropped since: closed all the same
            if self.conn.is_open:
                self.conn.close()

    def _delete_queues(self) -> None:
        for q in self.queues:
            if not self.ch.is_open:
                self.ch = self.conn.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):  # replaced for the next
                self.ch.queue_delete(q)


def wait_exit(proc: subprocess.Popen, timeout: float = 30) -> int:
    wait_for(lambda: proc.poll() is not None, timeout=timeout, what=f"pid {proc.pid} to exit")
    return proc.returncode


class TCPProxy:
    """A TCP forwarder on 127.0.0.1:port to RabbitMQ, started and stopped by the test, so the
    broker can "go away" without touching the machine's shared RabbitMQ."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 5672)):
        self.port, self.target = port, target
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        ls.settimeout(0.1)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while self._listener is ls:
            try:
                client, _ = ls.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                client = self.wrap(client)
                client.settimeout(None)
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            self.forward(client, upstream)

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        """Start copying both ways (LostReplyProxy: looking at what goes by)."""
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def wrap(self, client: socket.socket) -> socket.socket:
        """The accepted client socket as the proxy talks to it (TLSProxy: wrapped in TLS)."""
        return client

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, gate: threading.Event | None = None) -> None:
        """Copy src to dst until either ends; with `gate`, each chunk waits until it is set."""
        try:
            while data := src.recv(65536):
                if gate is not None:
                    gate.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        if self._listener is not None:
            ls, self._listener = self._listener, None
            with contextlib.suppress(OSError):
                ls.shutdown(socket.SHUT_RDWR)
            ls.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class HoldingProxy(TCPProxy):
    """A forwarder (to Redis, say) that holds a client's chunk for which `holds(data)` is true,
    and all after it on that connection, until `release` is set (`hung` says one was held);
    `heard(data)` sees each chunk coming back. What Redis does for that one call alone: hang."""

    def __init__(self, port: int, target: tuple[str, int]):
        super().__init__(port, target)
        self.hung = threading.Event()
        self.release = threading.Event()

    def holds(self, data: bytes) -> bool:
        return False

    def heard(self, data: bytes) -> None:
        """A chunk from upstream, on its way to the client."""

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        upstream.settimeout(None)
        threading.Thread(target=self._to_upstream, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._to_client, args=(upstream, client), daemon=True).start()

    def _to_upstream(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if self.holds(data):
                    self.hung.set()
                    self.release.wait()
                    return
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client, upstream)

    def _to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
                self.heard(data)
        except OSError:
            pass
        finally:
            _shut(client, upstream)


def _shut(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


SERVICES = '''
import json
import time
import redis
from zato.service import Service

_redis = {}


def received_key(cluster):
    return f"zato:{cluster}:test:received"


class Record(Service):
    """Records every payload it gets (the test reads them back)."""
    name = "conn.record"

    def handle(self):
        payload = self.request.payload
        client = _redis.get("c") or _redis.setdefault("c", redis.Redis.from_url(REDIS_URL))
        # Decided as the call starts: one a test's connector left running (killed) fails even
        # if the switch is gone by the time it would record.
        switch = payload.get("fail_while") if isinstance(payload, dict) else None
        failing = bool(switch) and client.exists(switch)
        if isinstance(payload, dict) and payload.get("wait_ms"):
            time.sleep(payload["wait_ms"] / 1000)  # bench/amqp --service-wait-ms: a service doing I/O
        if isinstance(payload, dict) and payload.get("fail"):
            raise ValueError("told to fail")  # a message this service can never take
        if failing:
            time.sleep(payload.get("fail_after_ms", 0) / 1000)  # as a system away that times out
            raise ValueError("told to fail for now")  # as while a system it needs is away
        client.rpush(received_key(self.server.cluster), json.dumps(payload))


def broken_key(cluster):
    return f"zato:{cluster}:test:broken"


class Flaky(Service):
    """Fails while the test's Redis flag is set (a bug), records its payload once it is not."""
    name = "conn.flaky"

    def handle(self):
        client = _redis.get("c") or _redis.setdefault("c", redis.Redis.from_url(REDIS_URL))
        if client.exists(broken_key(self.server.cluster)):
            raise ValueError("broken until the test mends it")
        client.rpush(received_key(self.server.cluster), json.dumps(self.request.payload))


class SendAMQP(Service):
    name = "conn.send-amqp"

    def handle(self):
        for item in self.request.payload["items"]:
            self.outgoing.amqp.send(item, "out")


class SendZMQ(Service):
    name = "conn.send-zmq"

    def handle(self):
        for item in self.request.payload["items"]:
            self.outgoing.zmq.send(item, "zout")
'''


def broken_key(cluster: str) -> str:
    """While this Redis key exists, conn.flaky (services_source) fails every message."""
    return f"zato:{cluster}:test:broken"


def services_source() -> str:
    """A module of test services: conn.record (records payloads in Redis; fails on {"fail": true},
    and on {"fail_while": KEY} when Redis has KEY as the call starts, after "fail_after_ms"),
    conn.flaky (fails while Redis key zato:CLUSTER:test:broken exists, then records as conn.record),
    conn.send-amqp and conn.send-zmq (send their payload's items through outgoing connections)."""
    return f"REDIS_URL = {REDIS_URL!r}\n" + SERVICES


@contextlib.contextmanager
def sqlite_odb_and_redis(tmp_path, prefix: str):  # noqa: ANN001, ANN201 - a pytest tmp_path; yields a tuple
    """(ODB, cluster, Redis client): a real SQLite ODB under tmp_path holding a cluster of its
    own (named after `prefix`) and a client of the shared Redis; its keys go at the end."""
    db = ODB(f"sqlite:///{tmp_path / 'odb.db'}")
    create_schema(db.engine)
    cluster = cluster_name(prefix)
    odb_api.ensure_cluster(db, cluster)
    client = connect(RedisSettings(url=REDIS_URL))
    try:
        yield db, cluster, client
    finally:
        client.close()
        db.dispose()
        cleanup_redis(cluster)


def zmq_channel_handed_over(db, client, cluster: str, name: str, port: int, take: int = 0):  # noqa: ANN001, ANN201 - an ODB, a client; a Handoff
    """A ZeroMQ channel `name` in the ODB and Redis, a connector of epoch 3 registered, m1 and
    m2 handed over, and the first `take` of them taken (moved to processing)."""
    from zato.connector import definitions  # noqa: PLC0415 - only the ZeroMQ tests need it
    from zato.coord.handoff import Handoff  # noqa: PLC0415

    values = {"name": name, "address": f"tcp://127.0.0.1:{port}", "service": "s"}
    definitions.create(db, client, cluster, "zmq-channel", values)
    handoff = Handoff(client, cluster, "zmq-channel", name, epoch=3)
    handoff.beat()  # a connector of it registered
    assert handoff.hand_over(["m1", "m2"])
    if take:
        assert handoff.take_many(take) == ["m1", "m2"][:take]
    return handoff


def running_pids(cluster: str) -> dict[str, int]:
    """KIND:NAME -> pid of each connector the lease holder's supervisor runs now (RUNNING in
    the status it keeps in Redis); {} when no server holds the lease."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        status = read_supervisor_status(client, cluster) or {}
    finally:
        client.close()
    return {
        c["name"]: c["pid"] for c in status.get("children", []) if str(c.get("state")).upper() == "RUNNING"
    }
