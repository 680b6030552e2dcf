"""Zato users' services and clients, unchanged: the corpus in tests/zato_corpus deployed through
`zato deploy` and through the pickup folder of a two-server cluster (PostgreSQL ODB, LB), then
called through {param} channels on both servers and the LB, through /zato/admin/invoke
(AnyServiceInvoker's wire format) and /zato/api/invoke/{service} (APIClient's)."""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import pika
import pytest
import redis
import requests

from tests import zato_client
from tests.ibmmq_support import QM_KINDS, make_qm, put
from tests.support import AMQP_URL, PG_URL, REDIS_URL, nested, wait_for, zato

CORPUS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zato_corpus")
BY_CLI = ("crm_clients", "crm_create", "billing_models", "http_inspect", "cache_kvdb", "invoker")
CHANNELS = [
    ("crm-get", "/crm/clients/{client_id}", "crm.client.get", "GET"),
    ("crm-create", "/crm/clients", "crm.client.create", "POST"),
    ("billing", "/billing/invoices/{invoice_id}", "billing.invoice.get", None),
    ("inspect", "/demo/inspect/{item}", "demo.inspect", None),
    ("lookup", "/demo/lookup/{sku}", "demo.lookup", None),
    ("fetch", "/demo/fetch/{client_id}", "out.http.fetch-client", None),
    ("probe", "/demo/probe", "demo.secrets.probe", None),
    ("dumped", "/demo/dumped", "demo.echo.dumped", None),
    ("orders-get", "/orders/{order_id}", "orders.get", "GET"),
    ("orders-create", "/orders", "orders.create", "POST"),
    ("order-row", "/demo/order-row", "out.sql.order-row-io", "POST"),
    ("not-json", "/demo/not-json", "demo.not-json", None),
    ("crm-list", "/crm/list", "crm.client.get-list", "GET"),
    ("hooks", "/demo/hooks", "demo.hooks.audited", None),
    ("hooks-off", "/demo/hooks-off", "demo.hooks.disabled", None),
    ("no-content", "/demo/no-content", "demo.no-content", "DELETE"),
    ("hooks-failing", "/demo/hooks-failing", "docs.hooks.failing", None),
]


def deploy_corpus(qs) -> None:  # noqa: ANN001
    """Half through `zato deploy` (in parallel), the rest dropped into server1's pickup folder."""
    server1 = qs.server_dir("server1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "zato", "deploy", server1, os.path.join(CORPUS, m + ".py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for m in BY_CLI
    ]
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0, out
    picked = [f for f in glob.glob(os.path.join(CORPUS, "*.py")) if os.path.basename(f)[:-3] not in BY_CLI]
    for path in picked:
        shutil.copy(path, os.path.join(server1, "pickup"))


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=2, odb=PG_URL)
    qs.start()
    deploy_corpus(qs)
    admin = requests.Session()
    admin.auth = qs.admin_auth
    for name, url_path, service, method in CHANNELS:
        r = admin.post(
            f"{qs.server_url('server1')}/zato/admin/channels",
            json={"name": name, "url_path": url_path, "service": service, "method": method},
        )
        assert r.status_code in (200, 201), r.text
    qs.invoke_auth = (qs.settings("server1").invoke_username, qs.settings("server1").invoke_password)
    every = set(service_names())
    for url in (qs.server_url("server1"), qs.server_url("server2")):
        wait_for(
            lambda u=url: every <= set(api(qs, u, "zato.service.list").json()),
            timeout=180,  # the pickup folder deploys one module after another: ~3 s each on a busy host
            what=f"every corpus service on {url}",
        )
        wait_for(lambda u=url: requests.get(f"{u}/crm/clients/1").status_code == 200, what="channels loaded")
    yield qs
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("demo:*"):
        if not key.startswith(b"demo:patterns:"):  # test_patterns's, maybe running beside this module
            client.delete(key)


def service_names() -> list[str]:
    from zato.service.store import ServiceStore

    sources = {}
    for path in glob.glob(os.path.join(CORPUS, "*.py")):
        with open(path) as f:
            sources[os.path.basename(path)[:-3]] = (f.read(), "corpus")
    store = ServiceStore()
    store.know(sources)  # crm_api imports crm_models
    names = []
    for module, (source, digest) in sources.items():
        store.load_module(module, source, digest)
        names += store.modules[module][1]
    return names


def api(qs, base: str, service: str, payload=None, auth=None, **kw) -> requests.Response:  # noqa: ANN001
    return requests.post(
        f"{base}/zato/api/invoke/{service}", data=json.dumps(payload), auth=auth or qs.invoke_auth, **kw
    )


def urls(qs) -> list[str]:  # noqa: ANN001
    return [qs.server_url("server1"), qs.server_url("server2"), qs.lb_url]


def test_deployed_both_ways_and_served_through_param_channels(cluster) -> None:
    corpus = glob.glob(os.path.join(CORPUS, "*.py"))
    assert len(corpus) >= 12
    processed = os.listdir(os.path.join(cluster.server_dir("server1"), "pickup", "processed"))
    assert len([f for f in processed if f.endswith(".py")]) == len(corpus) - len(BY_CLI)
    for base in urls(cluster):
        r = requests.get(f"{base}/crm/clients/42?is_vip=yes&lang=pl")
        assert r.status_code == 200, r.text
        assert r.json() == {"client_id": 42, "name": "Client 42", "is_vip": True, "lang": "pl"}
        assert r.headers["X-Zato-CID"].startswith("K")
        r = requests.post(f"{base}/crm/clients", json={"name": "Acme", "email": "a@acme.test"})
        assert (r.status_code, r.headers["Location"]) == (201, "/crm/clients/1004")
        assert r.json() == {"client_id": 1004, "name": "Acme", "email": "a@acme.test"}
        r = requests.get(f"{base}/billing/invoices/10?currency=PLN")
        assert r.json() == {"invoice_id": 10, "amount": 15.0, "currency": "PLN"}


def test_service_hooks_run_as_in_zato(cluster) -> None:
    """accept, validate_input, before/after_handle and finalize_handle (with processing_time),
    after_add_to_store in every worker, and before_add_to_store keeping a service out. Before,
    only before/after_handle ran: a declined service was deployed and accept was ignored."""
    r = requests.post(f"{cluster.lb_url}/demo/hooks", json={"amount": 5})
    assert r.status_code == 200 and r.json() == {"steps": ["before_handle", "handle", "after_handle"]}, r.text
    cid = r.headers["X-Zato-CID"]
    r = requests.post(f"{cluster.lb_url}/demo/hooks", json={"amount": -1})
    assert r.status_code == 400 and "amount must not be negative" in r.json()["zato_env"]["details"]
    r = requests.post(f"{cluster.lb_url}/demo/hooks", json={"amount": 5}, headers={"X-Skip": "yes"})
    assert (r.status_code, r.content) == (200, b"")  # not accepted: nothing ran
    r = requests.get(f"{cluster.lb_url}/demo/hooks-off")
    assert r.status_code == 404 and "no such service: demo.hooks.disabled" in r.text
    assert "demo.hooks.disabled" not in api(cluster, cluster.lb_url, "zato.service.list").json()

    def logs() -> str:
        return "".join(
            open(os.path.join(cluster.server_dir(s), "logs", "server.log")).read()
            for s in ("server1", "server2")
        )

    wait_for(lambda: re.search(rf"finalized {cid} in \d+ ms \(0:00:00\.\d+\)", logs()), 10, what="finalize")
    workers = sum(cluster.settings(s).workers for s in ("server1", "server2"))
    assert logs().count("demo.hooks.audited is in the store") == workers  # in each worker, once


def test_an_exception_in_before_or_after_handle_is_logged_and_the_service_goes_on(cluster) -> None:
    """Zato's hooks chapter: an exception in before_handle or after_handle is "caught by Zato,
    logged, and the next method will be called as though there was no exception"
    (tests/zato_corpus/docs_examples.py). Before: the caller got a 500 and handle never ran."""
    for base in urls(cluster):
        r = requests.get(f"{base}/demo/hooks-failing")
        assert r.status_code == 200, r.text
        assert r.json() == {"before": "ran", "handled": True}
    r = api(cluster, cluster.lb_url, "docs.hooks.failing")
    assert r.status_code == 200 and r.json() == {"before": "ran", "handled": True}, r.text
    cid = r.headers["X-Zato-CID"]

    def logs() -> str:
        return "".join(
            open(os.path.join(cluster.server_dir(s), "logs", "server.log")).read()
            for s in ("server1", "server2")
        )

    for hook, why in (("before_handle", "ValueError"), ("after_handle", "KeyError")):
        said = f"cid {cid}: service docs.hooks.failing: {hook} failed; the invocation goes on, as in Zato"
        wait_for(lambda s=said: s in logs(), 10, what=f"{hook}'s failure logged")
        assert f"{why}: " in logs().split(said, 1)[1][:2000]  # with its traceback


def test_a_list_response_given_as_payload_slice(cluster) -> None:
    """Zato's `self.response.payload[:] = records` (a generator of objects): a list of the
    declared fields under response_elem; before, a 500 (TypeError: unhashable type: 'slice')."""
    for base in urls(cluster):
        r = requests.get(f"{base}/crm/list?count=3")
        assert r.status_code == 200, r.text
        assert r.json() == {"clients": [{"client_id": i, "name": f"Client {i}"} for i in (1, 2, 3)]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("GET", "/crm/clients/abc", None, 400, "invalid input client_id: 'abc' is not an integer"),
        ("POST", "/crm/clients", {"email": "x@y"}, 400, "missing input: name"),
        ("GET", "/billing/invoices/7x", None, 400, "invalid input invoice_id: '7x' is not an integer"),
        ("GET", "/crm/clients/1/extra", None, 404, "no channel serves /crm/clients/1/extra"),
        ("DELETE", "/crm/clients/1", None, 405, "method DELETE is not allowed"),
        ("GET", "/demo/lookup/BAD", None, 400, "sku must start with SKU-"),
        ("GET", "/demo/lookup/SKU-9", None, 404, "no product SKU-9"),
        ("POST", "/crm/clients", b"{not json", 400, "malformed JSON"),
        ("POST", "/orders", {"customer_id": 3}, 400, "missing input: sku"),
        (
            "POST",
            "/orders",
            {"sku": "SKU-1", "customer_id": "three"},
            400,
            "invalid input customer_id: 'three' is not an integer",
        ),
        ("GET", "/orders/x1", None, 400, "invalid input order_id: 'x1' is not an integer"),
        # before, Python's own words: "Exceeds the limit (4300 digits) for integer string
        # conversion ...; use sys.set_int_max_str_digits() to increase the limit", and
        # "invalid literal for int() with base 10: '+-5'"
        (
            "POST",
            "/orders",
            {"sku": "SKU-1", "customer_id": "7" * 5000},
            400,
            "is too long for an integer: 5000 digits (at most 4300)",
        ),
        ("POST", "/orders", {"sku": "SKU-1", "customer_id": "+-5"}, 400, "'+-5' is not an integer"),
        ("POST", "/orders", {"sku": "SKU-1", "customer_id": "\u00b2"}, 400, "'\u00b2' is not an integer"),
    ],
)
def test_bad_input_is_a_4xx_in_zato_envelope(cluster, method, path, body, status, detail) -> None:
    kw = {"json": body} if isinstance(body, dict) else {"data": body}
    r = requests.request(method, cluster.lb_url + path, **kw)
    assert r.status_code == status, r.text
    env = r.json()["zato_env"]
    assert env["result"] == "ZATO_ERROR" and detail in env["details"]


def test_an_integer_sent_as_a_whole_double_is_taken_and_a_fraction_refused(cluster) -> None:
    """A client that writes every number as a double sends 3.0: taken as 3 now (before: 400
    "3.0 is not an integer"); 3.5 is refused, not cut to 3."""
    r = requests.post(cluster.lb_url + "/orders", json={"sku": "SKU-1", "customer_id": 3.0}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["customer_id"] == 3 and r.json()["order_id"] == 5003, r.text
    assert '"customer_id": 3,' in r.text or '"customer_id": 3}' in r.text, r.text  # an integer, not 3.0
    r = requests.post(cluster.lb_url + "/orders", json={"sku": "SKU-1", "customer_id": 3.5}, timeout=10)
    assert r.status_code == 400, r.text
    assert "invalid input customer_id: 3.5 is not a whole number" in r.json()["zato_env"]["details"], r.text


def test_json_sent_as_curl_d_sends_it_is_read_as_json(cluster) -> None:
    """`curl -d '{...}'` labels its body a form; a JSON channel still reads it as JSON, and
    answers 400 for malformed JSON instead of running the service with empty input."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(
        f"{cluster.lb_url}/crm/clients", data=b' {"name": "Curl", "email": "c@x.test"}', headers=form
    )
    assert r.status_code == 201 and r.json()["name"] == "Curl", r.text
    r = requests.post(f"{cluster.lb_url}/crm/clients", data=b'{"name": "Curl"', headers=form)
    assert r.status_code == 400 and "malformed JSON" in r.json()["zato_env"]["details"]
    r = requests.post(f"{cluster.lb_url}/crm/clients", data=b"name=Form&email=f%40x.test", headers=form)
    assert r.status_code == 201 and r.json()["name"] == "Form", r.text  # a real form is still a form
    # curl -F (multipart/form-data): before, 400 'malformed JSON in the request body'
    r = requests.post(f"{cluster.lb_url}/crm/clients", files={"upload": ("a.csv", b"1,2\n")})
    assert r.status_code == 415, r.text
    assert r.json()["zato_env"]["details"] == (
        "a multipart/form-data body is not taken here: send JSON, or a form as"
        " application/x-www-form-urlencoded"
    )


def test_a_channel_path_beyond_ascii_is_served_however_it_was_given(cluster) -> None:
    """/zamówienia/{id}, created as text or %-escaped, answers the request a client sends
    (%-escaped UTF-8); before, one was refused and the other never matched."""
    for name, given in (
        ("pl-text", "/zamówienia/{item}"),
        ("pl-escaped", "/kraj/%C5%81%C3%B3d%C5%BA/{item}"),
    ):
        zato("channel", "create", cluster.server_dir("server1"), "--name", name, "--url-path", given,
             "--service", "demo.inspect")  # fmt: skip
    try:
        for path, item in (("/zam%C3%B3wienia/z%C3%B3%C5%82w", "zółw"), ("/kraj/%C5%81%C3%B3d%C5%BA/7", "7")):
            wait_for(lambda p=path: requests.get(cluster.lb_url + p).status_code == 200, what=path)
            got = requests.get(cluster.lb_url + path).json()
            assert got["params"] == {"item": item} and got["path"] == unquote(path), got
        r = requests.get(cluster.lb_url + "/zam%C3%B3wienia")
        assert r.status_code == 404 and "no channel serves /zamówienia" in r.json()["zato_env"]["details"]
    finally:
        for name in ("pl-text", "pl-escaped"):
            zato("channel", "delete", cluster.server_dir("server1"), "--name", name)


def test_head_is_answered_wherever_get_is(cluster) -> None:
    """A GET-only channel answers HEAD as GET, without a body (monitors and caches send it),
    and its 405 lists HEAD among the methods it allows."""
    url = f"{cluster.lb_url}/crm/clients/1001"
    got, head = requests.get(url), requests.head(url)
    assert got.status_code == 200 and got.content
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Type"] == got.headers["Content-Type"]
    r = requests.delete(url)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_an_optional_output_that_is_none_is_null_unless_the_service_skips_empty_keys(cluster) -> None:
    """Zato's SimpleIO returns an optional output element that is empty "unless skip_empty_keys is
    True" (https://zato.io/docs/progguide/sio.html). Before: every optional output whose value was
    None was left out; a client reading `is_vip` of /crm/clients/7 found no key at all."""
    for base in urls(cluster):
        r = requests.get(f"{base}/crm/clients/7")  # is_vip and lang left out: None, not False
        assert r.json() == {"client_id": 7, "name": "Client 7", "is_vip": None, "lang": None}, r.text
        r = api(cluster, base, "demo.profile.get", {"user_id": 1, "nick": ""})
        assert r.json() == {"user_id": 1, "is_vip": None, "nick": "", "email": None}, r.text
        r = api(cluster, base, "demo.profile.get-skip-empty", {"user_id": 1, "nick": ""})
        assert r.json() == {"user_id": 1, "nick": ""}, r.text  # nick: in force_empty_keys


def test_bad_definitions_are_refused_naming_the_field(cluster) -> None:
    admin = requests.Session()
    admin.auth = cluster.admin_auth
    base = f"{cluster.lb_url}/zato/admin"
    r = admin.post(f"{base}/channels", json={"name": "bad", "url_path": "/x/{id", "service": "demo.inspect"})
    assert r.status_code == 400 and "'{id' is not a parameter" in r.json()["zato_env"]["details"]
    r = admin.post(f"{base}/conn/http-outgoing", json={"name": "bad", "address": "ftp://x"})
    assert r.status_code == 400 and "http-outgoing address: 'ftp://x' is not an http://" in r.text
    r = admin.post(
        f"{base}/conn/http-outgoing", json={"name": "bad", "address": "http://x", "timeout": "soon"}
    )
    assert r.status_code == 400 and "http-outgoing timeout: 'soon' is not a whole number" in r.text
    out = zato(
        "channel",
        "create",
        cluster.server_dir("server1"),
        "--name",
        "bad",
        "--url-path",
        "/a/{1}",
        "--service",
        "demo.inspect",
        check=False,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "'{1}' is not a parameter" in out.stderr


def test_request_and_response_api(cluster) -> None:
    r = requests.post(
        f"{cluster.server_url('server2')}/demo/inspect/it%C3%A9m?q=1",
        data="a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Custom": "c"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/vnd.demo+json" and r.headers["X-Demo"] == "yes"
    got = r.json()
    assert got["cid"] == r.headers["X-Zato-CID"] and got["name"] == "demo.inspect"
    assert (got["channel_name"], got["channel_type"]) == ("inspect", "http-soap")
    assert (got["method"], got["path"], got["wsgi_method"]) == ("POST", "/demo/inspect/itém", "POST")
    assert got["GET"] == {"q": "1"} and got["POST"] == {"a": "1", "b": "2"}
    assert got["params"] == {"q": "1", "item": "itém"}
    assert (got["content_type"], got["content_length"], got["x_custom"]) == (
        "application/x-www-form-urlencoded",
        "7",
        "c",
    )
    assert got["raw_request"] == "a=1&b=2" and got["before"] is True and got["server"] == "server2"
    assert got["utcnow"][:2] == "20" and "T" in got["utcnow"]


def test_empty_query_and_form_fields_arrive_empty(cluster) -> None:
    """`?q=&r=1` and a form's empty field (`a=&b=2`, as a browser sends an empty input) reach
    the service as "" (as a JSON body's "" does); before, they were dropped as if not sent."""
    r = requests.post(
        f"{cluster.lb_url}/demo/inspect/x?q=&r=1",
        data="a=&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["GET"] == {"q": "", "r": "1"} and got["POST"] == {"a": "", "b": "2"}


def test_zato41_class_io_in_and_out(cluster) -> None:
    """Corpus orders_io.py: `class IO` with dataclass models and with names; only the declared
    output is returned (no internal_cost), a missing optional output is left out."""
    for base in urls(cluster):
        r = requests.get(f"{base}/orders/7")
        assert (r.status_code, r.json()) == (200, {"order_id": 7, "status": "open"}), r.text
        r = requests.get(f"{base}/orders/7?needs_lines=true")
        assert r.json() == {"order_id": 7, "status": "open", "lines": [{"sku": "SKU-7", "quantity": 2}]}
        r = requests.post(f"{base}/orders", json={"customer_id": 3, "sku": "SKU-1", "note": "n", "x": 1})
        assert (r.status_code, r.json()) == (
            200,
            {"order_id": 5003, "customer_id": 3, "sku": "SKU-1", "quantity": 1},
        ), r.text
    r = api(cluster, cluster.lb_url, "orders.create", {"customer_id": "4", "sku": "SKU-2", "quantity": 5})
    assert r.json() == {"order_id": 5004, "customer_id": 4, "sku": "SKU-2", "quantity": 5}
    r = api(cluster, cluster.lb_url, "orders.create", {"customer_id": 4})
    assert r.status_code == 400 and r.json()["zato_env"]["details"] == "missing input: sku"


def test_a_module_imports_another_deployed_one_which_changes_without_a_restart(cluster) -> None:
    """tests/zato_corpus/crm_api.py imports crm_models.py (models and a helper, no services),
    both dropped into the pickup folder, the importer first in name order. Before: crm_models
    was refused ("defines no Service subclass") and crm_api could not import it."""
    for base in urls(cluster):
        r = api(cluster, base, "crm.api.get-client", {"client_id": 7})
        assert r.status_code == 200 and r.json() == {"name": "Client 7", "segment": "RNZ"}, r.text
    server1 = cluster.server_dir("server1")
    with open(os.path.join(CORPUS, "crm_models.py")) as f:
        changed = f.read().replace("'RNZ' if", "'VIP' if")
    path = os.path.join(str(cluster.path), "crm_models.py")
    with open(path, "w") as f:
        f.write(changed)
    out = zato("deploy", server1, path).stdout
    assert "no services" in out, out
    for base in (cluster.server_url("server1"), cluster.server_url("server2")):
        wait_for(
            lambda b=base: (
                api(cluster, b, "crm.api.get-client", {"client_id": 7}).json().get("segment") == "VIP"
            ),
            what=f"crm_api on {base} to use the new crm_models",
        )
    log = open(os.path.join(server1, "logs", "server.log")).read()
    assert "loaded module crm_api again, as it imports module crm_models" in log
    assert "crm_api.py waits for crm_models.py, in the folder too" in log  # pickup: no false alarm
    assert "crm_api.py is broken" not in log


def test_nested_models_with_zato_typing_names(cluster) -> None:
    """Zato's data-models example (tests/zato_corpus/phone_models.py): `list_[Phone]` from
    zato.common.typing_, models nested in lists and as fields, in and out. Before: the module was
    refused (no zato.common.typing_), and a nested model in the output was a 500."""
    r = api(cluster, cluster.lb_url, "phones.get-list", {"client_id": 12})
    assert r.status_code == 200, r.text
    phone = {"owner_id": 12, "owner_name": "Jane Doe", "imei": "123"}
    assert r.json() == {
        "response_type": "RZH",
        "phone_list": [phone, {**phone, "imei": "789", "owner_name": "John Doe"}],
    }
    given = {
        "client_id": "3",
        "phones": [{"imei": "1", "owner_id": "7", "owner_name": "A"}],
        "address": {"city": "Oslo"},
    }
    r = api(cluster, cluster.lb_url, "phones.register", given)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "client_id": 3,
        "imeis": ["1"],
        "owners": [7],
        "kinds": ["Phone"],
        "city": "Oslo",
        "zip_code": None,
    }
    r = api(cluster, cluster.lb_url, "phones.register", {"client_id": 3})
    assert r.json() == {
        "client_id": 3,
        "imeis": [],
        "owners": [],
        "kinds": [],
        "city": None,
        "zip_code": None,
    }
    for bad, said in [
        ({"client_id": 3, "phones": [{"imei": "1", "owner_id": 7}]}, "missing input: phones[0].owner_name"),
        ({"client_id": 3, "phones": [{"imei": "1", "owner_id": "x", "owner_name": "A"}]},
         "invalid input phones[0].owner_id: 'x' is not an integer"),
        ({"client_id": 3, "address": "Oslo"}, "invalid input address: 'Oslo' is not an object"),
    ]:  # fmt: skip
        r = api(cluster, cluster.lb_url, "phones.register", bad)
        assert (r.status_code, r.json()["zato_env"]["details"]) == (400, said)


def test_invoke_and_get_name(cluster) -> None:
    r = api(cluster, cluster.lb_url, "demo.quadrupler", {"number_count": 3})
    assert r.status_code == 200 and r.json() == {"number_count": 12}


def test_services_without_a_name_answer_to_zatos_names(cluster) -> None:
    """Before: legacy-names.httpstatus, legacy-names.get-xmldata and legacy-names.get-client,
    so a client calling Zato's names got 404 `no such service`; and Integer('-count') was a
    required field named '-count' (400 `missing input: -count`)."""
    for service in ("legacy-names.http-status", "legacy-names.get-xml-data"):
        r = api(cluster, cluster.lb_url, service)
        assert (r.status_code, r.json()) == (200, {"service": service})
    r = api(cluster, cluster.lb_url, "legacy-names.get_client", {"name": "n"})
    # count, an optional output, None as the input left it out: null (SimpleIO's skip_empty_keys is off)
    expected = {"name": "n", "service": "legacy-names.get_client", "count": None}
    assert (r.status_code, r.json()) == (200, expected)
    r = api(cluster, cluster.lb_url, "legacy-names.get_client", {"name": "n", "count": "2"})
    assert r.json()["count"] == 2


def test_zato32_import_paths_of_models_and_json(cluster) -> None:
    """zato.common.ext.dataclasses, zato.common.marshal_.api, zato.common.json_internal and
    typing_'s dict_field: before, the module was refused at deploy (ModuleNotFoundError)."""
    r = api(cluster, cluster.lb_url, "zato32.order.echo", {"order_id": "5", "tags": ["a"]})
    assert (r.status_code, r.json()) == (200, {"order_id": 5, "tags": ["a"], "extra": {}})


def test_a_204_goes_without_a_body_or_its_headers(cluster) -> None:
    """RFC 9110: a 204 has no content, so no Content-Type nor Content-Length either. Before: both
    were sent (the Zato envelope's type, and the length of what was dropped)."""
    for base in urls(cluster):
        r = requests.delete(f"{base}/demo/no-content")
        assert (r.status_code, r.content) == (204, b""), r.text
        assert "Content-Type" not in r.headers and "Content-Length" not in r.headers, r.headers
        assert r.headers["X-Zato-CID"].startswith("K")


def test_text_dumped_by_the_service_is_json_on_a_json_channel(cluster) -> None:
    r = requests.post(f"{cluster.lb_url}/demo/dumped", json=[1, "a"])
    assert r.headers["Content-Type"] == "application/json" and r.json() == {"echo": [1, "a"]}


def test_any_service_invoker_wire_format(cluster) -> None:
    """What zato-client's AnyServiceInvoker (3.2.1) posts and how it reads the answer."""
    for base in urls(cluster):
        payload = base64.b64encode(b'{"invoice_id": 2}').decode()
        request = {
            "name": "billing.invoice.get",
            "payload": payload,
            "channel": "invoke",
            "data_format": "json",
            "transport": None,
            "is_async": False,
            "expiration": 15,
            "pid": None,
            "all_pids": False,
            "timeout": None,
            "skip_response_elem": True,
        }
        r = requests.post(f"{base}/zato/admin/invoke", data=json.dumps(request), auth=cluster.invoke_auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["zato_env"]["result"] == "ZATO_OK" and body["zato_env"]["cid"] == r.headers["X-Zato-CID"]
        inner = json.loads(base64.b64decode(body["zato_service_invoke_response"]))
        assert inner == {"invoice_id": 2, "amount": 3.0, "currency": "EUR"}
    request["payload"] = base64.b64encode(b"{}").decode()
    r = requests.post(
        f"{cluster.lb_url}/zato/admin/invoke", data=json.dumps(request), auth=cluster.invoke_auth
    )
    assert r.status_code == 400 and r.json()["zato_env"]["details"] == "missing input: invoice_id"


def test_zato_client_unchanged(cluster) -> None:
    """zato-client 3.2.1's own AnyServiceInvoker and APIClient code (see tests/zato_client.py)."""
    client = zato_client.load()
    invoker = client.AnyServiceInvoker(cluster.lb_url, "/zato/admin/invoke", cluster.invoke_auth)
    r = invoker.invoke("billing.invoice.get", {"invoice_id": 4})
    assert r.ok and r.data == {"invoice_id": 4, "amount": 6.0, "currency": "EUR"}, r
    r = invoker.invoke("billing.invoice.get", {"currency": "PLN"})
    assert not r.ok and r.details == "missing input: invoice_id"
    job = uuid.uuid4().hex[:8]
    r = invoker.invoke_async("jobs.run", {"job": job})
    assert r.ok and r.data.startswith("K") and r.data != r.cid
    done = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    wait_for(lambda: done.lrange(f"demo:job-done:{job}", 0, -1), what="the job invoke_async queued")
    api_client = client.APIClient(cluster.lb_url, *cluster.invoke_auth)
    r = api_client.invoke("crm.client.get", {"client_id": 3, "lang": "en"})
    assert r.is_ok and r.data == {"client_id": 3, "name": "Client 3", "is_vip": None, "lang": "en"}
    assert r.cid.startswith("K")
    r = client.APIClient(cluster.lb_url, cluster.invoke_auth[0], "wrong").invoke("crm.client.get", {})
    assert not r.is_ok and "wrong or missing credentials" in r.details


def test_invoke_endpoints_refuse_any_other_user(cluster) -> None:
    user, password = cluster.invoke_auth
    for auth in (None, cluster.admin_auth, (user, password + "x"), ("admin.invoke2", password)):
        for path in ("/zato/admin/invoke", "/zato/api/invoke/zato.ping"):
            r = requests.post(cluster.lb_url + path, data="{}", auth=auth)
            assert r.status_code == 401, (path, auth, r.text)
            assert r.json()["zato_env"]["details"] == "wrong or missing credentials"
    assert api(cluster, cluster.lb_url, "no.such.service").status_code == 404


def test_cache_and_kvdb_shared_by_the_cluster(cluster) -> None:
    s1, s2 = cluster.server_url("server1"), cluster.server_url("server2")
    key = f"k-{uuid.uuid4().hex[:8]}"
    r = api(cluster, s1, "demo.cache.set", {"key": key, "value": "v1"})
    assert r.json() == {"stored": key, "server": "server1"}
    got = api(cluster, s2, "demo.cache.get", {"key": key, "delete": True}).json()
    assert got["value"] == "v1" and got["sets"] >= 1
    assert api(cluster, s1, "demo.cache.get", {"key": key}).json()["value"] is None
    api(cluster, s2, "demo.cache.set", {"key": key, "value": "short", "expiry": 0.3})
    wait_for(
        lambda: api(cluster, s1, "demo.cache.get", {"key": key}).json()["value"] is None,
        what="the cache entry to expire",
    )


def test_the_cache_by_prefix_as_zatos_api(cluster) -> None:
    """get_by_prefix, delete_by_prefix(return_found=True), del, expire (tests/zato_corpus/cache_kvdb.py).
    Before: AttributeError (a 500)."""
    prefix = f"p-{uuid.uuid4().hex[:8]}-"
    r = api(cluster, cluster.lb_url, "demo.cache.by-prefix", {"prefix": prefix})
    assert r.status_code == 200, r.text
    keys = [prefix + k for k in ("*odd", "0", "1", "2")]
    assert r.json() == {
        "found": keys, "values": {"n": 1}, "deleted": [keys[0], keys[2], keys[3]],
        "left": {prefix + "short": 1}, "expire": True, "expire_missing": False,
    }  # fmt: skip
    wait_for(
        lambda: (
            api(cluster, cluster.server_url("server2"), "demo.cache.get", {"key": prefix + "short"}).json()[
                "value"
            ]
            is None
        ),
        what="the expired entry gone",
    )


def test_the_cache_as_zato_41_writes_it(cluster) -> None:
    """Zato 4.1's cache examples (tests/zato_corpus/cache_kvdb.py): get/set/delete/exists on
    self.cache itself. Before: `self.cache.exists` was an AttributeError (a 500)."""
    key = f"user:{uuid.uuid4().hex[:8]}"
    r = api(cluster, cluster.lb_url, "demo.cache.zato41", {"key": key})
    assert r.status_code == 200, r.text
    assert r.json() == {"roles": ["admin", "editor"], "present": True, "gone": True, "after": None,
                        "same_as_default": True}  # fmt: skip


def test_a_payload_json_cannot_hold_is_the_services_500_named_in_the_log(cluster) -> None:
    """A service that answers with a set: a 500 naming the service, and one log line saying
    why (before: "internal server error", logged without the service's name)."""
    for r in (requests.get(f"{cluster.lb_url}/demo/not-json"), api(cluster, cluster.lb_url, "demo.not-json")):
        cid = r.headers["X-Zato-CID"]
        assert r.status_code == 500, r.text
        detail = r.json()["zato_env"]["details"]
        assert detail == f"service demo.not-json failed; see the server log for cid {cid}"
        line = f"cid {cid}: service demo.not-json answered with a payload that is not JSON: a set is not JSON"

        def logged(line: str = line) -> bool:
            return any(line in open(os.path.join(cluster.server_dir(s), "logs", "server.log")).read()
                       for s in ("server1", "server2"))  # fmt: skip

        wait_for(logged, 10, what="the log line")


def test_outgoing_http_and_sql_live_and_masked(cluster) -> None:
    server1 = cluster.server_dir("server1")
    zato(
        "conn",
        "create",
        "http-outgoing",
        server1,
        "--name",
        "self-crm",
        "--address",
        cluster.lb_url,
        "--url-path",
        "/crm/clients/{client_id}",
        "--username",
        "u",
        "--password",
        "http-secret-1",
    )
    admin = requests.Session()
    admin.auth = cluster.admin_auth
    r = admin.post(
        f"{cluster.lb_url}/zato/admin/conn/sql-outgoing",
        json={
            "name": "demo-db",
            "url": "postgresql://postgres@127.0.0.1:5432/test",
            "password": "sql-secret-1",
            "pool_size": 2,
        },
    )
    assert r.status_code == 201 and r.json()["password"] == "******"
    bad = admin.post(
        f"{cluster.lb_url}/zato/admin/conn/sql-outgoing",
        json={"name": "bad-db", "url": "postgresql://a:pw@h/db"},
    )
    assert bad.status_code == 400 and "keep the password out of the URL" in bad.text
    listed = zato("conn", "list", server1).stdout
    assert "http-secret-1" not in listed and "sql-secret-1" not in listed and "password=******" in listed
    for base in urls(cluster):
        r = requests.get(f"{base}/demo/fetch/5?conn_name=self-crm")
        assert r.status_code == 200, r.text
        remote = {"client_id": 5, "name": "Client 5", "is_vip": None, "lang": "pl"}
        assert r.json() == {"status": 200, "remote": remote}
        r = api(cluster, base, "out.sql.sum", {"a_count": 2, "b_count": 40})
        assert r.status_code == 200 and r.json() == {"total": 42}, r.text
    # What PostgreSQL hands back (NUMERIC, DATE, TIMESTAMP, UUID) goes out as JSON text; a
    # SimpleIO declaration gives Zato's forms (Int, Decimal as digits, UUID as hex). Before: 500.
    when = {"due": "2026-01-02", "created": "2026-01-02T03:04:05"}
    ref = "d011d054-db4b-4320-9e24-7f4c217af673"
    r = api(cluster, cluster.lb_url, "out.sql.order-row", {"price": "12.5"})
    assert r.status_code == 200, r.text
    assert r.json() == {"order": {"price": "12.50", "units": "3", **when, "ref": ref}}
    # Zato 3.2's plain-string query in a session, and 3.3 / 4.1's self.out.sql[name].execute,
    # .one and .one_or_none (tests/zato_corpus/sql_out.py). Before: 500 (SQLAlchemy 2 refused
    # the bare string; execute/one were AttributeErrors).
    r = api(cluster, cluster.lb_url, "out.sql.zato32-raw")
    assert r.status_code == 200 and r.json() == [["John Doe", "ABC"]], r.text
    r = api(cluster, cluster.lb_url, "out.sql.zato41", {"wanted": "active"})
    assert r.status_code == 200, r.text
    active = [{"runway_id": 1, "status": "active"}, {"runway_id": 2, "status": "active"}]
    assert r.json() == {"rows": active, "one": {"runway_id": 7, "status": "active"}, "none": None,
                        "several": "MultipleResultsFound"}  # fmt: skip
    # Zato 4.1's SQL page reads rows by column name (`row['CompanyName']`) and Zato 3.2's code
    # (SQLAlchemy 1.3) as dicts; SQLAlchemy 2's Row took neither. Before: 500, "TypeError: tuple
    # indices must be integers or slices, not str" (tests/zato_corpus/docs_examples.py).
    for base in urls(cluster):
        r = api(cluster, base, "docs.sql.by-column", {"segment": "ABC"})
        assert r.status_code == 200, r.text
        assert r.json() == {"clients": [{"id": 1, "name": "John Doe", "segment": "ABC"},
                                        {"id": 2, "name": "Jane Roe", "segment": "ABC"}]}  # fmt: skip
    r = api(cluster, cluster.lb_url, "docs.sql.as-dicts")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "rows": [{"client_id": 1, "name": "John Doe", "segment": "ABC"},
                 {"client_id": 2, "name": "Jane Roe", "segment": "ABC"}],
        "first": {"client_id": 3, "name": "Max Poe", "segment": "XYZ"},
    }  # fmt: skip
    r = requests.post(f"{cluster.lb_url}/demo/order-row", json={"price": 12.5})
    assert r.status_code == 200, r.text
    assert r.json() == {"price": "12.50", "units": 3, **when, "ref": ref.replace("-", "")}
    # Zato 3.2 and 4.1's names (tests/zato_corpus/rest_out.py): self.out.rest[name].conn,
    # response.data (the parsed JSON), conn.http_request(method, cid, data) and conn.send.
    zato("conn", "create", "http-outgoing", server1, "--name", "self-crm-new", "--address",
         cluster.lb_url, "--url-path", "/crm/clients")  # fmt: skip
    for base in urls(cluster):
        r = api(cluster, base, "out.rest.client-name", {"client_id": 7, "conn_name": "self-crm"})
        assert r.status_code == 200 and r.json() == {"name": "Client 7", "lang": "en"}, r.text
        r = api(cluster, base, "out.rest.create-client", {"conn_name": "self-crm-new", "client_name": "Ann"})
        assert r.status_code == 200, r.text
        created = {"client_id": 1003, "name": "Ann", "email": None}  # its optional output, None: null
        answer = {
            "status": 201,
            "location": "/crm/clients/1003",
            "created": created,
            "sent": 1001,
            "model": 1005,
        }
        assert r.json() == answer
    zato("conn", "edit", "http-outgoing", server1, "--name", "self-crm", "--active", "false")
    wait_for(
        lambda: requests.get(f"{cluster.lb_url}/demo/fetch/5?conn_name=self-crm").status_code == 500,
        what="the deactivated connection to be refused without a restart",
    )


def test_amqp_send_with_zato_argument_names(cluster) -> None:
    queue = f"zato-compat-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    channel.queue_declare(queue, arguments={"x-max-priority": 10}, auto_delete=True)
    try:
        server1 = cluster.server_dir("server1")
        zato("conn", "create", "amqp-def", server1, "--name", "rabbit", "--host", "127.0.0.1")
        zato("conn", "create", "amqp-outgoing", server1, "--name", "demo-out", "--def", "rabbit")
        r = api(
            cluster,
            cluster.lb_url,
            "out.amqp.publish",
            {"msg": {"n": 1}, "out_name": "demo-out", "queue": queue},
        )
        assert r.status_code == 200, r.text

        def got():  # noqa: ANN202
            method, props, body = channel.basic_get(queue, auto_ack=True)
            return (props, body) if method else None

        props, body = wait_for(got, timeout=30, what="the message in RabbitMQ")
        assert json.loads(body) == {"n": 1}
        assert (props.headers["x-demo"], props.priority, props.expiration) == ("yes", 5, "60000")
    finally:
        channel.queue_delete(queue)  # auto_delete acts only after a consumer, and basic_get is none
        conn.close()


def test_a_channel_message_names_its_channel_with_zatos_constants(cluster) -> None:
    """tests/zato_corpus/channel_info.py: a message of an AMQP channel reaches its service with
    self.channel.name the channel's and .type Zato's CHANNEL.AMQP; `from zato.common import
    DATA_FORMAT` imports. Before: the module was refused, and the channel was `internal`."""
    queue = f"zato-channel-{uuid.uuid4().hex[:8]}"
    server1 = cluster.server_dir("server1")
    zato("conn", "create", "amqp-def", server1, "--name", "rabbit-in", "--host", "127.0.0.1")
    zato("conn", "create", "amqp-channel", server1, "--name", "orders-in", "--def", "rabbit-in",
         "--queue", queue, "--service", "channel.record")  # fmt: skip
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        tag = uuid.uuid4().hex[:8]
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)

        def published() -> bool:  # the connector declares the queue once it runs
            try:
                conn.channel().queue_declare(queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                return False
            conn.channel().basic_publish("", queue, json.dumps({"tag": tag}).encode())
            return True

        wait_for(published, timeout=30, what="the AMQP channel's queue")
        wait_for(
            lambda: len(client.lrange(f"demo:channel:{tag}", 0, -1)) == 2, timeout=30, what="the message"
        )
        assert client.lrange(f"demo:channel:{tag}", 0, -1) == ["orders-in amqp AMQP", "invoke"]
        r = api(cluster, cluster.lb_url, "channel.record", {"tag": tag + "-api"})
        assert r.status_code == 200, r.text
        assert client.lrange(f"demo:channel:{tag}-api", 0, -1) == ["api-invoke invoke invoke", "invoke"]
    finally:
        zato("conn", "delete", "amqp-channel", server1, "--name", "orders-in")
        conn.channel().queue_delete(queue)
        conn.channel().queue_delete(queue + ".zato-parked")  # the connector declared it
        conn.close()


def test_an_amqp_channels_service_reads_its_message_and_settles_it(cluster) -> None:
    """tests/zato_corpus/amqp_in.py, as Zato 3's AMQP article writes it: the service reads the
    message's properties, headers and delivery in self.request.amqp.msg, and ack()s or
    reject()s it itself. A rejected message is parked with the reason, never run again; one
    acked and then failed is not run again either. Before, self.request.amqp was an
    AttributeError (the message was retried until parked as failed). A header nested 3,000
    levels deep is left out and the message runs; before, it held the queue."""
    queue = f"zato-amqp-in-{uuid.uuid4().hex[:8]}"
    server1 = cluster.server_dir("server1")
    zato("conn", "create", "amqp-def", server1, "--name", "rabbit-meta", "--host", "127.0.0.1")
    zato("conn", "create", "amqp-channel", server1, "--name", "meta-in", "--def", "rabbit-meta",
         "--queue", queue, "--service", "amqp.orders-in", "--max-deliveries", "3")  # fmt: skip
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    tag = uuid.uuid4().hex[:8]
    actions = ["none", "ack", "reject", "ack-then-fail", "deep-headers"]
    deep = nested(3000)  # deeper than pika decodes under Python's default recursion limit
    try:
        wait_for(lambda: _queue_exists(conn, queue), timeout=30, what="the AMQP channel's queue")
        ch = conn.channel()
        for i, action in enumerate(actions):
            headers = {"x-order-no": 100 + i, "x-raw": b"\xff\x00"}
            if action == "deep-headers":
                headers["x-deep"] = deep
            props = pika.BasicProperties(
                content_type="application/json",
                correlation_id=f"corr-{i}",
                reply_to="replies",
                priority=3,
                headers=headers,
            )
            limit = sys.getrecursionlimit()
            sys.setrecursionlimit(20_000)  # pika encodes by recursion too
            try:
                ch.basic_publish("", queue, json.dumps({"tag": tag, "action": action}).encode(), props)
            finally:
                sys.setrecursionlimit(limit)
        key = f"demo:amqp-in:{tag}"
        wait_for(lambda: client.llen(key) >= len(actions), timeout=30, what="the five messages")
        time.sleep(2)  # a message run again would be recorded again meanwhile
        seen = sorted((json.loads(r) for r in client.lrange(key, 0, -1)), key=lambda r: r["order_no"])
        assert [r["action"] for r in seen] == actions  # each ran once: none retried
        for i, r in enumerate(seen):
            assert r["correlation_id"] == f"corr-{i}"
            assert (r["reply_to"], r["priority"], r["content_type"]) == ("replies", 3, "application/json")
            assert r["routing_key"] == queue and r["has_tag"]
            assert json.loads(r["body"]) == {"tag": tag, "action": actions[i]}
            assert r["header_names"] == ["x-order-no", "x-raw"]  # x-deep: left out, the message ran
        parked = []
        while (got := ch.basic_get(queue + ".zato-parked", auto_ack=True))[0] is not None:
            parked.append(got)
        assert len(parked) == 1, parked
        _, props, body = parked[0]
        assert json.loads(body)["action"] == "reject"
        assert "rejected by service 'amqp.orders-in'" in props.headers["x-zato-parked-reason"]
        assert props.correlation_id == "corr-2"  # parked as it came
        assert ch.queue_declare(queue, passive=True).method.message_count == 0
        r = api(cluster, cluster.lb_url, "amqp.message-kind")
        assert r.json() == {"amqp": False, "ibm_mq": False}  # not a channel's message
    finally:
        zato("conn", "delete", "amqp-channel", server1, "--name", "meta-in")
        conn.channel().queue_delete(queue)
        conn.channel().queue_delete(queue + ".zato-parked")
        conn.close()
        client.delete(f"demo:amqp-in:{tag}")


@pytest.mark.parametrize("qm_kind", QM_KINDS)
def test_an_ibm_mq_channels_service_reads_the_mqmd(quickstart, monkeypatch, qm_kind) -> None:
    """tests/zato_corpus/amqp_in.py's ibm-mq.orders-in, fed by an IBM MQ channel (the queue
    manager STAND-IN of tests/ibmmq_standin, or a real one named by ZATO_TEST_IBMMQ): the
    service reads the message's MQMD in self.request.ibm_mq (also .wmq), ids as bytes.
    Before, self.request.ibm_mq was an AttributeError."""
    qm = make_qm(qm_kind)
    try:
        monkeypatch.setenv("PYTHONPATH", qm.env().get("PYTHONPATH", ""))  # servers import the stand-in
        qs = quickstart(servers=1, lb=False)
        qs.start()
        zato("deploy", qs.path, os.path.join(CORPUS, "amqp_in.py"))
        zato("conn", "create", "ibm-mq-def", qs.path, "--name", "qm", "--queue-manager", qm.qmgr,
             "--channel", qm.channel, "--conn-name", qm.conn_name, "--username", qm.user,
             "--password", "-", input=qm.password + "\n")  # fmt: skip
        zato("conn", "create", "ibm-mq-channel", qs.path, "--name", "mq-in", "--def", "qm",
             "--queue", qm.queues["in"], "--service", "ibm-mq.orders-in",
             "--backout-queue", qm.queues["backout"])  # fmt: skip
        tag = uuid.uuid4().hex[:8]
        correl = b"order-7".ljust(24, b"\x00")
        body = json.dumps({"tag": tag}).encode()
        put(qm, qm.queues["in"], [body], CorrelId=correl, ReplyToQ=b"REPLIES", Priority=4)
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        wait_for(lambda: client.llen(f"demo:mq-in:{tag}") == 1, timeout=60, what="the message")
        got = json.loads(client.lindex(f"demo:mq-in:{tag}", 0))
        client.delete(f"demo:mq-in:{tag}")
        assert got["correlation_id"] == "order-7"
        assert len(bytes.fromhex(got["msg_id"])) == 24 and set(got["msg_id"]) != {"0"}
        assert (got["reply_to"], got["priority"], got["backout_count"]) == ("REPLIES", 4, 0)
        assert got["timestamp"]  # from the PutDate/PutTime that the queue manager sets on a put
        assert got["same_as_wmq"] and json.loads(got["data"]) == {"tag": tag}
    finally:
        qm.close()


def _queue_exists(conn, queue: str) -> bool:  # noqa: ANN001
    try:
        conn.channel().queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    return True


def test_service_code_sees_no_secret(cluster) -> None:
    s = cluster.settings("server1")
    r = requests.get(f"{cluster.lb_url}/demo/probe", auth=("someone", "x"))
    found = r.json()
    assert found["objects"] > 100  # it did walk the service's world
    text = "\n".join(found["strings"])
    for secret in (s.admin_password, s.cluster_secret, s.invoke_password, "postgres:postgres@"):
        assert secret not in text
    r = api(cluster, cluster.lb_url, "demo.secrets.probe")
    assert s.invoke_password not in "\n".join(r.json()["strings"])


def test_a_distributed_lock_holds_across_the_cluster(cluster) -> None:
    """`with self.lock(name, ttl, block)` (tests/zato_corpus/locks.py) on both servers at once:
    the blocks never overlap; one that may not wait is a 409 or LockTimeout, caught or not."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    account = uuid.uuid4().hex[:8]
    bases = [cluster.server_url("server1"), cluster.server_url("server2")] * 2

    def update(base: str) -> int:
        return api(cluster, base, "locks.update-account", {"account_no": account, "hold": 0.3}).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(update, bases)) == [200] * 4
    steps = client.lrange(f"demo:lock:{account}", 0, -1)
    assert [s.split()[0] for s in steps] == ["in", "out"] * 4, steps  # one at a time
    assert steps[0::2] == [s.replace("out", "in") for s in steps[1::2]]  # each left where it entered
    assert {s.split()[1] for s in steps} == {"server1", "server2"}
    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(
            api, cluster, bases[0], "locks.update-account", {"account_no": account, "hold": 1.5}
        )
        wait_for(lambda: len(client.lrange(f"demo:lock:{account}", 0, -1)) == 9, what="the lock to be held")
        r = api(cluster, bases[1], "locks.update-account", {"account_no": account, "block": 0})
        assert r.status_code == 409, r.text
        assert (
            r.json()["zato_env"]["details"]
            == f"lock 'account-{account}' is held by another service; not taken at once"
        )
        r = api(cluster, bases[1], "locks.try-account", {"account_no": account})
        assert r.json() == {
            "took": False,
            "why": f"lock 'account-{account}' is held by another service; not taken at once",
        }
        assert holding.result().status_code == 200
    assert api(cluster, bases[1], "locks.try-account", {"account_no": account}).json() == {"took": True}


def test_self_crypto_works_across_the_cluster(cluster) -> None:
    """tests/zato_corpus/crypto_use.py: encrypted or hashed on one server, decrypted or verified
    on the other (the key comes from the cluster secret, which stays out of service code)."""
    one, other = cluster.server_url("server1"), cluster.server_url("server2")
    token = api(cluster, one, "crypto.encrypt", {"data": "zażółć 123"}).json()["token"]
    assert api(cluster, other, "crypto.decrypt", {"token": token}).json() == {"data": "zażółć 123"}
    forged = api(cluster, other, "crypto.decrypt", {"token": token[:-6] + "AAAAAA"})
    assert forged.status_code == 500 and "zażółć" not in forged.text
    hashed = api(cluster, one, "crypto.hash", {"password": "s3cret"}).json()["hashed"]
    assert hashed.startswith("$pbkdf2-sha512$120000$")
    assert api(cluster, other, "crypto.verify", {"password": "s3cret", "hashed": hashed}).json() == {
        "ok": True
    }
    assert api(cluster, other, "crypto.verify", {"password": "S3cret", "hashed": hashed}).json() == {
        "ok": False
    }


def test_zato_service_invoke_from_the_command_line(cluster) -> None:
    """`zato service invoke DIR NAME --payload JSON` (Zato's command): the response printed,
    exit 1 on an error answer, --async prints the CID and the job runs."""
    out = zato(
        "service", "invoke", cluster.path, "crm.client.get", "--payload", '{"client_id": 4, "lang": "pl"}'
    )
    assert json.loads(out.stdout) == {"client_id": 4, "name": "Client 4", "is_vip": None, "lang": "pl"}
    piped = zato("service", "invoke", cluster.server_dir("server2"), "crm.client.get", "--payload", "-",
                 input='{"client_id": 5}')  # fmt: skip
    assert json.loads(piped.stdout)["name"] == "Client 5"
    missing = zato("service", "invoke", cluster.path, "crm.client.get", check=False)
    assert missing.returncode == 1 and "missing input: client_id" in missing.stdout
    assert "service crm.client.get on server server1 answered 400" in missing.stderr
    bad = zato(
        "service", "invoke", cluster.path, "crm.client.get", "--payload", "{client_id: 1}", check=False
    )
    assert bad.returncode == 1 and bad.stderr.startswith("zato: error: --payload is not JSON")
    deep = zato(
        "service", "invoke", cluster.path, "crm.client.get", "--payload", "-", input="[" * 5000, check=False
    )
    assert deep.returncode == 1 and deep.stderr.startswith(
        "zato: error: --payload is not JSON: JSON nested too deeply"
    )
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    job = uuid.uuid4().hex[:8]
    cid = zato(
        "service", "invoke", cluster.path, "jobs.run", "--async", "--payload", json.dumps({"job": job})
    )
    assert re.fullmatch(r"K[0-9A-Z]{27}\n", cid.stdout), cid.stdout
    wait_for(lambda: client.lrange(f"demo:job-done:{job}", 0, -1), what="the job queued by the CLI")
    # Zato 3.2's docs (admin/cli/service-invoke): `--is-async`, and "If a service produces no
    # response, '(None)' will be returned." Before: argparse refused --is-async; nothing printed.
    job = uuid.uuid4().hex[:8]
    cid = zato(
        "service", "invoke", cluster.path, "jobs.run", "--is-async", "--payload", json.dumps({"job": job})
    )
    assert re.fullmatch(r"K[0-9A-Z]{27}\n", cid.stdout), cid.stdout
    wait_for(lambda: client.lrange(f"demo:job-done:{job}", 0, -1), what="the job queued with --is-async")
    assert zato("service", "invoke", cluster.path, "docs.no-response").stdout == "(None)\n"


def test_invoke_async_with_zato_keywords_cid_and_callbacks(cluster) -> None:
    """invoke_async(..., cid=..., callback=[name, class]) and the `-async-callback` service by
    name (tests/zato_corpus/async_jobs.py). Before: the CID was a new one and no callback ran."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    job = uuid.uuid4().hex[:8]
    r = api(cluster, cluster.lb_url, "jobs.start-quote", {"job": job})
    cid = "K" + job.upper().ljust(27, "0")
    assert r.status_code == 200 and r.json() == {"cid": cid}, r.text
    wait_for(lambda: len(client.lrange(f"demo:quote:{job}", 0, -1)) == 2, what="both callbacks")
    got = sorted(client.lrange(f"demo:quote:{job}", 0, -1))
    assert got == ["jobs.quote-logged", f"jobs.quote-received 42 {cid} invoke-async-callback"]
    other = uuid.uuid4().hex[:8]
    assert api(cluster, cluster.lb_url, "jobs.start-default", {"job": other}).status_code == 200
    wait_for(lambda: client.lrange(f"demo:quote:{other}", 0, -1), what="the -async-callback service")
    assert client.lrange(f"demo:quote:{other}", 0, -1) == ["jobs.start-default-async-callback"]


def test_invoke_async_to_json_string_gives_a_simpleio_service_its_input(cluster) -> None:
    """Zato's invoke_async(..., to_json_string=True) sends the payload as JSON text. Before, a
    SimpleIO service given it failed (InputError: missing input: job, n, in server.log): its
    input was read from a dict only."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    job = uuid.uuid4().hex[:8]
    r = api(cluster, cluster.lb_url, "jobs.start-json-string", {"job": job})
    assert r.status_code == 200, r.text
    wait_for(lambda: client.lrange(f"demo:sio-run:{job}", 0, -1), what="jobs.sio-run with its input")
    assert client.lrange(f"demo:sio-run:{job}", 0, -1) == ["8"]


def test_invoke_async_survives_the_death_of_the_server_running_it(cluster) -> None:
    """Last in this module: it kills a server."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    job = uuid.uuid4().hex[:8]
    r = api(cluster, cluster.server_url("server1"), "jobs.start", {"job": job, "sleep": 0})
    assert r.status_code == 200 and r.json()["cid"].startswith("K")
    wait_for(lambda: client.lrange(f"demo:job-done:{job}", 0, -1), what="the async job")
    assert client.lrange(f"demo:job-done:{job}", 0, -1)[0].endswith(" invoke-async")
    slow = uuid.uuid4().hex[:8]
    api(cluster, cluster.server_url("server1"), "jobs.start", {"job": slow, "sleep": 3})
    started = wait_for(lambda: client.lrange(f"demo:job-started:{slow}", 0, -1), what="the slow job to start")
    runner = started[0]
    os.killpg(cluster.pid(runner), signal.SIGKILL)  # the arbiter, its workers, its supervisor
    survivor = "server2" if runner == "server1" else "server1"
    done = wait_for(
        lambda: client.lrange(f"demo:job-done:{slow}", 0, -1),
        timeout=30,
        what="the job to run again on the surviving server",
    )
    assert done == [f"{survivor} invoke-async"]
    assert client.lrange(f"demo:job-started:{slow}", 0, -1) == [runner, survivor]
