"""A two-server cluster, on SQLite and on PostgreSQL: deploy, channels, a third server that
joins later, module updates, the pickup directory, the admin API and error envelopes."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import PG_URL, free_port, process_table, signed_headers, wait_for, zato
from zato.common.cid import is_cid
from zato.common.pidfile import pid_alive

SERVICE_V1 = """
import time

from zato.service import Service

class Hello(Service):
    def handle(self):
        payload = self.request.payload or {}
        name = payload.get("name", "world")
        self.response.payload = {"hello": name, "server": self.server.name, "v": VERSION}

class Boom(Service):
    name = "demo.boom"

    def handle(self):
        raise ValueError("this traceback stays in the log")

class Slow(Service):
    name = "demo.slow"

    def handle(self):
        time.sleep(2)
        self.response.payload = "finished"

class Echo(Service):
    name = "demo.echo"

    def handle(self):
        self.response.payload = {"got": self.request.payload, "via": self.invoke("zato.ping")}
"""


def source(version: int) -> str:
    return SERVICE_V1.replace("VERSION", str(version))


def post(url: str, **kw) -> requests.Response:
    return requests.post(url, timeout=10, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request, module_quickstart, tmp_path_factory):
    odb = PG_URL if request.param == "postgresql" else None
    main = {"drain_seconds": "0.2", "deploy_timeout": "2"}
    qs = module_quickstart(servers=2, lb=False, odb=odb, extra_conf={"main": main})
    qs.start()
    module = tmp_path_factory.mktemp("mod") / "hello_api.py"
    module.write_text(source(1))
    zato("deploy", qs.path, str(module))
    zato(
        "channel",
        "create",
        qs.path,
        "--name",
        "hello",
        "--url-path",
        "/hello",
        "--service",
        "hello-api.hello",
        "--method",
        "POST",
    )
    zato("channel", "create", qs.path, "--name", "boom", "--url-path", "/boom", "--service", "demo.boom")
    qs.module_file = module
    return qs


def hello(qs, name: str, version: int) -> bool:
    r = post(qs.server_url(name) + "/hello", json={"name": "ann"})
    return r.status_code == 200 and r.json() == {"hello": "ann", "server": name, "v": version}


def test_ping_answers_like_zato_on_every_server(cluster):
    for name in cluster.server_names:
        r = requests.get(cluster.server_url(name) + "/zato/ping", timeout=10)
        cid = r.headers["X-Zato-CID"]
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        assert is_cid(cid)
        assert r.text == (
            '{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "' + cid + '"}, '
            '"zato_ping_response": {"pong": "zato"}}'
        )


def test_deployed_service_answers_on_both_servers(cluster):
    for name in cluster.server_names:
        wait_for(lambda name=name: hello(cluster, name, 1), timeout=20, what=f"hello on {name}")


def test_error_envelopes(cluster):
    url = cluster.server_url("server1")
    wait_for(lambda: hello(cluster, "server1", 1), timeout=20, what="hello on server1")
    cases = [
        (requests.get(url + "/no/such/path", timeout=10), 404, "no channel serves /no/such/path"),
        (requests.get(url + "/hello", timeout=10), 405, "method GET is not allowed for /hello"),
        (post(url + "/hello", data=b"{not json"), 400, "malformed JSON"),
        (requests.get(url + "/boom", timeout=10), 500, "service demo.boom failed"),
    ]
    for r, status, detail in cases:
        env = r.json()["zato_env"]
        assert r.status_code == status
        assert env["result"] == "ZATO_ERROR" and env["cid"] == r.headers["X-Zato-CID"]
        assert detail in env["details"]
        assert "Traceback" not in r.text and "this traceback stays" not in r.text
    log = open(os.path.join(cluster.server_dir("server1"), "logs", "server.log")).read()
    assert "ValueError: this traceback stays in the log" in log


def test_admin_api_requires_credentials(cluster):
    url = cluster.server_url("server2") + "/zato/admin/channels"
    user, password = cluster.admin_auth
    for auth in (None, (user, "wrong-password-xyz"), ("intruder", password)):
        r = requests.get(url, auth=auth, timeout=10)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = requests.get(url, auth=cluster.admin_auth, timeout=10)
    assert r.status_code == 200
    assert {c["name"] for c in r.json()["channels"]} >= {"hello", "boom"}
    log = open(os.path.join(cluster.server_dir("server2"), "logs", "server.log")).read()
    assert "rejected credentials for user 'intruder'" in log
    assert password not in log and "wrong-password-xyz" not in log


def test_admin_api_creates_a_channel_live_on_every_server(cluster):
    r = post(
        cluster.server_url("server1") + "/zato/admin/channels",
        auth=cluster.admin_auth,
        json={"name": "echo", "url_path": "/echo", "service": "demo.echo"},
    )
    assert r.status_code in (200, 201), r.text
    bad = post(
        cluster.server_url("server1") + "/zato/admin/channels",
        auth=cluster.admin_auth,
        json={"name": "x", "url_path": "no-slash", "service": "demo.echo"},
    )
    assert bad.status_code == 400 and "url_path" in bad.json()["zato_env"]["details"]
    for name in cluster.server_names:

        def echoed(name=name):
            resp = post(cluster.server_url(name) + "/echo", json=[1, 2])
            return resp.status_code == 200 and resp.json()["got"] == [1, 2]

        wait_for(echoed, timeout=20, what=f"/echo on {name}")


def test_internal_invoke_checks_signature_and_epoch(cluster):
    import redis

    from tests.support import REDIS_URL
    from zato.coord.keys import Keys

    url = cluster.server_url("server2") + "/zato/internal/invoke/demo.echo"
    secret = cluster.cluster_secret
    client = redis.Redis.from_url(REDIS_URL)
    epoch_key = Keys(cluster.cluster).epoch
    newest = int(client.get(epoch_key) or 0) + 1000  # far ahead of anything the supervisors do
    client.set(epoch_key, newest)
    try:

        def call(headers: dict, body=b'{"a": 1}', service_url=url) -> requests.Response:
            return post(service_url, data=body, headers={"Content-Type": "application/json", **headers})

        def signed(epoch: int, service: str = "demo.echo", body=b'{"a": 1}', cid=None) -> dict:
            return signed_headers(secret, epoch, service, body, cid)

        assert call({"X-Zato-Epoch": str(newest)}).status_code == 401
        assert call({**signed(newest), "X-Zato-Signature": "00" * 32}).status_code == 401
        # The epoch is part of the credentials (the signature's key is derived from it): without
        # it, or not a whole number, 401 as without a signature (before: 400).
        without = {k: v for k, v in signed(newest).items() if k != "X-Zato-Epoch"}
        for headers in (
            without,
            {**signed(newest), "X-Zato-Epoch": ""},
            {**signed(newest), "X-Zato-Epoch": "soon"},
        ):
            r = call(headers)
            assert r.status_code == 401, r.text
            assert "bad or missing X-Zato-Epoch" in r.json()["zato_env"]["details"], r.text
        assert call(signed(newest - 1)).status_code == 409
        # A call captured at an old epoch, replayed with a raised epoch: its signature no longer fits.
        captured = signed(newest - 1)
        assert call({**captured, "X-Zato-Epoch": str(newest)}).status_code == 401
        # ... nor does it fit another body or service.
        assert call(signed(newest), body=b'{"a": 2}').status_code == 401
        cid = "K" + "0" * 27
        ok = call(signed(newest, cid=cid))
        assert ok.status_code == 200 and ok.json()["got"] == {"a": 1}
        assert ok.headers["X-Zato-CID"] == cid
        missing_url = url.replace("demo.echo", "no.such.service")
        missing = call(signed(newest, "no.such.service"), service_url=missing_url)
        assert missing.status_code == 404
        failed = call(signed(newest, "demo.boom"), service_url=url.replace("demo.echo", "demo.boom"))
        assert failed.status_code == 500
    finally:
        client.delete(epoch_key)
        client.close()
    log = open(os.path.join(cluster.server_dir("server2"), "logs", "server.log")).read()
    assert f"refused stale action demo.echo: epoch {newest - 1} < {newest}" in log
    assert secret not in log


def test_a_captured_internal_call_is_refused_when_sent_again(cluster):
    """An internal call travels between hosts over plain HTTP: one captured and sent again (to
    the same server, another one, or later) is refused, and the log says why. Before, it ran
    again every time for as long as its epoch lasted."""
    import redis

    from tests.support import REDIS_URL
    from zato.common.signing import STAMP_WINDOW
    from zato.coord.keys import Keys

    secret, client = cluster.cluster_secret, redis.Redis.from_url(REDIS_URL)
    epoch_key = Keys(cluster.cluster).epoch
    newest = int(client.get(epoch_key) or 0) + 1000  # far ahead of anything the supervisors do
    client.set(epoch_key, newest)

    def call(headers: dict, server: str = "server2", body: bytes = b'{"a": 1}') -> requests.Response:
        url = cluster.server_url(server) + "/zato/internal/invoke/demo.echo"
        return post(url, data=body, headers={"Content-Type": "application/json", **headers})

    try:
        captured = signed_headers(secret, newest, "demo.echo", b'{"a": 1}')
        first = call(captured)
        assert first.status_code == 200 and first.json()["got"] == {"a": 1}, first.text
        for server in ("server2", "server1"):
            again = call(captured, server)
            assert again.status_code == 401, again.text
            assert "its nonce was used before: a replayed call" in again.text
        old = call(
            signed_headers(secret, newest, "demo.echo", b'{"a": 1}', at=time.time() - 2 * STAMP_WINDOW)
        )
        assert old.status_code == 401 and "s old (over the" in old.text, old.text
        ahead = call(
            signed_headers(secret, newest, "demo.echo", b'{"a": 1}', at=time.time() + 2 * STAMP_WINDOW)
        )
        assert ahead.status_code == 401 and "ahead of Redis's clock" in ahead.text, ahead.text
        # A stamp cannot be swapped for a fresh one: it is signed with the call.
        fresh = signed_headers(secret, newest, "demo.echo", b'{"a": 1}')
        swapped = call({**captured, "X-Zato-Stamp": fresh["X-Zato-Stamp"]})
        assert swapped.status_code == 401 and "X-Zato-Signature" in swapped.text
        unstamped = call({k: v for k, v in fresh.items() if k != "X-Zato-Stamp"})
        assert unstamped.status_code == 401
        assert call(fresh).status_code == 200  # each call of its own still runs, once
    finally:
        client.delete(epoch_key)
        client.close()
    log = open(os.path.join(cluster.server_dir("server1"), "logs", "server.log")).read()
    assert "internal invoke of demo.echo refused: its nonce was used before: a replayed call" in log


def test_internal_batch_is_checked_once_and_answers_each_item(cluster):
    import redis

    from tests.support import REDIS_URL
    from zato.common import batch
    from zato.coord.keys import Keys

    url = cluster.server_url("server1") + batch.BATCH_PREFIX + "demo.echo"
    client = redis.Redis.from_url(REDIS_URL)
    epoch_key = Keys(cluster.cluster).epoch
    newest = int(client.get(epoch_key) or 0) + 1000
    client.set(epoch_key, newest)
    items = [b'{"a": 1}', b"{not json", b'{"a": 3}']
    body = batch.encode_items(items)

    def call(headers: dict, data: bytes = body, service_url: str = url) -> requests.Response:
        items_type = {batch.ITEMS_TYPE_HEADER: "application/json"}
        return post(service_url, data=data, headers={**items_type, **headers})

    def signed(epoch: int, service: str = "demo.echo", data: bytes = body) -> dict:
        return signed_headers(cluster.cluster_secret, epoch, batch.batch_service(service), data)

    try:
        ok = call(signed(newest))
        assert ok.status_code == 200
        (good1, bad, good3) = ok.json()["results"]
        assert good1 == [200, ""] and good3 == [200, ""]
        assert bad[0] == 400 and "malformed JSON" in bad[1]  # its own answer: the others still ran
        # Signed as one invocation of demo.echo over the same bytes: not a batch's signature.
        as_one = signed_headers(cluster.cluster_secret, newest, "demo.echo", body)
        assert call(as_one).status_code == 401
        assert call(signed(newest - 1)).status_code == 409  # stale: checked once, for every item
        garbled = b"3:ab,"
        refused = call(signed(newest, data=garbled), data=garbled)
        assert refused.status_code == 400 and "malformed batch" in refused.text
        boom_url = url.replace("demo.echo", "demo.boom")
        failed = call(signed(newest, "demo.boom"), service_url=boom_url).json()["results"]
        assert [status for status, _ in failed] == [500, 400, 500]
        assert "see the server log for cid K" in failed[0][1] and "traceback" not in failed[0][1]
    finally:
        client.delete(epoch_key)
        client.close()
    log = open(os.path.join(cluster.server_dir("server1"), "logs", "server.log")).read()
    assert f"refused stale action demo.echo: epoch {newest - 1} < {newest}" in log


def test_third_server_started_later_has_every_service(cluster, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("s3") / "server3")
    port = free_port()
    zato(
        "create",
        "server",
        path,
        "--join",
        cluster.server_dir("server1"),
        "--name",
        "server3",
        "--port",
        str(port),
        "--workers",
        "1",
    )
    out = zato("start", path).stdout
    assert "server server3 started" in out
    try:
        r = post(f"http://127.0.0.1:{port}/hello", json={"name": "ann"})
        assert r.status_code == 200 and r.json()["server"] == "server3"
        # Update the module: every server, the late one too, gets the new behaviour.
        cluster.module_file.write_text(source(2))
        assert "version 2" in zato("deploy", cluster.path, str(cluster.module_file)).stdout
        for name in cluster.server_names:
            wait_for(lambda name=name: hello(cluster, name, 2), timeout=20, what=f"v2 on {name}")
        wait_for(lambda: post(f"http://127.0.0.1:{port}/hello", json={}).json()["v"] == 2, timeout=20)
    finally:
        zato("stop", path)


def test_a_server_taken_out_for_good_is_forgotten_once_stopped(cluster, tmp_path_factory):
    """`zato cluster forget DIR NAME`: a running server is refused, a stopped one leaves the
    cluster's list (status no longer shows it gone), an unknown name lists the servers. Before,
    a removed server showed as gone for ever."""
    path = str(tmp_path_factory.mktemp("s4") / "server4")
    zato("create", "server", path, "--join", cluster.server_dir("server1"), "--name", "server4",
         "--port", str(free_port()), "--workers", "1")  # fmt: skip
    zato("start", path)
    try:
        refused = zato("cluster", "forget", cluster.path, "server4", check=False)
        assert refused.returncode == 1 and "server server4 is running at 127.0.0.1:" in refused.stderr
    finally:
        zato("stop", path)
    assert "server4  gone" in zato("cluster", "status", cluster.path, check=False).stdout
    out = zato("cluster", "forget", cluster.path, "server4")
    assert out.stdout == f"server server4 forgotten: no longer listed in cluster {cluster.cluster}\n"
    assert "server4" not in zato("cluster", "status", cluster.path, check=False).stdout
    unknown = zato("cluster", "forget", cluster.path, "server4", check=False)
    assert unknown.returncode == 1 and "no server named 'server4'" in unknown.stderr
    assert "(servers: server1, server2" in unknown.stderr
    # started again, it is listed again (once stopped, the status shows it gone, as any listed
    # server), and its log says so instead of an ERROR
    zato("start", path)
    try:
        log_path = os.path.join(path, "logs", "server.log")
        wait_for(lambda: "listed again, as it runs" in open(log_path).read(), 20, what="server4 listed again")
        log = open(log_path).read()
        assert f"server server4 was not in the list of cluster {cluster.cluster}" in log
        assert "cannot record up_status" not in log, log
    finally:
        zato("stop", path)
    assert "server4  gone" in zato("cluster", "status", cluster.path, check=False).stdout
    zato("cluster", "forget", cluster.path, "server4")


def test_pickup_directory_deploys_to_the_cluster(cluster):
    pickup = os.path.join(cluster.server_dir("server2"), "pickup")
    with open(os.path.join(pickup, "picked.py"), "w") as f:
        f.write(
            textwrap.dedent("""
            from zato.service import Service

            class Picked(Service):
                def handle(self):
                    self.response.payload = "picked up"
        """)
        )
    with open(os.path.join(pickup, "broken.py"), "w") as f:
        f.write("def nope(:\n")
    wait_for(lambda: os.path.exists(os.path.join(pickup, "processed", "picked.py")), timeout=20)
    zato(
        "channel",
        "create",
        cluster.path,
        "--name",
        "picked",
        "--url-path",
        "/picked",
        "--service",
        "picked.picked",
        "--data-format",
        "text",
    )

    def picked():
        r = requests.get(cluster.server_url("server1") + "/picked", timeout=10)
        return r.status_code == 200 and r.text == "picked up"

    wait_for(picked, timeout=20, what="picked-up service on server1")
    log_path = os.path.join(cluster.server_dir("server2"), "logs", "server.log")
    wait_for(lambda: "broken.py is broken" in open(log_path).read(), timeout=20)
    assert os.path.exists(os.path.join(pickup, "broken.py"))


def test_pickup_survives_a_module_that_hangs_or_exits_at_import(cluster):
    pickup = os.path.join(cluster.server_dir("server2"), "pickup")
    arbiter = cluster.pid("server2")
    with open(os.path.join(pickup, "a_sleepy.py"), "w") as f:
        f.write("import time\ntime.sleep(1000)\n")
    with open(os.path.join(pickup, "b_exits.py"), "w") as f:
        f.write("import os\nos._exit(7)\n")
    log_path = os.path.join(cluster.server_dir("server2"), "logs", "server.log")
    wait_for(lambda: "a_sleepy.py is broken" in open(log_path).read(), timeout=30)
    assert "module a_sleepy: did not finish loading within 2 s" in open(log_path).read()
    r = requests.get(cluster.server_url("server2") + "/zato/ping", timeout=10)
    assert r.status_code == 200 and cluster.pid("server2") == arbiter and pid_alive(arbiter)
    wait_for(lambda: "b_exits.py is broken" in open(log_path).read(), timeout=30)
    assert "module b_exits: its loading process ended without a result" in open(log_path).read()
    assert os.path.exists(os.path.join(pickup, "a_sleepy.py"))
    assert os.path.exists(os.path.join(pickup, "b_exits.py"))
    # The arbiter goes on picking up files, and its children (the supervisor) were not hurt.
    with open(os.path.join(pickup, "c_fine.py"), "w") as f:
        f.write(
            "from zato.service import Service\n\nclass Fine(Service):\n    def handle(self):\n        pass\n"
        )
    wait_for(lambda: os.path.exists(os.path.join(pickup, "processed", "c_fine.py")), timeout=30)
    assert supervisor_pid(arbiter)


def test_a_module_that_hangs_only_in_the_workers_does_not_stop_reloads(cluster, tmp_path):
    stuck = tmp_path / "stuck_in_worker.py"  # loads fine when validated, blocks in a server
    stuck.write_text(
        "import sys, time\nif 'gunicorn' in sys.modules:\n    time.sleep(1000)\n"
        "from zato.service import Service\n\nclass Stuck(Service):\n    pass\n"
    )
    zato("deploy", cluster.path, str(stuck))
    log_path = os.path.join(cluster.server_dir("server1"), "logs", "server.log")
    message = "module stuck_in_worker version 1: did not finish loading within 2 s"
    wait_for(lambda: message in open(log_path).read(), timeout=30)
    later = tmp_path / "after_stuck.py"
    later.write_text("from zato.service import Service\n\nclass After(Service):\n    name = 'after.stuck'\n")
    zato("deploy", cluster.path, str(later))

    def listed():
        url = cluster.server_url("server1") + "/zato/admin/services"
        services = requests.get(url, auth=cluster.admin_auth, timeout=10).json()["services"]
        return "after.stuck" in services and "stuck-in-worker.stuck" not in services

    wait_for(listed, timeout=20, what="after.stuck on server1")


def test_admin_api_deploys_a_module(cluster):
    url = cluster.server_url("server2") + "/zato/admin/deploy"
    bad = post(url + "?name=admin_api", auth=cluster.admin_auth, data=b"class X(:\n")
    assert bad.status_code == 400 and "does not compile" in bad.json()["zato_env"]["details"]
    good_source = "from zato.service import Service\n\nclass Hi(Service):\n    name = 'admin.hi'\n"
    good_source += "    def handle(self):\n        self.response.payload = {'hi': self.server.name}\n"
    # ?name= the file's name, as `zato deploy` takes it: before, 400 'must be a Python identifier'
    good = post(url + "?name=admin_api.py", auth=cluster.admin_auth, data=good_source.encode())
    assert good.status_code == 200 and good.json()["services"] == ["admin.hi"], good.text
    assert good.json()["module"] == "admin_api"

    def listed():
        r = requests.get(
            cluster.server_url("server1") + "/zato/admin/services", auth=cluster.admin_auth, timeout=10
        )
        return "admin.hi" in r.json()["services"]

    wait_for(listed, timeout=20, what="admin.hi on server1")
    # A module that blocks at import: 400 after [main] deploy_timeout; the server still serves.
    sleepy = b"import time\ntime.sleep(99)\n"
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(post, url + "?name=admin_sleepy", auth=cluster.admin_auth, data=sleepy)
        time.sleep(0.5)
        assert requests.get(cluster.server_url("server2") + "/zato/ping", timeout=10).status_code == 200
        r = slow.result()
    assert r.status_code == 400
    assert "module admin_sleepy: did not finish loading within 2 s" in r.json()["zato_env"]["details"]


def requests_in_flight(base: str) -> float:
    """The server's zato_server_requests_in_flight gauge (all workers; a scrape is not counted)."""
    text = requests.get(base + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "zato_server_requests_in_flight"
    )


def supervisor_pid(arbiter: int) -> int | None:
    """The pid of the arbiter's connector-supervisor child (found by parent pid)."""
    for pid, ppid, cmdline in process_table():
        if (
            ppid == arbiter
            and (b"zato-supervisor" in cmdline or b"zato.connector.supervisor" in cmdline)
            and pid_alive(pid)
        ):
            return pid
    return None


BYE = "from zato.service import Service\n\nclass Bye(Service):\n    name = 'bye.one'\n\n" \
    "    def handle(self):\n        self.response.payload = {'from': MODULE}\n"  # fmt: skip


def test_undeploy_removes_a_module_from_every_server(cluster, tmp_path):
    """`zato undeploy` (and DELETE /zato/admin/deploy/NAME) takes a module's services off
    every server, names the channels left pointing at them, and frees the service names for
    another module. Before, a deployed module could not be removed at all."""
    first, second = tmp_path / "bye_api.py", tmp_path / "bye_two.py"
    first.write_text(BYE.replace("MODULE", "'first'"))
    second.write_text(BYE.replace("MODULE", "'second'"))
    zato("deploy", cluster.path, str(first))
    zato("channel", "create", cluster.path, "--name", "bye", "--url-path", "/bye", "--service", "bye.one")

    def answers(name: str, status: int, text: str) -> bool:
        r = requests.get(cluster.server_url(name) + "/bye", timeout=10)
        return r.status_code == status and text in r.text

    try:
        for name in cluster.server_names:
            wait_for(lambda n=name: answers(n, 200, "first"), timeout=20, what=f"bye.one on {name}")
        refused = zato("deploy", cluster.path, str(second), check=False)
        assert refused.returncode == 1 and "already defined by module 'bye_api'" in refused.stderr
        out = zato("undeploy", cluster.path, str(first))
        assert out.stdout == "undeployed module bye_api: bye.one\n"
        assert out.stderr == (
            "warning: HTTP channel bye still invokes a service that module bye_api defined: it fails"
            " until a module defining it is deployed\n"
        )
        for name in cluster.server_names:
            wait_for(
                lambda n=name: answers(n, 404, "no such service: bye.one"), timeout=20, what=f"gone on {name}"
            )
        again = zato("undeploy", cluster.path, "bye_api", check=False)
        assert again.returncode == 1 and "no module named 'bye_api' is deployed" in again.stderr
        zato("deploy", cluster.path, str(second))  # the name is free again
        for name in cluster.server_names:
            wait_for(lambda n=name: answers(n, 200, "second"), timeout=20, what=f"bye_two on {name}")
        url = cluster.server_url("server2") + "/zato/admin/deploy/bye_two"
        r = requests.delete(url, auth=cluster.admin_auth, timeout=10)
        assert r.status_code == 200 and r.json()["services"] == ["bye.one"], r.text
        assert "HTTP channel bye" in r.json()["warnings"][0]
        for name in cluster.server_names:
            wait_for(
                lambda n=name: answers(n, 404, "no such service"), timeout=20, what=f"gone again on {name}"
            )
        r = requests.delete(url, auth=cluster.admin_auth, timeout=10)
        assert r.status_code == 404 and "no module named 'bye_two'" in r.json()["zato_env"]["details"]
        # A new version that drops a service a channel invokes: deployed, with a warning.
        zato("deploy", cluster.path, str(second))
        second.write_text(BYE.replace("MODULE", "'renamed'").replace("bye.one", "bye.renamed"))
        out = zato("deploy", cluster.path, str(second))
        assert out.stdout.startswith("deployed module bye_two version 2: bye.renamed")
        assert out.stderr == (
            "warning: HTTP channel bye still invokes a service that module bye_two no longer defines:"
            " it fails until a module defining it is deployed\n"
        )
        zato("undeploy", cluster.path, "bye_two")
    finally:
        zato("channel", "delete", cluster.path, "--name", "bye")


def test_a_killed_supervisor_is_started_again(cluster):
    if cluster.odb:
        pytest.skip("the sidecar does not depend on the ODB backend: once is enough")
    arbiter = cluster.pid("server1")
    first = wait_for(lambda: supervisor_pid(arbiter), timeout=20, what="the supervisor")
    os.kill(first, signal.SIGKILL)
    second = wait_for(
        lambda: (supervisor_pid(arbiter) or first) != first and supervisor_pid(arbiter), timeout=20
    )
    assert second != first
    log = open(os.path.join(cluster.server_dir("server1"), "logs", "server.log")).read()
    assert "connector supervisor restarted" in log
    # SIGKILL: said so when the sidecar reaped it, else that gunicorn took its exit status
    # (before: 'exited with code 0' either way)
    ended = re.search(rf"connector supervisor \(pid {first}\) (.*?) after", log)
    assert ended and ended.group(1) in (
        "was killed by SIGKILL",
        "ended (its exit status went to gunicorn's arbiter, which reaps every child)",
    ), log[-3000:]


def test_a_hung_supervisor_is_killed_and_started_again_and_its_server_rejoins(quickstart):
    """A supervisor alive but stopped (SIGSTOP here; a deadlock) stopped the server's membership
    heartbeats too: the server left the cluster, and the LB, while its workers served on, and
    it stayed out. Now the arbiter kills a supervisor whose main loop shows no progress for
    [main] connector_hang_after (at most 30 s) and starts it again."""
    qs = quickstart(servers=1, lb=False, extra_conf={"main": {"connector_hang_after": "4"}})
    qs.start()
    arbiter = qs.pid("server1")
    first = wait_for(lambda: supervisor_pid(arbiter), timeout=20, what="the supervisor")
    wait_for(lambda: os.path.exists(os.path.join(qs.server_dir("server1"), "work", "supervisor-beat")), 20)
    os.kill(first, signal.SIGSTOP)
    second = wait_for(
        lambda: (supervisor_pid(arbiter) or first) != first and supervisor_pid(arbiter),
        timeout=30,
        what="a new supervisor",
    )
    assert second != first and not pid_alive(first)
    log = open(os.path.join(qs.server_dir("server1"), "logs", "server.log")).read()
    assert f"connector supervisor (pid {first}) made no progress for 4 s: SIGKILL" in log

    def live() -> bool:
        out = zato("cluster", "status", qs.path, "--json", check=False).stdout
        return json.loads(out)["servers"][0]["live"] is True

    wait_for(live, timeout=30, what="server1 in the cluster again")


def test_up_status_and_graceful_stop(cluster):
    from zato.odb import api as odb_api
    from zato.odb.engine import ODB

    settings = cluster.settings("server1")
    odb = ODB(settings.odb_url)
    try:
        status = {s.name: s.up_status for s in odb_api.list_servers(odb, cluster.cluster)}
        assert status["server1"] == status["server2"] == "running"
        assert status["server3"] == "clean-down"
        zato(
            "channel",
            "create",
            cluster.path,
            "--name",
            "slow",
            "--url-path",
            "/slow",
            "--service",
            "demo.slow",
            "--data-format",
            "text",
        )
        url = cluster.server_url("server1") + "/slow"
        pids = {name: cluster.pid(name) for name in cluster.server_names}
        with ThreadPoolExecutor(1) as pool:
            wait_for(lambda: requests.get(url, timeout=10).status_code == 200, timeout=30, what="/slow")
            in_flight = pool.submit(requests.get, url, timeout=30)
            wait_for(lambda: requests_in_flight(cluster.server_url("server1")) >= 1, timeout=10,
                     what="/slow at a worker")  # fmt: skip
            outputs = cluster.stop()
            r = in_flight.result()
        assert r.status_code == 200 and r.text == "finished"  # drained, not cut off
        for name in cluster.server_names:
            assert any(f"server {name} stopped" in out for out in outputs)
            assert not os.path.exists(os.path.join(cluster.server_dir(name), "pidfile"))
            assert not pid_alive(pids[name])
        status = {s.name: s.up_status for s in odb_api.list_servers(odb, cluster.cluster)}
        assert status["server1"] == status["server2"] == "clean-down"
    finally:
        odb.dispose()
