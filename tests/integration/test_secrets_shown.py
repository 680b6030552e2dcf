"""Secrets in what the cluster shows: `zato cluster status` and the logs name the Redis a
cluster uses by its URL, and never with its password; an outgoing connection's address, shown
in every view, never holds one (docs/trust.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from tests.support import (
    PG_URL,
    REDIS_URL,
    cleanup_redis,
    cluster_name,
    free_port,
    one_line_error,
    redis_server,
    stop_process,
    wait_for,
    zato,
)

PASSWORD = "secaudit-redis-password-4711"


def test_a_redis_password_given_without_a_user_is_not_shown_nor_logged(quickstart, tmp_path):
    """[kvdb] url = redis://:PASSWORD@host:port/0, Redis's own form for `requirepass` (no user
    name). Before, `zato cluster status` printed the whole URL, password included, at every run,
    and the server's log said it again in each line about Redis being away: only URLs with a
    user name before the ":" had their password hidden."""
    port = free_port()
    proc = redis_server(port, tmp_path, "--requirepass", PASSWORD)
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        conf = {"kvdb": {"url": url}}
        qs = quickstart(servers=1, cluster=cluster_name("secaudit"), lb=False, extra_conf=conf)
        qs.start()
        status = zato("cluster", "status", qs.path, check=False)  # exit 1: no load balancer runs
        assert f"redis://:******@127.0.0.1:{port}/0" in status.stdout, status.stdout
        assert PASSWORD not in status.stdout + status.stderr
    finally:
        stop_process(proc)
    # Redis away: the server says so in its log, naming the Redis it cannot reach
    wait_for(lambda: f"127.0.0.1:{port}" in qs.server_logs(), 30, what="server.log naming the Redis away")
    logs = qs.server_logs("*.log")
    assert f"redis://:******@127.0.0.1:{port}/0" in logs
    assert PASSWORD not in logs


def test_an_outgoing_http_address_with_a_password_is_refused_without_saying_it(quickstart):
    """An outgoing HTTP connection's address is shown in every view (`zato conn list`, the admin
    API, the logs). Before, https://USER:PASSWORD@host was taken and shown whole next to
    `password=******`; now it is refused as an SQL URL with a password is, and the error does not
    repeat it."""
    qs = quickstart(servers=1, cluster=cluster_name("secaudit"), lb=False)
    qs.start()
    address = f"https://crm:{PASSWORD}@crm.example.com:8443"
    cli = zato("conn", "create", "http-outgoing", qs.path, "--name", "crm", "--address", address, check=False)
    one_line_error(cli, "keep the password out of the address", "username and password")
    assert PASSWORD not in cli.stdout + cli.stderr
    url = f"{qs.server_url('server1')}/zato/admin/conn/http-outgoing"
    r = requests.post(url, json={"name": "crm", "address": address}, auth=qs.admin_auth, timeout=30)
    assert r.status_code == 400 and "keep the password out of the address" in r.text, r.text
    assert PASSWORD not in r.text
    listed = zato("conn", "list", qs.path).stdout
    assert "crm" not in listed and PASSWORD not in listed
    ok = zato("conn", "create", "http-outgoing", qs.path, "--name", "crm", "--address", "https://crm.example.com",
              "--username", "crm", "--password", "-", input=PASSWORD + "\n")  # fmt: skip
    assert "password=******" in ok.stdout and PASSWORD not in ok.stdout + zato("conn", "list", qs.path).stdout


def test_a_mistyped_redis_url_is_refused_without_its_password(quickstart, tmp_path):
    """A scheme mistyped (reddis://) in --redis or [kvdb] url: before, the one-line error
    repeated the URL whole, password included, in the terminal and the CI log."""
    url = f"reddis://:{PASSWORD}@127.0.0.1:6379/0"
    made = zato("quickstart", "create", str(tmp_path / "never"), "--redis", url, check=False)
    one_line_error(made, "reddis://:******@127.0.0.1:6379/0", "is not a redis:// URL")
    assert PASSWORD not in made.stdout + made.stderr
    qs = quickstart(servers=1, cluster=cluster_name("secaudit"), lb=False, extra_conf={"kvdb": {"url": url}})
    started = zato("start", qs.server_dir("server1"), check=False)
    assert started.returncode != 0 and "is not a redis:// URL" in started.stdout + started.stderr
    assert PASSWORD not in started.stdout + started.stderr


def test_the_odb_and_redis_urls_can_come_from_stdin_so_ps_never_shows_them(tmp_path):
    """`zato quickstart create` / `zato create ...` took the ODB and Redis URLs only as
    arguments: while the command ran, every user of the host saw the passwords in `ps`
    (/proc/PID/cmdline), and the shell's history kept them. Now "-" reads each from stdin (a
    line each, --odb first), as `zato conn ... --password -` does."""
    from sqlalchemy.engine import make_url

    from zato.config.settings import load_server_settings

    odb = make_url(PG_URL).set(password=PASSWORD).render_as_string(hide_password=False)
    cluster, path = cluster_name("secaudit"), str(tmp_path / "qs")
    base, lb, dashboard = (str(free_port()) for _ in range(3))
    argv = [sys.executable, "-m", "zato", "quickstart", "create", path, "--servers", "1", "--cluster"]
    argv += [cluster, "--base-port", base, "--lb-port", lb, "--dashboard-port", dashboard]
    proc = subprocess.Popen([*argv, "--odb", "-", "--redis", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:

        def cmdline() -> str:  # what `ps` shows, while it waits for stdin
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                return f.read().decode(errors="replace")

        shown = str(wait_for(lambda: "quickstart" in cmdline() and cmdline(), 30, what="the command's exec"))
        out, _ = proc.communicate(f"{odb}\n{REDIS_URL}\n", timeout=120)
        assert proc.returncode == 0, out
        assert PASSWORD not in shown + out
        settings = load_server_settings(os.path.join(path, "server1"))
        assert make_url(settings.odb_url).password == PASSWORD and settings.redis.url == REDIS_URL
        listed = zato("cluster", "status", path, check=False)  # the cluster is there, in PostgreSQL
        assert f"Cluster {cluster}" in listed.stdout and PASSWORD not in listed.stdout + listed.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        cleanup_redis(cluster)


OUT_MODULE = """
from zato.server.service import Service


class Statement(Service):
    name = "secout.statement"

    def handle(self):
        self.response.payload = {"statement_of": self.request.http.params.get("acct")}


class Everyone(Service):
    name = "secout.everyone"

    def handle(self):
        self.response.payload = {"statement_of": "every account"}


class Proxy(Service):
    name = "secout.proxy"

    def handle(self):
        acct = self.request.http.GET.get("acct", "")
        conn = self.out.rest["bank"].conn
        self.response.payload = conn.get(self.cid, params={"acct": acct}).data
"""


def test_a_callers_dot_dot_in_an_outgoing_path_parameter_never_moves_the_call(quickstart):
    """A service filling an outgoing connection's path parameter from its caller's input, as
    Zato's services do (`/accounts/{acct}/statement`). Before, acct=".." made the server call
    /statement instead, with the connection's credentials: quote() keeps dots and
    requests removes dot segments; a hostile client chose which endpoint of the remote API the
    server called for it. Now such a value is refused and nothing is called."""
    qs = quickstart(servers=1, cluster=cluster_name("secaudit"), lb=False)
    qs.start()
    qs.deploy("secout", OUT_MODULE)
    server = qs.server_url("server1")
    routes = [
        ("/sec/accounts/{acct}/statement", "secout.statement"),
        ("/sec/statement", "secout.everyone"),
        ("/sec/proxy", "secout.proxy"),
    ]
    for i, (path, service) in enumerate(routes):
        zato("channel", "create", qs.path, "--name", f"sec-{i}", "--url-path", path, "--service", service)
    zato("conn", "create", "http-outgoing", qs.path, "--name", "bank", "--address", server,
         "--url-path", "/sec/accounts/{acct}/statement")  # fmt: skip
    ok = wait_for(lambda: requests.get(f"{server}/sec/proxy", params={"acct": "42"}, timeout=10), 30,
                  what="the proxy channel")  # fmt: skip
    assert ok.json() == {"statement_of": "42"}, ok.text
    for hostile in ("..", "."):
        r = requests.get(f"{server}/sec/proxy", params={"acct": hostile}, timeout=10)
        assert "every account" not in r.text, (hostile, r.text)
        assert r.status_code == 500, (hostile, r.status_code, r.text)
    logs = qs.server_logs()
    assert "path parameter acct is '..', which would make the request go to another path" in logs
