"""Access logs on a real server behind its LB: HAProxy writes a line per request to the LB's
logs/haproxy.log and the server one to its logs/http_access.log, both with the request's CID
(the LB makes it and the server uses it). tests/integration/test_metrics_logs.py has the JSON
format's access lines."""

from __future__ import annotations

import os
import re

import pytest
import requests

from tests.support import wait_for, zato
from zato.common.cid import is_cid, new_cid

MODULE = """
from zato.server.service import Service


class Echo(Service):
    name = "log.echo"

    def handle(self):
        self.logger.info("echo ran under cid %s", self.cid)
        self.response.payload = {"echo": self.request.input.get("q") if self.request.input else None}
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    qs = module_quickstart(servers=1, workers=2)
    qs.start()
    qs.deploy("logmod", MODULE)
    zato("channel", "create", qs.path, "--name", "echo", "--url-path", "/log/echo", "--service", "log.echo")
    zato("conn", "create", "security", qs.path, "--name", "ops", "--type", "basic_auth",
         "--username", "ops-user", "--password", "-", input="ops-pw\n")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "ops", "--url-path", "/log/ops", "--service", "log.echo",
         "--security", "ops")  # fmt: skip
    for path in ("/log/echo", "/log/ops"):  # each worker applies a channel when its event arrives
        for base in (qs.server_url("server1"), qs.lb_url):
            url = base + path
            wait_for(lambda u=url: requests.get(u, auth=("ops-user", "ops-pw"), timeout=5).ok, 30, what=url)
    return qs


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def access_log(qs) -> str:  # noqa: ANN001
    return read(os.path.join(qs.server_dir("server1"), "logs", "http_access.log"))


def lb_log(qs) -> str:  # noqa: ANN001
    return read(os.path.join(qs.lb_dir, "logs", "haproxy.log"))


def server_log(qs) -> str:  # noqa: ANN001
    return read(os.path.join(qs.server_dir("server1"), "logs", "server.log"))


def line_with(text: str, needle: str) -> str:
    found = [line for line in text.splitlines() if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def test_one_request_is_one_line_in_each_log_under_the_same_cid(qs):
    r = requests.get(
        f"{qs.lb_url}/log/echo",
        params={"q": "hi", "password": "hunter2"},
        headers={
            "User-Agent": 'probe "7"',
            "X-Forwarded-For": "198.51.100.1",
            "Referer": "http://x/?token=t0k",
        },
        timeout=10,
    )
    assert r.status_code == 200 and r.json() == {"echo": "hi"}
    assert "Server" not in r.headers  # the LB drops gunicorn's
    cid = r.headers["X-Zato-CID"]
    wait_for(lambda: cid in access_log(qs) and cid in lb_log(qs), 10, what="both access lines")
    server_line = line_with(access_log(qs), cid)
    pattern = (
        r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "
        r'"GET /log/echo\?q=hi&password=\*{6} HTTP/1\.1" 200 (\d+) "http://x/\?token=\*{6}" '
        r'"probe \\"7\\"" [\d.]+ms ' + cid + r' "198\.51\.100\.1,127\.0\.0\.1"$'
    )  # the client's own X-Forwarded-For, then the address the LB saw
    m = re.match(pattern, server_line)
    assert m, server_line
    assert int(m.group(1)) == len(r.content)
    lb_line = line_with(lb_log(qs), cid)
    assert " zato_servers/server1 " in lb_line and " 200 " in lb_line
    assert lb_line.endswith(' "GET /log/echo?q=hi&password=****** HTTP/1.1"'), lb_line
    assert "hunter2" not in access_log(qs) and "t0k" not in access_log(qs)
    assert "hunter2" not in lb_log(qs)  # before, the LB's log kept the query string whole


def test_the_user_is_logged_and_refusals_too(qs):
    ok = requests.get(f"{qs.lb_url}/log/ops", auth=("ops-user", "ops-pw"), timeout=10)
    refused = requests.get(f"{qs.lb_url}/log/ops", auth=("ops-user", "nope"), timeout=10)
    admin = requests.get(f"{qs.lb_url}/zato/admin/channels", auth=qs.admin_auth, timeout=10)
    assert (ok.status_code, refused.status_code, admin.status_code) == (200, 401, 200)
    cids = [r.headers["X-Zato-CID"] for r in (ok, refused, admin)]
    wait_for(lambda: all(c in access_log(qs) for c in cids), 10, what="three access lines")
    text = access_log(qs)
    ok_line, refused_line = line_with(text, cids[0]), line_with(text, cids[1])
    assert " - ops-user [" in ok_line and '"GET /log/ops HTTP/1.1" 200 ' in ok_line
    assert " - - [" in refused_line and '"GET /log/ops HTTP/1.1" 401 ' in refused_line
    assert f" - {qs.admin_auth[0]} [" in line_with(text, cids[2])
    assert "ops-pw" not in text and "nope" not in text


def test_what_the_lb_answers_itself_is_in_its_log_and_health_checks_are_in_neither(qs):
    refused = requests.get(f"{qs.lb_url}/zato/internal/invoke/log.echo", timeout=10)
    assert refused.status_code == 403
    cid = refused.json()["zato_env"]["cid"]
    assert refused.headers["X-Zato-CID"] == cid
    wait_for(lambda: cid in lb_log(qs), 10, what="the LB's line")
    assert " 403 " in line_with(lb_log(qs), cid) and cid not in access_log(qs)
    base = qs.server_url("server1")
    for path in ("/zato/ping", "/zato/ready", "/metrics"):
        assert requests.get(base + path, timeout=10).status_code == 200
    marker = requests.get(f"{base}/log/echo", timeout=10).headers["X-Zato-CID"]  # logged after them
    wait_for(lambda: marker in access_log(qs), 10, what="the marker line")
    text = access_log(qs)
    assert "/zato/ping" not in text and "/zato/ready" not in text and "/metrics" not in text
    assert "/zato/ready" not in lb_log(qs)  # HAProxy's health checks, several a second


@pytest.mark.parametrize("given", ["order-42", "0f5c9d6e-4b8a-4c21-9d3e-7a1b2c3d4e5f", "k" + "0" * 27])
def test_a_clients_cid_that_is_not_a_cid_is_replaced_by_one_cid_in_every_log(qs, given):
    """`curl -H 'X-Zato-CID: order-42' LB/...`: before, haproxy.log said order-42 (a UUID cut to
    28 characters) while the server made its own CID for the answer, http_access.log and
    server.log, so no grep found the request in both. Now the LB replaces it with a CID of its
    own, and the answer and all three logs carry that one. A server asked directly still makes
    its own CID for a malformed one (a CID must be well-formed and new for each request:
    zato.server.fatal tells a replay by it) and answers with the one it used."""
    r = requests.get(f"{qs.lb_url}/log/echo", params={"q": "x"}, headers={"X-Zato-CID": given}, timeout=10)
    assert r.status_code == 200, r.text
    cid = r.headers["X-Zato-CID"]
    assert is_cid(cid) and cid != given
    wait_for(lambda: cid in access_log(qs) and cid in lb_log(qs), 10, what="both access lines")
    assert '"GET /log/echo?q=x ' in line_with(lb_log(qs), cid)
    assert '"GET /log/echo?q=x ' in line_with(access_log(qs), cid)
    wait_for(lambda: f"echo ran under cid {cid}" in server_log(qs), 10, what="the service's line")
    assert given not in lb_log(qs) and given[:28] not in lb_log(qs)
    r = requests.get(f"{qs.server_url('server1')}/log/echo", headers={"X-Zato-CID": given}, timeout=10)
    direct = r.headers["X-Zato-CID"]
    assert r.status_code == 200 and is_cid(direct) and direct != given
    wait_for(lambda: f"echo ran under cid {direct}" in server_log(qs) and direct in access_log(qs), 10)
    assert given not in server_log(qs) and given not in access_log(qs)


def test_a_clients_own_well_formed_cid_is_the_requests_cid_also_in_what_the_lb_answers(qs):
    """A client's well-formed X-Zato-CID is kept: served, it is in the answer and every log;
    refused by the LB itself (403), it is in the LB's answer and log. Before, the LB's own
    answers carried a CID of HAProxy's making instead of the client's."""
    mine = new_cid()
    r = requests.get(f"{qs.lb_url}/log/echo", headers={"X-Zato-CID": mine}, timeout=10)
    assert (r.status_code, r.headers["X-Zato-CID"]) == (200, mine)
    wait_for(lambda: mine in access_log(qs) and mine in lb_log(qs), 10, what="both access lines")
    assert f"echo ran under cid {mine}" in server_log(qs)
    theirs = new_cid()
    refused = requests.get(
        f"{qs.lb_url}/zato/internal/invoke/log.echo", headers={"X-Zato-CID": theirs}, timeout=10
    )
    assert refused.status_code == 403
    assert refused.headers["X-Zato-CID"] == theirs == refused.json()["zato_env"]["cid"]
    wait_for(lambda: theirs in lb_log(qs), 10, what="the LB's line")
    assert " 403 " in line_with(lb_log(qs), theirs)
