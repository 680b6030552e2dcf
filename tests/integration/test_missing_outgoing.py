"""A service that uses an outgoing connection the cluster does not have (never defined, or
defined inactive), on a real server behind its LB: the client gets a 500 naming the connection,
as Zato's KeyError is a 500, and server.log a WARNING naming the service, the connection and
the CID. Before: a 404, as if the client had asked for a channel that does not exist, and
nothing in server.log."""

from __future__ import annotations

import re

import pytest
import requests

from tests.support import wait_for, zato

MODULE = """
from zato.server.service import Service


class Rest(Service):
    name = "miss.rest"

    def handle(self):
        self.out.rest[self.request.payload["conn"]].conn.get(self.cid)


class Sql(Service):
    name = "miss.sql"

    def handle(self):
        with self.outgoing.sql.get("nope").session() as session:
            session.execute("select 1")


class Amqp(Service):
    name = "miss.amqp"

    def handle(self):
        self.outgoing.amqp.send({"a": 1}, "nope")


class Outer(Service):
    name = "miss.outer"

    def handle(self):
        self.invoke("miss.rest", {"conn": "nope"})


class Careful(Service):
    name = "miss.careful"

    def handle(self):
        try:
            self.out.rest["nope"]
        except KeyError:  # as in Zato; handled by the service itself: not the request's failure
            self.response.payload = {"fallback": True}
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    qs = module_quickstart(servers=1, workers=1)
    qs.start()
    qs.deploy("miss", MODULE)
    zato("conn", "create", "http-outgoing", qs.path, "--name", "off", "--address", "http://127.0.0.1:9",
         "--active", "false")  # fmt: skip
    for service in ("rest", "sql", "amqp", "outer", "careful"):
        zato("channel", "create", qs.path, "--name", f"miss-{service}", "--url-path", f"/miss/{service}",
             "--service", f"miss.{service}", "--method", "POST")  # fmt: skip
    url = qs.lb_url + "/miss/careful"
    wait_for(lambda: requests.post(url, json={}, timeout=5).status_code == 200, 30, what=url)
    return qs


@pytest.mark.parametrize(
    ("path", "body", "used_by", "detail"),
    [
        ("/miss/rest", {"conn": "nope"}, "miss.rest", "no active http-outgoing connection named 'nope'"),
        ("/miss/rest", {"conn": "off"}, "miss.rest", "no active http-outgoing connection named 'off'"),
        ("/miss/sql", {}, "miss.sql", "no active sql-outgoing connection named 'nope'"),
        ("/miss/amqp", {}, "miss.amqp", "no active amqp-outgoing connection named 'nope'"),
        (
            "/miss/outer",
            {},
            "miss.rest (invoked by miss.outer)",
            "no active http-outgoing connection named 'nope'",
        ),
    ],
)
def test_a_missing_or_inactive_connection_is_a_500_and_a_warning_with_the_cid(
    qs, path, body, used_by, detail
):
    r = requests.post(qs.lb_url + path, json=body, timeout=10)
    assert r.status_code == 500, r.text
    env = r.json()["zato_env"]
    assert env["result"] == "ZATO_ERROR" and env["details"] == detail
    cid = r.headers["X-Zato-CID"]
    assert env["cid"] == cid

    def line() -> str | None:
        found = [x for x in qs.server_logs().splitlines() if cid in x]
        return found[0] if len(found) == 1 else None

    logged = wait_for(line, 10, what=f"server.log's line for {cid}")
    assert re.search(
        rf"\bWARNING\b.*cid {cid}: service {re.escape(used_by)}: {re.escape(detail)} ", logged
    ), logged
    # A service that handles the LookupError itself answers as it likes, and nothing is logged.
    r = requests.post(qs.lb_url + "/miss/careful", json={}, timeout=10)
    assert (r.status_code, r.json()) == (200, {"fallback": True})
    assert r.headers["X-Zato-CID"] not in qs.server_logs()
