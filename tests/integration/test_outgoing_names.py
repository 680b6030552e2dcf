"""Zato 4.1's own example services name their outgoing connections as people do,
`self.out.rest['Customer API']` (zato.io/en/docs/4.1/dev/rest/calling-apis.html), and deploy
unchanged here: an outgoing HTTP or SQL connection's name may hold spaces, through the CLI
(create, list, edit, rename, delete) and the admin API (%-escaped in its path), on a real
server behind its LB. Before, `zato conn create http-outgoing DIR --name 'Customer API'` was
refused (`must be 1-64 letters, digits, _ . -`), so such a service could only answer 500
`no active http-outgoing connection named 'Customer API'` until its code was changed."""

from __future__ import annotations

import requests

from tests.support import wait_for, zato

# As Zato 4.1's "Calling external REST APIs" page writes it, but the SQL one (its 3.3/4.1 SQL API).
MODULE = """
# -*- coding: utf-8 -*-

from zato.server.service import Service

class GetCustomer(Service):
    name = 'my.api.get-customer'

    def handle(self):

        # Get the connection by name - must match Dashboard exactly
        conn = self.out.rest['Customer API'].conn

        # Call the API - self.cid is the correlation ID for tracing
        response = conn.get(self.cid)

        # Response data is automatically parsed from JSON
        customer = response.data

        self.response.payload = customer


class CountOrders(Service):
    name = 'my.api.count-orders'

    def handle(self):
        self.response.payload = self.out.sql['Orders DB'].one('SELECT 42 AS orders')
"""


def test_outgoing_connections_named_with_spaces(quickstart, tmp_path):
    qs = quickstart(servers=1, workers=1)
    qs.start()
    created = zato("conn", "create", "http-outgoing", qs.path, "--name", "Customer API",
                   "--address", qs.server_url("server1"), "--url-path", "/zato/ping")  # fmt: skip
    assert "created http-outgoing Customer API:" in created.stdout
    db = f"sqlite:///{tmp_path}/o.db"
    zato("conn", "create", "sql-outgoing", qs.path, "--name", "Orders DB", "--url", db)
    listed = zato("conn", "list", qs.path).stdout
    assert "http-outgoing Customer API: " in listed and "sql-outgoing Orders DB: " in listed

    qs.deploy("customer_api", MODULE)
    zato("channel", "create", qs.path, "--name", "customer", "--url-path", "/api/customer",
         "--service", "my.api.get-customer")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "orders", "--url-path", "/api/orders",
         "--service", "my.api.count-orders")  # fmt: skip
    url = qs.lb_url + "/api/customer"
    wait_for(lambda: requests.get(url, timeout=10).status_code != 404, 30, what=url)
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["zato_ping_response"] == {"pong": "zato"}
    orders = requests.get(qs.lb_url + "/api/orders", timeout=10)
    assert orders.status_code == 200, orders.text
    assert orders.json() == {"orders": 42}

    # The admin API takes the name %-escaped in its path.
    admin = qs.server_url("server1") + "/zato/admin/conn/http-outgoing/Customer%20API"
    got = requests.get(admin, auth=qs.admin_auth, timeout=10)
    assert got.status_code == 200 and got.json()["name"] == "Customer API", got.text
    patched = requests.patch(admin, json={"timeout": 7}, auth=qs.admin_auth, timeout=10)
    assert patched.status_code == 200 and patched.json()["timeout"] == 7, patched.text

    renamed = zato("conn", "edit", "http-outgoing", qs.path, "--name", "Customer API", "--new-name", "CRM")
    assert "updated http-outgoing CRM:" in renamed.stdout
    gone = requests.get(url, timeout=10)
    assert gone.status_code == 500
    assert "no active http-outgoing connection named 'Customer API'" in gone.json()["zato_env"]["details"]
    zato("conn", "delete", "http-outgoing", qs.path, "--name", "CRM")
    assert "http-outgoing CRM:" not in zato("conn", "list", qs.path).stdout


def test_names_that_stay_refused(quickstart):
    qs = quickstart(servers=1, workers=1)
    for kind, name, args in [
        ("http-outgoing", "a/b", ["--address", "http://127.0.0.1:9"]),  # a path segment of the admin API
        ("sql-outgoing", "_x", ["--url", "sqlite:////tmp/x.db"]),
        ("amqp-def", "Rabbit One", ["--host", "127.0.0.1"]),  # a connector's: in Redis keys and URLs
    ]:
        proc = zato("conn", "create", kind, qs.path, "--name", name, *args, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"{kind} name: " in proc.stderr and "must be 1-64 letters" in proc.stderr
