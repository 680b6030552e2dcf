"""TLS between hosts, with real processes: a `zato quickstart create --tls` cluster whose
servers serve HTTPS only on their own ports (server.conf [tls] cert, signed by the quickstart's
CA), and every client of those ports verifying them against the CA: HAProxy (requests and
health checks), the lease holder's AMQP channel connector (RabbitMQ at 127.0.0.1:5672),
`zato service invoke`. One cluster for the module; the last tests break server2 and mend it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import time
import uuid

import pytest
import redis
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conn_support import Rabbit, services_source
from tests.integration.test_amqp_cluster import children, received, running
from tests.support import REDIS_URL, lb_up, one_line_error, wait_for, zato
from zato.common import tls
from zato.lb.status import describe


@pytest.fixture(scope="module")
def cluster(module_quickstart, tmp_path_factory):
    qs = module_quickstart(servers=2, tls=True)
    qs.start()
    module = tmp_path_factory.mktemp("mod") / "conn_services.py"
    module.write_text(services_source())
    zato("deploy", qs.path, str(module))
    qs.rabbit = Rabbit()
    qs.queue_in = qs.rabbit.queue(f"zt-tls-in-{uuid.uuid4().hex[:8]}")
    zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
    create = ("conn", "create", "amqp-channel", qs.path, "--name", "in", "--def", "rabbit")
    zato(*create, "--queue", qs.queue_in, "--service", "conn.record")
    wait_for(
        lambda: running(qs.cluster, "amqp-channel:in"), timeout=60, what="the channel's connector running"
    )
    try:
        yield qs
    finally:  # the channel's connector stopped first: running, it would declare its queue again
        try:
            zato("conn", "delete", "amqp-channel", qs.path, "--name", "in", check=False)
            wait_for(lambda: "amqp-channel:in" not in children(qs.cluster), 60, what="the connector gone")
        finally:
            qs.rabbit.close()


def peer_issuer(port: int, ca: str) -> str:
    ctx = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        cert = s.getpeercert()
    return dict(x[0] for x in cert["issuer"])["commonName"]


def test_a_servers_port_serves_https_only_with_a_certificate_of_the_cluster_ca(cluster):
    for name in cluster.server_names:
        bundle = os.path.join(cluster.server_dir(name), "config", "server.pem")
        assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o600
        port = cluster.settings(name).port
        url = f"https://127.0.0.1:{port}/zato/ping"
        resp = requests.get(url, verify=cluster.ca_file, timeout=10)
        assert resp.status_code == 200 and resp.json()["zato_env"]["result"] == "ZATO_OK"
        assert peer_issuer(port, cluster.ca_file) == f"Zato cluster {cluster.cluster} CA"
        with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP: no answer
            requests.get(f"http://127.0.0.1:{port}/zato/ping", timeout=10)
        with pytest.raises(requests.exceptions.SSLError):  # a private CA: not trusted by default
            requests.get(url, timeout=10)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:  # no handshake:
            assert idle.recv(1) == b""  # closed after gunicorn's keepalive, as a silent plain client
    said = "spoke plain HTTP to this HTTPS-only port ([tls] cert in server.conf)"
    wait_for(
        lambda: said in cluster.server_logs(), timeout=10, what="the servers saying a client spoke plain HTTP"
    )
    assert "Traceback" not in cluster.server_logs("stdout.log")


def test_the_lb_checks_and_reaches_the_servers_over_tls(cluster):
    with open(os.path.join(cluster.lb_dir, "config", "haproxy.cfg")) as f:
        lines = [line for line in f if line.strip().startswith("server ")]
    assert len(lines) == 2 and all(f"ssl verify required ca-file {cluster.ca_file} " in x for x in lines)
    wait_for(lambda: lb_up(cluster) == {"server1", "server2"}, timeout=15, what="both servers UP")
    for _ in range(10):
        resp = requests.get(cluster.lb_url + "/zato/ping", verify=cluster.ca_file, timeout=10)
        assert resp.status_code == 200 and resp.json()["zato_env"]["result"] == "ZATO_OK"


def test_an_amqp_channel_message_reaches_its_service_through_the_connector_over_tls(cluster):
    for name in cluster.server_names:  # TLS is the only way to a service
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{cluster.settings(name).port}/zato/ping", timeout=10)
    redis.Redis.from_url(REDIS_URL).delete(f"zato:{cluster.cluster}:test:received")
    for i in range(10):
        cluster.rabbit.publish(cluster.queue_in, json.dumps({"tls": i}))
    wait_for(lambda: len(received(cluster.cluster)) >= 10, timeout=30, what="10 messages at the service")
    assert sorted(m["tls"] for m in received(cluster.cluster)) == list(range(10))


def test_zato_service_invoke_and_info_talk_to_the_servers_over_tls(cluster):
    redis.Redis.from_url(REDIS_URL).delete(f"zato:{cluster.cluster}:test:received")
    out = zato("service", "invoke", cluster.path, "conn.record", "--payload", '{"cli": 1}')
    assert out.returncode == 0
    assert received(cluster.cluster) == [{"cli": 1}]
    info = zato("info", cluster.server_dir("server1")).stdout
    assert f"https://127.0.0.1:{cluster.settings('server1').port}/zato/ping" in info


def test_the_dashboard_scrapes_the_servers_metrics_over_tls(cluster):
    from zato.config.settings import load_dashboard_settings
    from zato.coord.client import connect
    from zato.dashboard.state import Collector
    from zato.odb.engine import ODB

    settings = load_dashboard_settings(cluster.dashboard_dir)
    assert settings.tls_ca_file == cluster.ca_file  # zato create dashboard took the server's
    client, odb = connect(settings.redis), ODB(settings.odb_url)
    try:
        collector = Collector(settings, client, odb)
        collector.refresh()
        collector.refresh()  # a second scrape of each: requests/s
        rows = {s["name"]: s for s in collector.snapshot["servers"]}
    finally:
        client.close()
        odb.dispose()
    assert {name: (row["tls"], row["rps"] is not None) for name, row in rows.items()} == {
        "server1": (True, True),
        "server2": (True, True),
    }


def test_a_foreign_certificate_is_refused_at_start_and_a_plain_server_is_down_and_said(cluster):
    server2 = cluster.server_dir("server2")
    conf = os.path.join(server2, "config", "server.conf")
    bundle = os.path.join(server2, "config", "server.pem")
    saved = os.path.join(server2, "saved")
    os.makedirs(saved)
    shutil.copy2(conf, saved)
    shutil.copy2(bundle, saved)
    zato("stop", server2)
    try:
        other = tls.new_ca("another CA")
        cert, key = tls.issue(other, "server2", ["127.0.0.1", "localhost"])
        tls.write_bundle(bundle, cert, key, [other.cert])
        started = zato("start", server2, check=False)
        line = one_line_error(started, "server.pem: the certificate is not trusted by [tls] ca_file")
        assert "the LB and the other servers would refuse this server" in line

        shutil.copy2(os.path.join(saved, "server.pem"), bundle)
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("cert = server.pem\n", ""))
        cluster.start("server2")
        port = cluster.settings("server2").port
        assert requests.get(f"http://127.0.0.1:{port}/zato/ping", timeout=10).status_code == 200

        said = f"server server2 at 127.0.0.1:{port} serves plain HTTP while this LB expects TLS"
        lb_log = os.path.join(cluster.lb_dir, "logs", "lb.log")
        wait_for(lambda: said in open(lb_log).read(), timeout=15, what="the LB saying why server2 is DOWN")
        # HAProxy marks it DOWN after its checks fail `fall` times in a row ("UP 1/2" before)
        states = lambda: {s["name"]: s["state"] for s in describe(cluster.lb_dir)["servers"]}  # noqa: E731
        wait_for(lambda: states()["server2"].startswith("DOWN"), timeout=15, what="server2 DOWN at the LB")
        assert states()["server1"].startswith("UP"), states()

        redis.Redis.from_url(REDIS_URL).delete(f"zato:{cluster.cluster}:test:received")
        for i in range(5):
            cluster.rabbit.publish(cluster.queue_in, json.dumps({"mixed": i}))
        wait_for(lambda: len(received(cluster.cluster)) >= 5, timeout=30, what="5 messages at the service")
    finally:
        zato("stop", server2, check=False)
        shutil.copy2(os.path.join(saved, "server.conf"), conf)
        shutil.copy2(os.path.join(saved, "server.pem"), bundle)
        cluster.start("server2")
    wait_for(lambda: lb_up(cluster) == {"server1", "server2"}, timeout=15, what="both servers UP again")


def cluster_ca(cluster) -> tls.CA:  # noqa: ANN001 - a Quickstart
    folder = os.path.join(cluster.path, "tls")
    with open(os.path.join(folder, "ca.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(folder, "ca-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return tls.CA(cert, key)  # type: ignore[arg-type]


def test_a_certificate_that_expires_while_its_server_runs_is_said_in_lb_log(cluster):
    """Before: HAProxy's checks failed and the server went DOWN ('L6RSP' in zato cluster status)
    with nothing in lb.log, nor in the server's own log, saying why."""
    server2 = cluster.server_dir("server2")
    bundle = os.path.join(server2, "config", "server.pem")
    saved = bundle + ".saved"
    shutil.copy2(bundle, saved)
    zato("stop", server2)
    try:
        cert, key = tls.issue(cluster_ca(cluster), "server2", ["127.0.0.1", "localhost"], days=15 / 86400)
        tls.write_bundle(bundle, cert, key, [])
        cluster.start("server2")  # valid for 15 s more: zato start takes it
        time.sleep(max(0.0, (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()))
        port = cluster.settings("server2").port
        said = f"server server2 at 127.0.0.1:{port} is DOWN: HAProxy's TLS checks fail, its certificate"
        lb_log = os.path.join(cluster.lb_dir, "logs", "lb.log")
        wait_for(lambda: said in open(lb_log).read(), timeout=20, what="lb.log saying why server2 is DOWN")
        line = next(x for x in open(lb_log).read().splitlines() if said in x)
        assert "(certificate has expired)" in line, line
    finally:
        zato("stop", server2, check=False)
        shutil.copy2(saved, bundle)
        os.remove(saved)
        cluster.start("server2")
    wait_for(lambda: lb_up(cluster) == {"server1", "server2"}, timeout=15, what="both servers UP again")


def test_a_broken_certificate_file_put_in_place_while_the_server_runs_reaches_no_worker(cluster):
    """The file is read when the server starts: a worker made again later (after its crash)
    serves what the server started with. Before: it read the file again, and one whose key no
    longer matched (a renewal half written) failed every new worker ('Exception in worker
    process', its traceback, made again at once, for ever) until the file was mended."""
    server2 = cluster.server_dir("server2")
    bundle = os.path.join(server2, "config", "server.pem")
    saved = bundle + ".saved"
    shutil.copy2(bundle, saved)
    log = os.path.join(server2, "logs", "server.log")
    try:
        cert = x509.load_pem_x509_certificate(open(bundle, "rb").read())
        other_key = tls.issue(cluster_ca(cluster), "x", ["127.0.0.1"])[1]
        tls.write_bundle(bundle, cert, other_key, [])  # the certificate with another one's key
        pids = [int(p) for p in re.findall(r"worker (\d+) ready", open(log).read())]
        alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
        size = os.path.getsize(log)
        os.kill(alive[-1], signal.SIGKILL)  # a worker of this test's server, ended as the OOM killer would
        new = lambda: open(log, "rb").read()[size:].decode(errors="replace")  # noqa: E731
        wait_for(lambda: "ready:" in new() or "Exception in worker" in new(), 30, what="a worker made again")
        time.sleep(1)
        assert "Exception in worker process" not in new()
        port = cluster.settings("server2").port
        for _ in range(6):
            resp = requests.get(f"https://127.0.0.1:{port}/zato/ping", verify=cluster.ca_file, timeout=10)
            assert resp.status_code == 200
    finally:
        shutil.copy2(saved, bundle)
        os.remove(saved)
