"""Service names beyond ASCII on a real server behind its LB: what deploy accepts, every way of
naming a service accepts (zato service invoke, /zato/api/invoke/{service}, a channel, a
connector's /zato/internal/ call), and a name none of them could ever use is refused at deploy."""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest
import redis
import requests

from tests.support import REDIS_URL, signed_headers, wait_for, zato
from zato.coord.keys import Keys

MODULE = """
from zato.server.service import Service


class Turtle(Service):
    name = "ex.żółw"

    def handle(self):
        self.response.payload = {"turtle": self.name, "got": self.request.payload}


class Żółw(Service):  # no name: module-name.class-name
    def handle(self):
        self.response.payload = {"turtle": self.name}
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    qs = module_quickstart(servers=1, workers=1)
    qs.start()
    qs.deploy("ex_uni", MODULE)
    return qs


def invoke_auth(qs) -> tuple[str, str]:  # noqa: ANN001
    s = qs.settings("server1")
    return s.invoke_username, s.invoke_password


def test_a_name_beyond_ascii_is_invoked_by_the_cli_and_the_invoke_api(qs):
    """Before: `zato service invoke QS ex.żółw` was a 404 `no such service: ex.Å¼Ã³Åw` (the
    path read as latin-1) though /zato/admin/invoke ran it."""
    for name in ("ex.żółw", "ex-uni.żółw"):
        done = zato("service", "invoke", qs.path, name, "--payload", '{"a": 1}', check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["turtle"] == name
    for base in (qs.server_url("server1"), qs.lb_url):
        url = f"{base}/zato/api/invoke/{urllib.parse.quote('ex.żółw', safe='')}"
        r = requests.post(url, json={"a": 2}, auth=invoke_auth(qs), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == {"turtle": "ex.żółw", "got": {"a": 2}}


def test_a_channel_serves_a_service_named_beyond_ascii(qs):
    """Before: `zato channel create ... --service ex.żółw` said `channel service 'ex.żółw' is not
    a service name`."""
    done = zato(
        "channel", "create", qs.path, "--name", "turtle", "--url-path", "/turtle", "--service", "ex.żółw",
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower()  # the server has the service: no "no server has it"
    url = qs.lb_url + "/turtle"
    wait_for(lambda: requests.post(url, json={}, timeout=5).status_code == 200, 30, what=url)
    assert requests.post(url, json={"b": 3}, timeout=5).json() == {"turtle": "ex.żółw", "got": {"b": 3}}


def test_a_connectors_call_reaches_a_service_named_beyond_ascii(qs):
    """An AMQP, ZeroMQ or IBM MQ channel's message reaches its service through
    /zato/internal/invoke/{service} (%-escaped UTF-8, signed over the name): before, the name
    was read as latin-1 and the call refused."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        epoch = int(client.get(Keys(qs.cluster).epoch) or 0)
    finally:
        client.close()
    body = b'{"c": 4}'
    headers = {
        "Content-Type": "application/json",
        **signed_headers(qs.cluster_secret, epoch, "ex.żółw", body),
    }
    url = f"{qs.server_url('server1')}/zato/internal/invoke/{urllib.parse.quote('ex.żółw', safe='')}"
    r = requests.post(url, data=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"turtle": "ex.żółw", "got": {"c": 4}}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("has space", "it holds whitespace"),
        ("tab\there", "it holds whitespace"),
        ("zero\u200bwidth", "it holds a control or invisible character"),
        ("a/b", "it holds a /"),
    ],
)
def test_a_name_nothing_could_invoke_is_refused_at_deploy_in_one_line(qs, name, why):
    """Before: 'has space' was deployed, and then no channel could name it."""
    path = os.path.join(qs.path, "unusable.py")
    with open(path, "w") as f:
        f.write(f"from zato.server.service import Service\n\nclass Bad(Service):\n    name = {name!r}\n")
    done = zato("deploy", qs.path, path, check=False)
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zato: error: "), done.stderr
    assert f"service name {name!r} cannot be used: {why}" in lines[0]
    listed = requests.post(
        f"{qs.server_url('server1')}/zato/api/invoke/zato.service.list",
        json={},
        auth=invoke_auth(qs),
        timeout=10,
    ).json()
    assert name not in json.dumps(listed, ensure_ascii=False)
