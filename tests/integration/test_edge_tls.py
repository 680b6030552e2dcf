"""TLS with real processes: `zato quickstart create --tls` (private CA, files mode 600), the LB
terminating TLS (HTTP/2 by ALPN), `zato start` refusing a mismatched key with one line before
HAProxy is touched, and a server whose Redis is reached over rediss:// (a local redis-server
started with TLS by the test, on a free port)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys

import pytest
import redis
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import free_port, stop_process, wait_for, zato
from zato.common import tls
from zato.common.pidfile import read_pidfile


def alpn(port: int, ca: str) -> str | None:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        return s.selected_alpn_protocol()


def test_quickstart_tls_round_trip_through_the_lb_and_a_mismatched_key_stops_start(quickstart):
    qs = quickstart(servers=1, tls=True)
    for path in (
        qs.ca_file,
        os.path.join(qs.path, "tls", "ca-key.pem"),
        os.path.join(qs.lb_dir, "config", "lb.pem"),
    ):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    qs.start()
    resp = requests.get(qs.lb_url + "/zato/ping", verify=qs.ca_file, timeout=10)
    assert resp.status_code == 200 and resp.json()["zato_env"]["result"] == "ZATO_OK"
    assert alpn(qs.lb_port, qs.ca_file) == "h2"
    with pytest.raises(requests.exceptions.SSLError):  # the CA is private: not trusted by default
        requests.get(qs.lb_url + "/zato/ping", timeout=10)

    zato("stop", qs.lb_dir)
    bundle = os.path.join(qs.lb_dir, "config", "lb.pem")
    with open(bundle, "rb") as f:
        data = f.read()
    other_key = tls.key_pem(ec.generate_private_key(ec.SECP256R1()))
    with open(bundle, "wb") as f:
        f.write(data[: data.index(b"-----BEGIN PRIVATE KEY")] + other_key)
    started = zato("start", qs.lb_dir, check=False)
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and "the private key does not match the certificate" in lines[0], started.stderr
    assert not read_pidfile(os.path.join(qs.lb_dir, "work", "haproxy.pid")).alive


@pytest.fixture
def tls_redis(tmp_path):
    """redis-server with TLS only (port 0 for plain) on a free port, certificates from our CA."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    ca = tls.new_ca("test redis CA")
    ca_file, _ = tls.write_ca(str(tmp_path / "ca"), ca)
    cert, key = tls.issue(ca, "localhost", ["localhost", "127.0.0.1"])
    cert_file, key_file = tmp_path / "redis.crt", tmp_path / "redis.key"
    cert_file.write_bytes(tls.cert_pem(cert))
    key_file.write_bytes(tls.key_pem(key))
    port = free_port()
    argv = ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert_file),
            "--tls-key-file", str(key_file), "--tls-ca-cert-file", ca_file, "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca_file}"
    wait_for(lambda: redis.Redis.from_url(url).ping(), 20, what="redis-server with TLS")
    yield url
    stop_process(proc)


def test_a_server_uses_redis_over_tls_when_the_url_asks_for_it(quickstart, tls_redis):
    qs = quickstart(servers=1, lb=False, extra_conf={"kvdb": {"url": tls_redis}})
    qs.start()
    assert requests.get(qs.server_url("server1") + "/zato/ping", timeout=10).ok
    client = redis.Redis.from_url(tls_redis, decode_responses=True)
    wait_for(lambda: client.keys(f"zato:{qs.cluster}:*"), 20, what="the server's membership in the TLS Redis")
    status = zato("cluster", "status", qs.path, "--json", check=False)
    assert '"server1"' in status.stdout
    # The same URL without TLS cannot talk to it: the data really went over TLS.
    plain = tls_redis.replace("rediss://", "redis://").split("?")[0]
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(plain, socket_timeout=2).ping()


def test_postgresql_sslmode_from_the_url_reaches_the_driver(tmp_path):
    from tests.support import PG_URL

    url = PG_URL + ("&" if "?" in PG_URL else "?") + "sslmode=require"
    result = subprocess.run(
        [sys.executable, "-m", "zato", "quickstart", "create", str(tmp_path / "q"), "--odb", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The shared PostgreSQL has no TLS: with sslmode=require the driver itself refuses, in one line.
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "SSL was required" in lines[0] and "postgres:postgres@" not in lines[0]


def test_amqp_definition_tls_flag_talks_tls_to_the_broker(tmp_path):
    import pika

    from tests.tls_proxy import tls_broker
    from zato.connector.amqp_common import parameters

    with tls_broker(str(tmp_path)) as (port, ca_file):
        amqp = {"host": "localhost", "port": port, "vhost": "/", "username": "guest", "password": "guest",
                "heartbeat": 30, "use_tls": True}  # fmt: skip
        conn = pika.BlockingConnection(parameters(amqp, ca_file))
        try:
            channel = conn.channel()
            queue = channel.queue_declare("", exclusive=True).method.queue
            channel.basic_publish("", queue, b"over tls")
            wait_for(
                lambda: channel.basic_get(queue, auto_ack=True)[2] == b"over tls", 10, what="the message"
            )
        finally:
            conn.close()
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):  # private CA: not trusted
            pika.BlockingConnection(parameters(amqp))
        plain = {**amqp, "use_tls": False}
        with pytest.raises(pika.exceptions.AMQPConnectionError):  # the proxy speaks TLS only
            pika.BlockingConnection(parameters(plain))
