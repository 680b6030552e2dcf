"""Secured HTTP channels on a real two-server cluster behind its LB: a channel names a security
definition (HTTP Basic Auth or an API key), made through the CLI (the password from stdin) or
the admin API, and every server answers 401 to a caller without its credentials, before any
service runs. A change to the definition holds on every worker (a config event tells them;
tests/unit/test_channel_security.py has the worker's side of it)."""

from __future__ import annotations

import glob
import os
import pty
import select
import signal
import sqlite3
import sys
import time

import pytest
import requests

from tests.conn_support import TCPProxy
from tests.support import PG_URL, free_port, sqlite_worker, wait_for, zato
from zato.odb import connectors
from zato.server.channel_security import Refused

SOURCE = """
from zato.server.service import Service


class Who(Service):
    name = "sec.who"

    def handle(self):
        counter = self.request.payload.get("counter") if self.request.payload else None
        calls = self.kvdb.conn.incr(counter) if counter else 0
        sec = self.channel.security
        self.response.payload = {
            "security": None if sec is None else [sec.name, sec.type, sec.username],
            "headers": sorted(self.request.http.headers),
            "environ": sorted(k for k in self.wsgi_environ if k.startswith("HTTP_")),
            "request_environ": sorted(k for k in self.request.environ or {} if k.startswith("HTTP_")),
            "calls": calls,
        }
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    # Many wrong passwords from this one address below: the LB's throttle (tested on its own
    # cluster at the end) would answer them 429
    qs = module_quickstart(servers=2, workers=2, extra_conf={"lb:channels": {"max_failures": "0"}})
    qs.start()
    qs.deploy("secured", SOURCE)
    return qs


def bases(qs) -> list[str]:  # noqa: ANN001
    return [qs.server_url("server1"), qs.server_url("server2"), qs.lb_url]


def served(qs, path: str, status: int = 401, **kw) -> None:  # noqa: ANN001
    """Wait until every server (and the LB) answers `path` so: each worker applies a new channel
    when its config event arrives, moments after the command that made it returned."""
    for base in bases(qs):
        wait_for(lambda b=base: requests.get(b + path, timeout=5, **kw).status_code == status, what=path)


def stored_secret(qs, name: str) -> str:  # noqa: ANN001
    odb = glob.glob(os.path.join(qs.path, "**", "*.db"), recursive=True)
    assert odb, "the quickstart's SQLite ODB"
    with sqlite3.connect(odb[0]) as conn:
        return conn.execute("SELECT password FROM zato_http_security WHERE name = ?", (name,)).fetchone()[0]


def test_basic_auth_channel_answers_401_without_its_credentials_and_tells_the_service_who_called(qs):
    made = zato(
        "conn", "create", "security", qs.path, "--name", "crm-users", "--type", "basic_auth",
        "--username", "crm", "--realm", "CRM API", "--password", "-", input="pw-Tr0ub4dor\n",
    )  # fmt: skip
    assert "pw-Tr0ub4dor" not in made.stdout + made.stderr and "password=******" in made.stdout
    zato("channel", "create", qs.path, "--name", "who", "--url-path", "/sec/who", "--service", "sec.who",
         "--security", "crm-users")  # fmt: skip
    served(qs, "/sec/who")
    counter = f"zato:{qs.cluster}:test:calls"
    for base in bases(qs):
        url = f"{base}/sec/who"
        for auth in (None, ("crm", "wrong"), ("other", "pw-Tr0ub4dor"), ("crm", "")):
            r = requests.post(url, json={"counter": counter}, auth=auth, timeout=10)
            assert r.status_code == 401, (base, auth, r.text)
            assert r.headers["WWW-Authenticate"] == 'Basic realm="CRM API"'
            assert r.json()["zato_env"]["details"] == "wrong or missing credentials"
        r = requests.post(url, json={}, auth=("crm", "pw-Tr0ub4dor"), headers={"X-Trace": "t1"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["security"] == ["crm-users", "basic_auth", "crm"]
        assert "X-Trace" in r.json()["headers"] and "Authorization" not in r.json()["headers"]
        assert "HTTP_AUTHORIZATION" not in r.json()["environ"]
        assert "HTTP_AUTHORIZATION" not in r.json()["request_environ"], r.json()["request_environ"]
    ok = requests.post(
        f"{qs.lb_url}/sec/who", json={"counter": counter}, auth=("crm", "pw-Tr0ub4dor"), timeout=10
    )
    assert ok.json()["calls"] == 1  # the 12 refused requests never ran the service
    stored = stored_secret(qs, "crm-users")
    assert stored.startswith("pbkdf2_sha256$") and "pw-Tr0ub4dor" not in stored
    text = qs.server_logs("*.log")
    assert "HTTP channel who: rejected credentials (user 'crm')" in text
    assert "pw-Tr0ub4dor" not in text


def test_rejected_credentials_through_the_lb_are_logged_with_the_clients_forwarded_address(qs):
    """Before: server.log's line said the request came `from 127.0.0.1`: the LB's address, the
    same for every client; the client's was only in haproxy.log and the access log. Now the line
    says the X-Forwarded-For the LB appended to (as carried: a client may write anything there)."""
    zato(
        "conn", "create", "security", qs.path, "--name", "from-users", "--type", "basic_auth",
        "--username", "from", "--password", "-", input="pw-from-1\n",
    )  # fmt: skip
    zato("channel", "create", qs.path, "--name", "who-from", "--url-path", "/sec/who-from",
         "--service", "sec.who", "--security", "from-users")  # fmt: skip
    served(qs, "/sec/who-from")
    headers = {"X-Forwarded-For": "203.0.113.9"}
    r = requests.post(
        f"{qs.lb_url}/sec/who-from", json={}, auth=("from", "wrong"), headers=headers, timeout=10
    )
    assert r.status_code == 401, r.text
    # 203.0.113.9 as the client wrote it, then 127.0.0.1, the address the LB took the request from
    said = "rejected credentials (user 'from') from 127.0.0.1 (X-Forwarded-For: 203.0.113.9,127.0.0.1)"
    wait_for(lambda: said in qs.server_logs("*.log"), 10, what="the rejected-credentials line")
    [line] = [x for x in qs.server_logs("*.log").splitlines() if said in x]
    assert "HTTP channel who-from: " + said in line, line
    assert "pw-from-1" not in qs.server_logs("*.log") and "wrong" not in line


def test_credentials_of_bytes_beyond_ascii_are_a_401_on_every_secured_path(qs):
    """An Authorization header whose Basic credentials hold a byte beyond ASCII (WSGI gives it as
    a latin-1 character). Before: a 500 'internal server error' and a traceback in server.log for
    each such request, from any client, before any credentials were checked."""
    zato("conn", "create", "security", qs.path, "--name", "latin-users", "--type", "basic_auth",
         "--username", "latin", "--password", "-", input="pw-latin-1234\n")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "latin", "--url-path", "/sec/latin", "--service", "sec.who",
         "--security", "latin-users")  # fmt: skip
    served(qs, "/sec/latin")
    for base in bases(qs):
        for path in ("/sec/latin", "/zato/admin/services", "/zato/api/invoke/sec.who"):
            for value in ("Basic \xff\xfe==", "Basic caf\xe9"):
                r = requests.get(base + path, headers={"Authorization": value}, timeout=10)
                assert r.status_code == 401, (base, path, value, r.text)
                assert r.json()["zato_env"]["details"] == "wrong or missing credentials"
    assert "unexpected error serving" not in qs.server_logs()


def at_a_terminal(argv: list[str], typed: str, timeout: float = 60) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as its controlling terminal (stdin, stdout, stderr), as
    someone typing it in a shell; `typed` is typed once the terminal has shown some output.
    Returns the exit code and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing of pytest's runs here
        os.execv(argv[0], argv)  # noqa: S606 - argv is this test's own, no shell
    shown, sent = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal (exited)
                    break
                if not chunk:
                    break
                shown += chunk
            if shown and not sent:
                os.write(fd, typed.encode())
                sent = True
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"{argv[3:]} did not end within {timeout} s at a terminal; showed {shown!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_a_password_dash_typed_at_a_terminal_is_asked_for_and_not_shown(qs):
    """README's `zato conn create ... --password -` typed as shown: it read stdin with no word,
    so at a terminal the command sat there as if it hung; the password typed was echoed."""
    code, shown = at_a_terminal(
        [sys.executable, "-m", "zato", "conn", "create", "security", qs.path, "--name", "typed",
         "--type", "basic_auth", "--username", "tty-user", "--password", "-"],
        "pw-typed-9\n",
    )  # fmt: skip
    assert code == 0, shown
    assert "password of security typed (not shown" in shown, shown
    assert "pw-typed-9" not in shown and "created security typed" in shown, shown
    zato("channel", "create", qs.path, "--name", "typed", "--url-path", "/sec/typed", "--service", "sec.who",
         "--security", "typed")  # fmt: skip
    served(qs, "/sec/typed")
    r = requests.post(f"{qs.lb_url}/sec/typed", json={}, auth=("tty-user", "pw-typed-9"), timeout=10)
    assert r.status_code == 200, r.text


def test_apikey_channel_made_through_the_admin_api_hides_the_key_from_the_service(qs):
    admin = requests.Session()
    admin.auth = qs.admin_auth
    api = f"{qs.server_url('server1')}/zato/admin"
    r = admin.post(
        f"{api}/conn/security",
        json={"name": "partner", "type": "apikey", "header": "X-Partner-Key", "password": "k-8f3a"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    assert r.json()["password"] == "******" and "username" not in r.json()
    r = admin.post(
        f"{api}/channels",
        json={"name": "who-key", "url_path": "/sec/key", "service": "sec.who", "security": "partner"},
        timeout=10,
    )
    assert r.status_code == 201 and r.json()["channel"]["security"] == "partner", r.text
    served(qs, "/sec/key")
    for base in bases(qs):
        for headers in ({}, {"X-Partner-Key": "k-8f3"}, {"X-API-Key": "k-8f3a"}):
            r = requests.get(f"{base}/sec/key", headers=headers, timeout=10)
            assert r.status_code == 401 and "WWW-Authenticate" not in r.headers, (base, headers)
        r = requests.get(f"{base}/sec/key", headers={"X-Partner-Key": "k-8f3a"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["security"] == ["partner", "apikey", None]
        assert "X-Partner-Key" not in r.json()["headers"] and "HTTP_X_PARTNER_KEY" not in r.json()["environ"]
        assert "HTTP_X_PARTNER_KEY" not in r.json()["request_environ"]
    assert "HTTP channel who-key: rejected credentials (no X-Partner-Key header)" in qs.server_logs("*.log")
    listed = admin.get(f"{api}/channels", timeout=10).json()["channels"]
    assert {c["name"]: c["security"] for c in listed}["who-key"] == "partner"
    same = {"name": "who-key", "url_path": "/sec/key", "service": "sec.who"}
    forgot = admin.post(f"{api}/channels", json=same, timeout=10)
    assert forgot.status_code == 400 and "secured by 'partner'" in forgot.text, forgot.text
    assert admin.post(f"{api}/channels", json={**same, "security": None}, timeout=10).status_code == 200
    served(qs, "/sec/key", 200)  # opened on purpose


def test_a_changed_or_switched_off_definition_holds_on_every_worker(qs):
    zato("conn", "create", "security", qs.path, "--name", "ops", "--type", "basic_auth", "--username", "ops",
         "--password", "-", input="first\n")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "ops", "--url-path", "/sec/ops", "--service", "sec.who",
         "--security", "ops")  # fmt: skip
    served(qs, "/sec/ops", 200, auth=("ops", "first"))

    def statuses(auth) -> set[int]:  # noqa: ANN001 - 8 calls: both workers of each server, likely
        return {
            requests.get(f"{b}/sec/ops", auth=auth, timeout=10).status_code
            for b in bases(qs)
            for _ in range(3)
        }

    assert statuses(("ops", "first")) == {200}  # every worker has read (and cached) the definition
    zato("conn", "edit", "security", qs.path, "--name", "ops", "--password", "-", input="second\n")
    wait_for(lambda: statuses(("ops", "first")) == {401}, what="the old password refused")
    assert statuses(("ops", "second")) == {200}
    zato("conn", "edit", "security", qs.path, "--name", "ops", "--active", "false")
    wait_for(lambda: statuses(("ops", "second")) == {401}, what="an inactive definition refusing")
    assert "HTTP channel ops: its security definition 'ops' is inactive" in qs.server_logs("*.log")
    zato("conn", "edit", "security", qs.path, "--name", "ops", "--active", "true")
    wait_for(lambda: statuses(("ops", "second")) == {200}, what="the definition active again")


def test_a_definition_in_use_cannot_be_deleted_or_renamed_and_a_channel_needs_one_that_exists(qs):
    zato("conn", "create", "security", qs.path, "--name", "temp", "--type", "apikey", "--password", "t")
    zato("channel", "create", qs.path, "--name", "temp", "--url-path", "/sec/temp", "--service", "sec.who",
         "--security", "temp")  # fmt: skip
    for args in (("delete", "security", qs.path, "--name", "temp"),
                 ("edit", "security", qs.path, "--name", "temp", "--new-name", "temp2")):  # fmt: skip
        refused = zato("conn", *args, check=False)
        assert refused.returncode != 0 and "HTTP channel(s) temp use it" in refused.stderr
    served(qs, "/sec/temp", 200, headers={"X-API-Key": "t"})
    missing = zato("channel", "create", qs.path, "--name", "x", "--url-path", "/sec/x",
                   "--service", "sec.who", "--security", "nope", check=False)  # fmt: skip
    assert missing.returncode != 0 and "no security definition named 'nope'" in missing.stderr
    no_user = zato("conn", "create", "security", qs.path, "--name", "u", "--type", "basic_auth", "--password",
                   "p", check=False)  # fmt: skip
    assert no_user.returncode != 0 and "a basic_auth definition needs a username" in no_user.stderr
    forgot = zato("channel", "create", qs.path, "--name", "temp", "--url-path", "/sec/temp", "--service",
                  "sec.who", check=False)  # fmt: skip
    assert forgot.returncode != 0 and "channel temp is secured by 'temp'" in forgot.stderr
    assert "--security temp" in forgot.stderr and "--open" in forgot.stderr
    served(qs, "/sec/temp", 401)  # still secured
    zato("channel", "create", qs.path, "--name", "temp", "--url-path", "/sec/temp", "--service", "sec.who",
         "--open")  # fmt: skip
    wait_for(lambda: requests.get(f"{qs.lb_url}/sec/temp", timeout=10).status_code == 200, what="open again")
    zato("conn", "delete", "security", qs.path, "--name", "temp")
    listed = zato("channel", "list", qs.path).stdout
    assert "temp: any /sec/temp -> sec.who [json] open" in listed and "who: any /sec/who" in listed


def test_a_worker_rereads_a_definition_on_its_config_event(tmp_path, cluster):
    with sqlite_worker(tmp_path, cluster) as (odb, worker):
        connectors.create(odb, cluster, "security", {"name": "k", "type": "apikey", "password": "one"})
        assert worker.guard.check("ch", "k", {"HTTP_X_API_KEY": "one"})  # read, and kept RECHECK seconds
        connectors.edit(odb, cluster, "security", "k", {"password": "two"})
        worker.on_event({"kind": "connector", "type": "security", "name": "k"})
        with pytest.raises(Refused):
            worker.guard.check("ch", "k", {"HTTP_X_API_KEY": "one"})
        assert worker.guard.check("ch", "k", {"HTTP_X_API_KEY": "two"})


def test_an_address_guessing_passwords_through_the_lb_is_throttled(quickstart):
    qs = quickstart(servers=1, workers=1)
    qs.start()
    qs.deploy("secured", SOURCE)
    zato("conn", "create", "security", qs.path, "--name", "s", "--type", "basic_auth", "--username", "u",
         "--password", "-", input="right\n")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "s", "--url-path", "/sec/s", "--service", "sec.who",
         "--security", "s")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "o", "--url-path", "/sec/open", "--service", "sec.who")
    url = f"{qs.lb_url}/sec/s"
    wait_for(lambda: requests.get(url, auth=("u", "right"), timeout=5).status_code == 200, what="served")
    codes = [requests.get(url, auth=("u", f"guess-{i}"), timeout=10).status_code for i in range(25)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}  # [channels] max_failures: 20 a minute
    refused = requests.get(url, auth=("u", "right"), timeout=10)
    assert refused.status_code == 429 and "too many failed logins" in refused.json()["zato_env"]["details"]
    assert requests.get(f"{qs.lb_url}/sec/open", timeout=10).status_code == 429  # the whole address
    direct = requests.get(f"{qs.server_url('server1')}/sec/s", auth=("u", "right"), timeout=10)
    assert direct.status_code == 200  # the servers' own ports are not throttled
    assert requests.get(f"{qs.lb_url}/zato/admin/channels", auth=qs.admin_auth, timeout=10).ok  # nor admin


def test_while_the_odb_is_away_a_secured_channel_goes_on_checking_callers(quickstart):
    """PostgreSQL reached through a proxy the test stops: the server keeps the definitions it
    read (as it keeps its channels), so callers are still told apart, none let in."""
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    try:
        url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        qs = quickstart(servers=1, workers=1, odb=url)
        qs.start()
        qs.deploy("secured", SOURCE)
        zato("conn", "create", "security", qs.path, "--name", "k", "--type", "apikey", "--password", "key-1")
        zato("channel", "create", qs.path, "--name", "k", "--url-path", "/sec/odb", "--service", "sec.who",
             "--security", "k")  # fmt: skip
        urls = [qs.server_url("server1") + "/sec/odb", qs.lb_url + "/sec/odb"]
        for url in urls:
            wait_for(lambda u=url: requests.get(u, headers={"X-API-Key": "key-1"}, timeout=5).ok, what=url)
        proxy.stop()  # the ODB is away
        time.sleep(2.5)  # past the definition's recheck: the next request tries the ODB
        for url in urls:
            for key, status in (("key-1", 200), ("nope", 401), ("", 401)):
                r = requests.get(url, headers={"X-API-Key": key}, timeout=10)
                assert r.status_code == status, (url, key, r.text)
        assert "cannot read security definitions from the ODB" in qs.server_logs("*.log")
    finally:
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly
