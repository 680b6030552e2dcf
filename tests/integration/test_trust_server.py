"""A deployed module, a bad file or a second server must not own the cluster (issue 15):
internal services are reserved, service code sees no secret, files are owner-only, weak
passwords and taken server names are refused at start, and slow or hostile modules are
refused before any worker loads them. One real cluster (one server, the LB) for the module."""

from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.support import REDIS_URL, free_port, wait_for, zato
from zato.coord.keys import Keys
from zato.service.deploy import MAX_PARALLEL

SECRET_PEEK = """
from zato.service import Service

class Peek(Service):
    name = "peek.secrets"

    def handle(self):
        server = {}
        for k in dir(self.server):
            if k.startswith("__"):
                continue
            try:
                server[k] = repr(getattr(self.server, k))
            except Exception as e:  # Zato's APIs left out (self.server.cluster_id...): NotSupported
                server[k] = f"{type(e).__name__}: {e}"
        self.response.payload = {"server": server, "headers": dict(self.request.headers)}
"""

FAKE_PING = """
from zato.service import Service

class Ping(Service):
    name = "zato.ping"

    def handle(self):
        self.response.payload = {"pong": "owned"}
"""

SLOW_IMPORT = """
import time
from zato.service import Service

started = time.monotonic()
while time.monotonic() - started < 6:  # busy: no gevent timeout can cut it short in a worker
    pass

class Late(Service):
    def handle(self):
        pass
"""

SLOW_BUT_WITHIN_BUDGET = """
import time
from zato.service import Service

time.sleep(0.8)  # within the 2 s import budget: each validation child lives a while

class Bounded(Service):
    name = "bounded.{n}"

    def handle(self):
        pass
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    cluster = module_quickstart(servers=1)
    cluster.start()
    wait_for(lambda: requests.get(cluster.lb_url + "/zato/ping", timeout=2).ok, 30, what="the LB to serve")
    return cluster


def admin(qs, method: str, path: str, **kw) -> requests.Response:
    return requests.request(
        method, qs.server_url("server1") + "/zato/admin" + path, auth=qs.admin_auth, timeout=60, **kw
    )


def test_a_module_cannot_define_or_replace_an_internal_service(qs):
    r = admin(qs, "POST", "/deploy?name=fake_ping", data=FAKE_PING.encode())
    assert r.status_code == 400
    assert "'zato.ping'" in r.json()["zato_env"]["details"]
    ping = requests.get(qs.lb_url + "/zato/ping", timeout=5).json()
    assert ping["zato_ping_response"] == {"pong": "zato"}


CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://evil.example"},
    {"Origin": "http://[::1"},  # not readable as an address (before: a 500 and a traceback in server.log)
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_web_page_of_another_site_cannot_use_the_admin_credentials_of_a_browser(qs, headers):
    """A browser that logged in to the admin API (HTTP Basic Auth) sends the credentials with
    any request to it, also one a page of another site makes it send: a form posting a module
    to /zato/admin/deploy would run code on every server. Such requests are refused (403), on a
    server's port and through the LB; curl, the CLI and zato-client send no such headers."""
    module = f"csrf_{abs(hash(str(headers))) % 10_000}"
    source = f"from zato.server.service import Service\n\nclass C(Service):\n    name = '{module}.svc'\n"
    for base in (qs.server_url("server1"), qs.lb_url):
        r = requests.post(f"{base}/zato/admin/deploy?name={module}", data=source.encode(), auth=qs.admin_auth,
                          headers=headers, timeout=30)  # fmt: skip
        assert r.status_code == 403, r.text
        assert "takes no requests from other sites' web pages" in r.json()["zato_env"]["details"]
        settings = qs.settings("server1")
        invoke_auth = (settings.invoke_username, settings.invoke_password)
        r = requests.get(f"{base}/zato/api/invoke/zato.ping", auth=invoke_auth, headers=headers, timeout=30)
        assert r.status_code == 403, r.text
    services = admin(qs, "GET", "/services", headers=headers).json()  # reading is not refused
    assert not any(s.startswith(module) for s in json.dumps(services).split('"'))
    same = {"Sec-Fetch-Site": "same-origin", "Origin": qs.server_url("server1")}
    assert admin(qs, "POST", f"/deploy?name={module}", data=source.encode(), headers=same).status_code == 200
    assert admin(qs, "DELETE", f"/deploy/{module}").status_code == 200


def test_service_code_sees_no_secret_and_no_internal_header(qs):
    assert admin(qs, "POST", "/deploy?name=peek", data=SECRET_PEEK.encode()).status_code == 200
    channel = {"name": "peek", "url_path": "/peek", "service": "peek.secrets"}
    assert admin(qs, "POST", "/channels", json=channel).status_code in (200, 201)
    probe = {"X-Zato-Secret": "probe-value"}
    r = wait_for(
        lambda: (resp := requests.get(qs.lb_url + "/peek", headers=probe, timeout=5)).ok and resp,
        30,
        what="the channel to answer",
    )
    settings = qs.settings("server1")
    assert r.json()["server"]["name"] == "'server1'"  # the public facts are there
    assert r.json()["server"]["fs_server_config"].startswith("NotSupported: ")  # said, not given
    for secret in (settings.cluster_secret, settings.admin_password, settings.odb_url):
        assert secret not in r.text
    assert "probe-value" not in r.text and "X-Zato-Secret" not in r.json()["headers"]


def test_odb_and_component_folders_are_owner_only(qs):
    paths = [os.path.join(qs.path, "odb.db")]
    paths += [p for p in (paths[0] + "-wal", paths[0] + "-shm") if os.path.exists(p)]
    for sub in ("logs", "pickup", "work", "config"):
        paths.append(os.path.join(qs.server_dir("server1"), sub))
    for sub in ("logs", "work", "config"):
        paths.append(os.path.join(qs.lb_dir, sub))
    modes = {p: stat.S_IMODE(os.stat(p).st_mode) for p in paths}
    assert {p: oct(m) for p, m in modes.items() if m & 0o077} == {}


def copy_of_server1(qs, tmp_path, **auth_or_main: str) -> str:
    """A new server directory joined to the cluster, with some [auth]/[main] values changed."""
    path = str(tmp_path / "other")
    zato(
        "create",
        "server",
        path,
        "--join",
        qs.server_dir("server1"),
        "--port",
        str(free_port()),
        "--name",
        f"other{free_port()}",
    )
    conf = os.path.join(path, "config", "server.conf")
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(conf)
    for key, value in auth_or_main.items():
        cp.set("auth" if key in ("admin_password", "cluster_secret") else "main", key, value)
    with open(conf, "w") as f:
        cp.write(f)
    return path


def start_refused(path: str) -> subprocess.CompletedProcess:
    """`zato start` of a server that must be refused; stopped again should it start anyway."""
    out = zato("start", path, check=False)
    if out.returncode == 0:
        zato("stop", path, check=False)
    return out


@pytest.mark.parametrize(
    ("key", "value"), [("admin_password", ""), ("admin_password", "short"), ("cluster_secret", "tiny")]
)
def test_an_empty_or_short_password_or_secret_is_refused_at_start(qs, tmp_path, key, value):
    out = start_refused(copy_of_server1(qs, tmp_path, **{key: value}))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"[auth] {key}" in lines[0] and "Traceback" not in out.stderr


def test_a_second_server_with_a_live_servers_name_is_refused(qs, tmp_path):
    path = copy_of_server1(qs, tmp_path, name="server1")
    out = start_refused(path)
    assert out.returncode == 1 and "'server1' is taken by the live server" in out.stderr
    r = requests.get(qs.lb_url + "/zato/ping", timeout=5)
    assert r.ok  # the real server1 is still a member, still in the LB


def test_a_slow_importing_module_is_refused_and_every_ping_is_answered(qs):
    failures: list[str] = []
    done = threading.Event()
    answered = [0]

    def pinger() -> None:
        session = requests.Session()
        while not done.is_set():
            try:
                r = session.get(qs.lb_url + "/zato/ping", timeout=10)
                answered[0] += 1
                if r.status_code != 200:
                    failures.append(str(r.status_code))
            except requests.RequestException as e:
                failures.append(type(e).__name__)

    thread = threading.Thread(target=pinger, daemon=True)
    thread.start()
    try:
        r = admin(qs, "POST", "/deploy?name=slow_import", data=SLOW_IMPORT.encode())
        detail = r.json()["zato_env"]["details"]
        assert r.status_code == 400 and "import budget" in detail and "raise [main] import_budget" in detail
    finally:
        done.set()
        thread.join(15)
    assert answered[0] > 0 and failures == []


def parent_pid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None  # gone meanwhile


def validation_children(parents: set[int]) -> dict[int, int]:
    """{parent pid: how many validation children (`python ... -m zato.service.deploy`) it has
    now}, for `parents` (the server's workers), read from /proc."""
    counts: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        parent = parent_pid(pid)
        if b"zato.service.deploy" in argv and parent in parents:
            counts[parent] = counts.get(parent, 0) + 1
    return counts


def deploy_bounded(qs, n: int) -> requests.Response:
    return admin(qs, "POST", f"/deploy?name=bounded_{n}", data=SLOW_BUT_WITHIN_BUDGET.format(n=n).encode())


def test_parallel_deploys_run_at_most_max_parallel_validations_per_worker(qs):
    arbiter, workers = qs.pid("server1"), qs.settings("server1").workers
    forked = {int(p) for p in filter(str.isdigit, os.listdir("/proc")) if parent_pid(p) == arbiter}
    assert len(forked) >= workers  # the workers (and the arbiter's other children)
    peak_per_worker, peak_total = [0], [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            counts = validation_children(forked)
            peak_per_worker[0] = max([peak_per_worker[0], *counts.values()])
            peak_total[0] = max(peak_total[0], sum(counts.values()))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(deploy_bounded, [qs] * 6, range(6)))
    finally:
        done.set()
        sampler.join(5)
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert 1 <= peak_per_worker[0] <= MAX_PARALLEL  # the rest waited for a slot, not in a process
    assert peak_total[0] <= MAX_PARALLEL * workers < 6


def test_zato_deploy_does_not_run_a_json_py_from_the_current_folder(qs, tmp_path):
    work = tmp_path / "here"
    work.mkdir()
    owned = tmp_path / "owned"
    (work / "json.py").write_text(f"open({str(owned)!r}, 'w').write('owned')\nfrom _json import *\n")
    (work / "harmless.py").write_text("from zato.service import Service\n\nclass H(Service):\n    pass\n")
    cli = os.path.join(os.path.dirname(sys.executable), "zato")
    out = subprocess.run(
        [cli, "deploy", qs.server_dir("server1"), "harmless.py"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert not owned.exists()


def server_log(qs) -> str:
    with open(os.path.join(qs.server_dir("server1"), "logs", "server.log"), errors="replace") as f:
        return f.read()


def services(qs) -> list[str]:
    return admin(qs, "GET", "/services").json()["services"]


def test_the_pickup_folder_refuses_a_symlink_and_says_so_once(qs, tmp_path):
    target = tmp_path / "elsewhere.py"
    target.write_text("from zato.service import Service\n\nclass Linked(Service):\n    name = 'linked.svc'\n")
    pickup = os.path.join(qs.server_dir("server1"), "pickup")
    os.symlink(target, os.path.join(pickup, "linked.py"))
    for n in (1, 2):  # two deploys of files listed after it: the folder was polled twice since
        with open(os.path.join(pickup, f"z_after{n}.py"), "w") as f:
            f.write(f"from zato.service import Service\n\nclass A(Service):\n    name = 'after.{n}'\n")
        wait_for(lambda n=n: f"after.{n}" in services(qs), 30, what=f"z_after{n}.py deployed")
    assert "linked.svc" not in services(qs)
    assert server_log(qs).count("linked.py is broken, not deployed: not a regular file") == 1


@pytest.mark.parametrize("breakage", ["latin-1", "directory", "log level"])
def test_a_bad_server_conf_is_one_line_at_start(qs, tmp_path, breakage):
    path = copy_of_server1(qs, tmp_path)
    conf = os.path.join(path, "config", "server.conf")
    if breakage == "latin-1":
        with open(conf, "ab") as f:
            f.write(b"# caf\xe9\n")
    elif breakage == "directory":
        os.unlink(conf)
        os.mkdir(conf)
    else:
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(conf)
        cp.set("logging", "level", "LOUD")
        with open(conf, "w") as f:
            cp.write(f)
    out = start_refused(path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "server.conf" in lines[0], out.stderr
    assert {"latin-1": "not UTF-8", "directory": "cannot read", "log level": "'LOUD'"}[breakage] in lines[0]


def test_a_burst_of_forged_channel_events_changes_nothing_and_is_said_once(qs):
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for i in range(300):
            event = {"kind": "channel", "name": [{"a": i}] if i % 2 else f"no-such-channel-{i}"}
            client.publish(Keys(qs.cluster).events, json.dumps(event))
        client.publish(Keys(qs.cluster).events, json.dumps({"kind": "channel", "name": "after-burst"}))
    finally:
        client.close()
    wait_for(lambda: "HTTP channel after-burst reloaded" in server_log(qs), 30, what="the burst to be read")
    assert server_log(qs).count("ignoring channel events without a valid channel name") == 1
    assert requests.get(qs.lb_url + "/zato/ping", timeout=5).ok
