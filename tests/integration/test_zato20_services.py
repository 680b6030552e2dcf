"""Services written as Zato 2.0's and 3.x's docs write them (tests/zato_corpus/zato20_types.py,
zato20_sio_hooks.py, zato20_input.py, zato20_result.py, zato20_lists.py, zato20_errors.py,
zato20_job_aware.py, zato20_translate.py, zato20_slow.py, zato20_request_extras.py, zato32_mail.py,
zato32_new_instance.py, zato_dev_aids.py, rest_verbs.py, zato20_own_init.py, zato20_channel.py,
zato20_impl_name.py, zato20_json.py, zato20_helpers.py, query_lists.py, zato3_environ.py,
zato32_left_out.py), deployed with `zato deploy` to a one-server quickstart and called directly and
through the load balancer."""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import json
import os
import subprocess
import sys
import urllib.parse

import pytest
import requests

from tests.support import process_table, wait_for, zato

CORPUS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zato_corpus")


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=1)
    qs.start()
    yield qs


def deploy(qs, module: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    """`zato deploy` of a corpus module by its name, or of a file by its path."""
    path = module if os.path.isabs(module) else os.path.join(CORPUS, module + ".py")
    return subprocess.run(
        [sys.executable, "-m", "zato", "deploy", qs.path, path], capture_output=True, text=True, timeout=60
    )


def channel(qs, url_path: str, service: str, probe: str = "") -> None:  # noqa: ANN001
    """A channel for `service`, once the server serves it (at `probe`, a path it matches)."""
    zato("channel", "create", qs.path, "--name", service, "--url-path", url_path, "--service", service)
    base = qs.server_url("server1")
    path = probe or url_path
    wait_for(lambda: requests.options(f"{base}{path}").status_code != 404, what=f"channel {url_path}")


def test_zato20_type_names_deploy_and_convert(cluster) -> None:
    """ListOfDicts, Nested and UTC, imported from zato.server.service as Zato 2.0 (and 3.0)
    services do. Before: the module was refused at deploy, `ImportError: cannot import name
    'ListOfDicts' from 'zato.server.service'`."""
    done = deploy(cluster, "zato20_types")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/orders", "zato20.customer.orders")
    body = {"cust_name": "Jane", "since": "2013-05-01T00:00:00+00:00", "filters": [{"status": "paid"}]}
    body["extra"] = {"any": ["thing", 1]}
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/orders", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "cust_id": 1,
            "orders": [{"id": 1, "status": "new"}, {"status": "paid"}],
            "last_seen": "2014-01-01T12:00:00",  # UTC: its +00:00 left out, as in Zato 2.0
            "extra": {"any": ["thing", 1]},  # Nested: passed through
            "since": "2013-05-01T00:00:00",
        }
        r = requests.post(f"{base}/z20/orders", json=dict(body, filters=[1, 2]))
        assert r.status_code == 400, r.text
        assert r.json()["zato_env"]["details"] == "invalid input filters: [1, 2] is not a list of objects"


def test_log_input_and_log_output_write_to_the_server_log(cluster) -> None:
    """Zato's request/response docs: `self.log_input(user_msg)` and `self.log_output()` log what
    came in and what goes out (keys in `suppress_keys` as "(suppressed)") and return it. Before:
    the service's 500, `AttributeError: 'Logged' object has no attribute 'log_input'`."""
    done = deploy(cluster, "zato_dev_aids")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/aids/logged", "aids.logged")
    r = requests.post(f"{cluster.lb_url}/aids/logged", json={"cust_id": 7})
    assert r.status_code == 200, r.text
    keys = ["channel", "cid", "environ", "name", "request.payload", "wsgi_environ"]
    assert r.json() == {"cust_id": 7, "logged": keys}
    cid = r.headers["X-Zato-CID"]
    said_in = (
        "Before processing {'request.payload': {'cust_id': 7}, 'channel': 'http-soap', "
        f"'cid': '{cid}', 'name': 'aids.logged', 'environ': {{}}, 'wsgi_environ': {{"
    )
    said_out = (
        "{'response.payload': {'cust_id': 7, 'logged': [" + ", ".join(repr(k) for k in keys) + "]}, "
        f"'channel': 'http-soap', 'cid': '{cid}', 'name': 'aids.logged', 'environ': '(suppressed)', "
        "'wsgi_environ': '(suppressed)', 'status_code': 200, 'headers': {}}"
    )
    wait_for(
        lambda: said_in in cluster.server_logs() and said_out in cluster.server_logs(), 10, what="logged"
    )


def test_content_encoding_is_sent_as_the_header(cluster) -> None:
    """Zato 3.2's `self.response.content_encoding` (its response docs): the body the service
    compressed goes out with `Content-Encoding: gzip`, which a client decodes. Before: the
    service's 500, `AttributeError: 'Response' object has no attribute 'content_encoding'`."""
    done = deploy(cluster, "zato_dev_aids")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/aids/gz", "aids.compressed")
    for url in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{url}/aids/gz")  # requests decodes gzip as any client does
        assert r.status_code == 200, r.text
        assert r.headers["Content-Encoding"] == "gzip" and r.json() == {"compressed": True}
        raw = requests.get(f"{url}/aids/gz", stream=True).raw.read(decode_content=False)
        assert gzip.decompress(raw) == b'{"compressed": true}'


def test_a_module_importing_bunch_is_refused_saying_what_to_use(cluster, tmp_path) -> None:
    """Zato 2.0's JSON docs parse a payload with `from bunch import bunchify`; the bunch package
    (Python 2 only) is not installed here. Before, the refusal said to deploy 'bunch' first, as
    if it were one of the user's modules."""
    path = tmp_path / "uses_bunch.py"
    path.write_text(
        "from bunch import bunchify\nfrom zato.server.service import Service\n\n\n"
        "class Deep(Service):\n    def handle(self):\n"
        "        self.response.payload = {'id': bunchify(self.request.payload).cust.id}\n"
    )
    done = deploy(cluster, str(path))
    assert done.returncode != 0
    assert "No module named 'bunch' (Zato installs the bunch package, this server does not: " in done.stderr
    assert "use self.request.bunchified()" in done.stderr and "deploy it first" not in done.stderr


def test_rest_verb_methods_answer_their_methods(cluster) -> None:
    """Zato 3.x's handle_GET, handle_POST... (its REST services page; Zato 3.1's blog: "will
    continue to work in all future Zato versions"): each runs for its method on an HTTP channel,
    a method without one is a 405 with Allow, and handle() takes the methods without their own.
    Before: the service's 500, `NotImplementedError: service rest.customer does not implement
    handle()`, and handle_POST never ran beside a handle()."""
    done = deploy(cluster, "rest_verbs")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/rest/customers/{cust_id}", "rest.customer", probe="/rest/customers/1")
    channel(cluster, "/rest/orders", "rest.order")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/rest/customers/7")
        assert (r.status_code, r.json()) == (200, {"cust_id": 7, "name": "Jane", "by": "handle_GET"}), r.text
        r = requests.post(f"{base}/rest/customers/8", json={"name": "Bob"})
        assert (r.status_code, r.json()) == (201, {"name": "Bob", "by": "handle_POST"}), r.text
        r = requests.delete(f"{base}/rest/customers/8")
        assert (r.status_code, r.content) == (204, b""), r.text
        r = requests.head(f"{base}/rest/customers/7")
        assert (r.status_code, r.content) == (200, b""), r.text
        r = requests.put(f"{base}/rest/customers/7", json={"name": "Bob"})
        assert r.status_code == 405, r.text
        assert r.headers["Allow"] == "DELETE, GET, HEAD, POST"
        said = "service rest.customer has no handle_PUT (it takes DELETE, GET, HEAD, POST)"
        assert r.json()["zato_env"]["details"] == said
        r = requests.post(f"{base}/rest/orders", json={})
        assert (r.status_code, r.json()) == (200, {"by": "handle_POST"}), r.text
        r = requests.patch(f"{base}/rest/orders", json={})
        assert (r.status_code, r.json()) == (200, {"by": "handle", "method": "PATCH"}), r.text


def test_forcetype_subclasses_convert_input_and_output(cluster) -> None:
    """Zato 2.0's types of one's own: a ForceType subclass whose `from_json` makes the input
    value and `to_json` the output value, and an Integer subclass with its own `from_json`
    raising BadRequest. Before: refused at deploy, `ImportError: cannot import name 'ForceType'
    from 'zato.server.service'`."""
    done = deploy(cluster, "zato20_sio_hooks")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/price", "zato20.order.price")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        body = {"unit_price": "12,50", "quantity": "3", "email": "j@x.org"}
        r = requests.post(f"{base}/z20/price", json=body)
        assert r.status_code == 200, r.text
        # to_json wrote the total; deepcopy() kept the input as sent while the service changed its own
        assert r.json() == {"total": "37.50 EUR", "contact": "j@x.org", "as_sent": "12.50"}
        r = requests.post(f"{base}/z20/price", json={"unit_price": "abc", "quantity": 1, "phone": "1"})
        assert r.status_code == 400, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith("invalid input unit_price: 'abc' is refused by Money.from_json"), details
        r = requests.post(f"{base}/z20/price", json={"unit_price": "1", "quantity": -2, "phone": "1"})
        assert r.status_code == 400, r.text
        assert r.json()["zato_env"]["details"] == "quantity must not be negative, is -2"


def test_require_any_is_a_400_naming_the_inputs_and_deepcopy_is_deep(cluster) -> None:
    """Zato 2.0's `self.request.input.require_any('email', 'phone', 'customer_id')`: a request
    with none of them is refused naming them all; one of them is enough, and the ValueError
    Zato raises is still caught by a service's own `except ValueError`. As in Zato, a value that
    is not true (0, false, "") does not count: the service would go on with nothing to use.
    Before: `{"customer_id": 0}` was taken (200, contact 0). And `self.request.input.deepcopy()`:
    a copy the service's later changes (to a nested object too) leave alone."""
    done = deploy(cluster, "zato20_input")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/register", "zato20.customer.register")
    channel(cluster, "/z20/subscribe", "zato20.subscribe")
    channel(cluster, "/z20/settle", "zato20.message.settle")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/register", json={"email": "", "address": {"city": "Oslo"}})
        assert r.status_code == 400, r.text
        said = "missing input: at least one of email, phone, customer_id is required"
        assert r.json()["zato_env"]["details"] == said
        for nothing in ({"customer_id": 0}, {"customer_id": 0, "phone": ""}, {"email": None}):
            r = requests.post(f"{base}/z20/register", json={**nothing, "address": {"city": "Oslo"}})
            assert r.status_code == 400, (nothing, r.text)
            assert r.json()["zato_env"]["details"] == said
        r = requests.post(f"{base}/z20/register", json={"customer_id": 7, "address": {"city": "Oslo"}})
        assert r.status_code == 200, r.text
        assert r.json() == {"contact": 7, "city_sent": "Oslo", "city_used": "OSLO"}
        r = requests.post(f"{base}/z20/subscribe", json={})
        assert (r.status_code, r.json()) == (422, {"via": "nothing"}), r.text
        r = requests.post(f"{base}/z20/subscribe", json={"phone": "+48 1"})
        assert (r.status_code, r.json()) == (200, {"via": "phone"}), r.text
        r = requests.post(f"{base}/z20/settle", json={"msg_id": 17, "ack": False, "reject": False})
        assert r.status_code == 400, r.text  # before: 200 and "rejected", which no one asked for
        assert r.json()["zato_env"]["details"] == "missing input: at least one of ack, reject is required"
        r = requests.post(f"{base}/z20/settle", json={"msg_id": 17, "ack": False, "reject": True})
        assert (r.status_code, r.json()) == (200, {"msg_id": 17, "state": "rejected"}), r.text


def test_a_response_result_of_zato_error_is_an_error_for_the_caller(cluster) -> None:
    """Zato 2.0's `self.response.result = ZATO_ERROR` with `result_details`, instead of an
    exception: the client gets Zato's error envelope with the details (500, or the service's own
    error status), and a service that invoked it an exception it can catch. Before: the module
    was refused at deploy, `cannot import name 'ZATO_ERROR' from 'zato.common'` (and
    `self.response.result` was an AttributeError)."""
    done = deploy(cluster, "zato20_result")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/check", "zato20.customer.check")
    channel(cluster, "/z20/check-many", "zato20.customer.check-many")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/check", json={"cust_id": 7})
        assert (r.status_code, r.json()) == (200, {"status": "active"}), r.text
        for cust_id, status in ((101, 500), (1001, 404)):
            r = requests.post(f"{base}/z20/check", json={"cust_id": cust_id})
            assert r.status_code == status, r.text
            env = r.json()["zato_env"]
            assert (env["result"], env["details"]) == ("ZATO_ERROR", f"No such customer: {cust_id}")
        r = requests.post(f"{base}/z20/check-many", json={"ids": [1, 101]})
        assert r.status_code == 200, r.text
        assert r.json() == {"1": "ok", "101": "error: No such customer: 101"}


def test_the_raw_request_of_a_service_invoked_directly_is_what_it_was_given(cluster) -> None:
    """Zato 2.0's request docs: "If a service was invoked directly, it will be a Python object
    received on input, such as a list or dict." Before: "" (no body came over HTTP)."""
    done = deploy(cluster, "zato20_input")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/raw", "zato20.invoke-for-raw")
    r = requests.post(f"{cluster.lb_url}/z20/raw", data='{"a": 1}')
    assert r.status_code == 200, r.text
    assert r.json() == {
        "dict": {"type": "dict", "raw": {"cust_id": 1}},
        "list": {"type": "list", "raw": [1, 2]},
        "nothing": {"type": "str", "raw": ""},
        "http": '{"a": 1}',
    }


def test_a_list_answer_built_with_append_and_output_repeated(cluster) -> None:
    """Zato 2.0's list services (tests/zato_corpus/zato20_lists.py): SimpleIO's
    `output_repeated = True` and `self.response.payload.append(record)` for each record, dicts
    or objects, only the declared fields answered, under `response_elem`; none appended is an
    empty list. Before: the service's 500, `AttributeError: append` (and with nothing appended,
    `did not produce required output: provider, rate, ts`)."""
    done = deploy(cluster, "zato20_lists")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/rates", "zato20.rates.get-list")
    channel(cluster, "/z20/rates/count", "zato20.rates.count")
    rates = [
        {"provider": "ECB", "rate": "4.2840", "ts": "2014-01-01T12:00:00"},
        {"provider": "NBP", "rate": "4.2851", "ts": "2014-01-01T12:00:00"},  # Broken Bank: skipped
        {"provider": "Fixed", "rate": "4.30", "ts": "2014-01-02T00:00:00"},
    ]
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/rates", json={"from": "EUR", "to": "PLN"})
        assert r.status_code == 200, r.text
        assert r.json() == {"rates": rates}
        r = requests.get(f"{base}/z20/rates?from=EUR&to=USD")
        assert (r.status_code, r.json()) == (200, {"rates": []})
        r = requests.post(f"{base}/z20/rates/count", json={"from": "EUR", "to": "PLN"})
        assert (r.status_code, r.json()) == (200, {"count": 3}), r.text


def test_zato_exception_imported_from_zato_common(cluster) -> None:
    """Zato 2.0's services import ZatoException from zato.common
    (tests/zato_corpus/zato20_errors.py): raised, it is the client's 500 with its message;
    a service that invokes the failing one catches it by that name. Before: the module was
    refused at deploy, `ImportError: cannot import name 'ZatoException' from 'zato.common'`."""
    done = deploy(cluster, "zato20_errors")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/account", "zato20.account.get")
    channel(cluster, "/z20/accounts/check", "zato20.account.check-many")
    good, bad = "PL61109010140000071219812874", "PL00000000000000000000000000"
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/account", json={"iban": good})
        assert (r.status_code, r.json()) == (200, {"iban": good, "status": "active"}), r.text
        r = requests.post(f"{base}/z20/account", json={"iban": bad})
        assert r.status_code == 500, r.text
        assert r.json()["zato_env"]["details"] == f"No such account: {bad}"
        r = requests.post(f"{base}/z20/accounts/check", json={"ibans": [good, bad]})
        assert r.status_code == 200, r.text
        failed = {"iban": bad, "error": f"No such account: {bad}"}
        assert r.json() == [{"iban": good, "status": "active"}, failed]


def test_job_type_data_format_and_transport_of_a_service(cluster) -> None:
    """Zato's scheduler docs say to check `self.channel` and `self.job_type` to tell whether a
    job invoked a service; `self.data_format` and `self.transport` are among its service
    attributes (tests/zato_corpus/zato20_job_aware.py). There is no scheduler here, so
    job_type is None. Before: the service's 500, `AttributeError: 'SyncBillings' object has
    no attribute 'job_type'`."""
    done = deploy(cluster, "zato20_job_aware")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/billings/sync", "zato20.billings.sync")
    channel(cluster, "/z20/billings/sync-all", "zato20.billings.sync-all")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/billings/sync")
        assert r.status_code == 200, r.text
        assert r.json() == {"invoked_by": "http-soap", "is_json": True, "transport": "plain_http"}
        r = requests.get(f"{base}/z20/billings/sync-all")
        assert r.status_code == 200, r.text
        assert r.json() == {"invoked_by": "invoke", "is_json": True, "transport": None}


def test_a_module_using_smtp_message_deploys_and_its_mail_says_what_is_left_out(cluster) -> None:
    """Zato's e-mail docs build an `SMTPMessage` (`from zato.common.api import SMTPMessage`)
    and send it through `self.email.smtp`, which is not here (tests/zato_corpus/zato32_mail.py):
    the module deploys, its other service answers, and each mailing one is a 500 naming the
    left-out feature, whichever of the two it reaches first. Before: the whole module was
    refused at deploy, `ImportError: cannot import name 'SMTPMessage' from 'zato.common.api'`."""
    done = deploy(cluster, "zato32_mail")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z32/report", "zato32.report.daily")
    channel(cluster, "/z32/report/mail", "zato32.report.mail")
    channel(cluster, "/z32/report/mail2", "zato32.report.mail-conn-first")
    left_out = "e-mail connections (self.email.smtp, self.email.imap) is not supported by this server"
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z32/report")
        assert (r.status_code, r.json()) == (200, {"orders": 12, "returns": 1}), r.text
        r = requests.post(f"{base}/z32/report/mail")
        assert r.status_code == 500, r.text
        assert r.json()["zato_env"]["details"].startswith(f"SMTPMessage: {left_out}")
        r = requests.post(f"{base}/z32/report/mail2")
        assert r.status_code == 500, r.text
        assert r.json()["zato_env"]["details"].startswith(f"self.email: {left_out}")
    logs = cluster.server_logs()
    assert "zato32.report.mail: SMTPMessage: e-mail connections" in logs


def test_new_instance_gives_another_service_to_call_methods_on(cluster) -> None:
    """Zato 3.2's `self.new_instance(name)` (tests/zato_corpus/zato32_new_instance.py): the
    other service as an object whose methods run with this request and CID, channel type
    `new-instance`, sharing `self.environ`; its handle() does not run. Before: the service's
    500, `AttributeError: 'AccountAPI' object has no attribute 'new_instance'`."""
    done = deploy(cluster, "zato32_new_instance")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z32/accounts", "zato32.customer.account-api")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z32/accounts", json={"username": "my.user"})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "created": {"created": "my.user", "channel": "new-instance"},
            "deleted": {"deleted": "my.user"},
            "same_cid": True,
            "name": "zato32.customer.account",
            "environ": {"created": "my.user"},
        }


def test_translate_is_named_as_left_out(cluster) -> None:
    """Zato 2.0's `self.translate(...)` (KVDB translations) is left out: the client's 500 and
    the server log name it (tests/zato_corpus/zato20_translate.py). Before: Python's
    `'GetCustomerType' object has no attribute 'translate'`, in the server log only."""
    done = deploy(cluster, "zato20_translate")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/customer/type", "zato20.customer.type")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/customer/type")
        assert r.status_code == 500, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith("self.translate: Zato's KVDB translations between systems' codes"), details
        assert "is not supported by this server" in details


def test_slow_threshold_logs_a_slow_invocation(cluster) -> None:
    """Zato's `slow_threshold` (ms, default 99999) on a service class
    (tests/zato_corpus/zato20_slow.py): an invocation slower than it is named in server.log with
    its CID and time; a service that does not set it reads Zato's default. Before: reading it
    was the service's 500 (`AttributeError: ... has no attribute 'slow_threshold'`), and a
    slow invocation went unsaid."""
    done = deploy(cluster, "zato20_slow")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/report/monthly", "zato20.report.monthly")
    channel(cluster, "/z20/report/daily", "zato20.report.daily")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/report/daily")
        assert (r.status_code, r.json()) == (200, {"rows": 1, "slow_threshold": 99999}), r.text
        r = requests.get(f"{base}/z20/report/monthly")
        assert (r.status_code, r.json()) == (200, {"rows": 3, "slow_threshold": 100}), r.text
        said = f"cid {r.headers['X-Zato-CID']}: service zato20.report.monthly took "
        wait_for(lambda s=said: s in cluster.server_logs(), 10, what="the slow invocation logged")
        line = next(x for x in cluster.server_logs().splitlines() if said in x)
        assert line.endswith("ms, more than its slow_threshold of 100 ms"), line
    assert "service zato20.report.daily took" not in cluster.server_logs()


def test_the_http_side_of_a_request_and_the_server_pid(cluster) -> None:
    """Zato's `self.request.http` (method, path, GET, POST / get_form_data(), params, headers,
    user_agent) and `self.server.pid` (tests/zato_corpus/zato20_request_extras.py). Before:
    the service's 500, `AttributeError: 'HTTPData' object has no attribute 'user_agent'` (then
    `'ServerView' object has no attribute 'pid'`)."""
    done = deploy(cluster, "zato20_request_extras")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/audit/{acct}", "zato20.audit.request", "/z20/audit/x")
    arbiter = cluster.pid("server1")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(
            f"{base}/z20/audit/PL-7?q=late",
            data={"note": "called twice"},
            headers={"User-Agent": "billing-app/2.1"},
        )
        assert r.status_code == 200, r.text
        got = r.json()
        pid = got.pop("pid")
        assert got == {
            "user_agent": "billing-app/2.1",
            "method": "POST",
            "path": "/z20/audit/PL-7",
            "query": {"q": "late"},
            "params": {"q": "late", "acct": "PL-7"},
            "form": {"note": "called twice"},
            "pid_is_int": True,
        }
        parents = {p: ppid for p, ppid, _ in process_table()}
        assert parents.get(pid) == arbiter, (pid, arbiter)  # a worker of server1
        where = urllib.parse.urlsplit(base)  # http.client sends no User-Agent of its own
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        conn.request("GET", "/z20/audit/PL-7")
        answer = conn.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["user_agent"] is None
        conn.close()


def test_time_helpers_write_and_reformat_in_arrow_formats(cluster) -> None:
    """Zato's `self.time` takes Arrow's formats (tests/zato_corpus/zato20_request_extras.py):
    `reformat(value, 'DD-MM-YYYY', 'MM/DD/YY')`, `utcnow()` ('YYYY-MM-DDTHH:mm:ss'), `today()`
    and `today('DD.MM.YYYY')`, `one_day_from(date)`; a value that does not match its format is
    the service's 500 with the reason in server.log. Before: the service's 500,
    `AttributeError: 'TimeUtil' object has no attribute 'reformat'` (and `today('DD.MM.YYYY')`
    was a TypeError, utcnow's format strftime's)."""
    done = deploy(cluster, "zato20_request_extras")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/dates", "zato20.dates.convert")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        r = requests.post(f"{base}/z20/dates", json={"date": "23-03-2013"})
        after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["backend_date"] == "03/23/13"
        assert got["long_date"] == "Saturday, March 23rd 2013"
        assert got["due"] == "2014-01-01"
        assert before <= dt.datetime.strptime(got["utcnow"], "%Y-%m-%dT%H:%M:%S") <= after
        today = dt.date.fromisoformat(got["today"])
        assert dt.date.today() - dt.timedelta(days=1) <= today <= dt.date.today()  # the server's day
        assert got["today_eu"] == today.strftime("%d.%m.%Y")
        r = requests.post(f"{base}/z20/dates", json={"date": "2013-03-23"})
        assert r.status_code == 500, r.text
    assert "'2013-03-23' does not match the format 'DD-MM-YYYY'" in cluster.server_logs()


def test_invoke_with_serialize_gives_json_text(cluster) -> None:
    """Zato 2.0's `self.invoke(name, payload, serialize=True)` returns the other service's
    response as JSON text (tests/zato_corpus/zato20_request_extras.py). Before: the dict, as
    without it (`is_text` was false)."""
    done = deploy(cluster, "zato20_request_extras")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/customer/json", "zato20.customer.get-json")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/customer/json")
        assert r.status_code == 200, r.text
        assert r.json() == {"is_text": True, "parsed": {"cust_id": 7, "name": "Jane"}}


def test_usage_is_named_as_left_out(cluster) -> None:
    """Zato's `self.usage` (its count of a service's invocations) is left out: the client's 500
    names it and where this server counts invocations. Before: the service's 500 without a
    word of why, `AttributeError: 'UsageCount' object has no attribute 'usage'` in the log."""
    done = deploy(cluster, "zato20_request_extras")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/stats/usage", "zato20.stats.usage")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/stats/usage")
        assert r.status_code == 500, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith("self.usage: Zato's count of a service's invocations"), details
        assert "zato_service_invocations" in details and "is not supported by this server" in details


PRICED = """
from zato.server.service import Float, Service


class Priced(Service):
    name = 'edge.priced'

    class SimpleIO:
        input_required = (Float('amount'),)

    def handle(self):
        self.logger.info('edge.priced ran with %r', self.request.input.amount)
        self.response.payload = {'amount': self.request.input.amount}
"""


def test_a_float_input_a_double_cannot_hold_is_a_400_naming_it(cluster, tmp_path) -> None:
    """Before: a JSON integer too large for a double was a 500 'service edge.priced failed' with
    an OverflowError traceback in server.log; nan and inf in a query string reached the service
    as NaN and infinity (NaN passes any `amount > limit` check; the answer holding it was a 500)."""
    module = tmp_path / "edge_priced.py"
    module.write_text(PRICED)
    done = deploy(cluster, str(module))
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/edge/priced", "edge.priced")
    url = f"{cluster.server_url('server1')}/edge/priced"
    r = requests.post(url, json={"amount": 10**400}, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["zato_env"]["details"].endswith("is out of range: more than a double holds"), r.text
    for given in ("nan", "inf", "-Infinity"):
        r = requests.get(url, params={"amount": given}, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["zato_env"]["details"] == f"invalid input amount: {given!r} is not a finite number"
    assert (
        "edge.priced ran with"
        not in open(os.path.join(cluster.server_dir("server1"), "logs", "server.log")).read()
    )
    r = requests.get(url, params={"amount": "2.5"}, timeout=10)
    assert (r.status_code, r.json()) == (200, {"amount": 2.5})


def test_a_service_with_its_own_constructor_runs(cluster) -> None:
    """Zato makes each service without arguments (`Service.__init__(self, *ignored_args,
    **ignored_kwargs)` in Zato 2.0's and 3.x's service code), so a project's base class of
    services may set up its state in `__init__(self)` calling `super().__init__()`. Before:
    every call of such a service was a 500, `TypeError: AuditedService.__init__() takes 1
    positional argument but 4 were given` in server.log."""
    done = deploy(cluster, "zato20_own_init")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/init/customer", "zato20.init.customer.get")
    channel(cluster, "/z20/init/forwarding", "zato20.init.forwarding")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/init/customer", json={"cust_id": "5"})
        assert r.status_code == 200, r.text
        audit = ["created", "before_handle", "handle"]
        assert r.json() == {"cust_id": 5, "audit": audit, "started_in": "http-soap", "cid_known": True}
        r = requests.get(f"{base}/z20/init/forwarding")
        assert r.status_code == 200, r.text
        got = {"cust_id": 7, "audit": audit, "started_in": "invoke", "cid_known": True}
        assert r.json() == {"calls": 1, "got": got}


def test_self_channel_compares_and_prints_as_its_type(cluster) -> None:
    """Zato 2.0's self.channel is the channel's type (its service docs: "Type of the channel
    (not its name)", logged as `channel:[http-soap]`), so its services test `self.channel ==
    CHANNEL.HTTP_SOAP`; Zato 3.x's `.name` and `.type` read the same object. Before: the
    comparison was silently False (the service took its 'some other way' branch), the log said
    `channel:[ChannelInfo(name=...)]`, and a payload holding self.channel had an object of its
    fields where Zato 2.0 writes the type."""
    done = deploy(cluster, "zato20_channel")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/channel/who", "zato20.channel.who-called")
    channel(cluster, "/z20/channel/caller", "zato20.channel.caller")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/channel/who")
        assert r.status_code == 200, r.text
        said = {"how": "over HTTP", "channel": "http-soap", "as_text": "http-soap"}
        assert r.json() == {**said, "name": "zato20.channel.who-called", "type": "http-soap"}
        r = requests.get(f"{base}/z20/channel/caller")
        assert r.status_code == 200, r.text
        said = {"how": "by another service", "channel": "invoke", "as_text": "invoke"}
        assert r.json() == {**said, "name": "invoke", "type": "invoke"}
    wait_for(lambda: "channel:[http-soap]" in cluster.server_logs(), 10, what="the channel logged")


def test_invoke_by_impl_name_runs_the_service_of_that_class(cluster) -> None:
    """Zato 2.0's `self.invoke_by_impl_name('module.ClassName', payload)` (its service API:
    "Same as invoke but using a service's impl_name instead of its name"). Before: the
    service's 500, `AttributeError: 'Convert' object has no attribute 'invoke_by_impl_name'`."""
    done = deploy(cluster, "zato20_impl_name")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/rates/convert", "zato20.rates.convert")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.post(f"{base}/z20/rates/convert", json={})
        assert r.status_code == 200, r.text
        assert r.json() == {"rate": "4.31", "impl_name": "zato20_impl_name.Convert"}
    r = requests.post(f"{cluster.lb_url}/z20/rates/convert", json={"impl_name": "zato20_impl_name.Nope"})
    assert r.status_code == 500, r.text
    said = "no deployed service is implemented by 'zato20_impl_name.Nope' (module.ClassName)"
    wait_for(lambda: said in cluster.server_logs(), 10, what="the unknown impl_name logged")


def test_a_bunch_has_the_bunch_packages_methods(cluster) -> None:
    """Zato 2.0's JSON chapter answers with `self.response.payload = customer.toJSON()`, a
    Bunch (the bunch package, which this server refuses at deploy saying to use Bunch from
    zato.server.service); toDict() and fromDict() are that package's too. Before: the
    service's 500, `AttributeError: toJSON`."""
    done = deploy(cluster, "zato20_json")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/json/customer", "zato20.json.customer")
    channel(cluster, "/z20/json/details", "zato20.json.details")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/json/customer")
        assert r.status_code == 200, r.text
        address = '"address": {"city": "Prague", "lines": [{"no": 2}]}'
        assert r.text == "{" + address + ', "customer_name": "Max Derkov"}'
        r = requests.post(f"{base}/z20/json/details", json={"cust": {"details": {"id": 1}}})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": 1, "types": ["dict", "dict"]}


def test_a_module_importing_a_python2_module_is_told_its_python3_name(cluster, tmp_path) -> None:
    """Zato 2.0 ran services on Python 2.7, and its request/response chapter's example does
    `import httplib` for `httplib.OK`. Before, the refusal said to deploy a module named
    'httplib' first, as if it were one of the user's own."""
    path = tmp_path / "req_resp.py"
    path.write_text(
        "import httplib\nfrom zato.server.service import Service\n\n\n"
        "class MyService(Service):\n    def handle(self):\n"
        "        self.response.status_code = httplib.OK\n"
    )
    done = deploy(cluster, str(path))
    assert done.returncode != 0
    said = "No module named 'httplib' (httplib is Python 2's name; on Python 3, which this server runs, "
    assert said + "it is http.client)" in done.stderr, done.stderr
    assert "deploy it first" not in done.stderr


def test_a_list_input_given_as_a_repeated_parameter_keeps_every_value(cluster) -> None:
    """tests/zato_corpus/query_lists.py: `?status=new&status=paid` (how HTTP clients and
    browsers send a list) and a form's checkboxes give a SimpleIO `List` input every value;
    `self.request.http.GET.getlist('status')` has them all too (QueryDict's API, Zato's and
    Django's), while `GET['status']` stays the last one. Before: the service got `["paid"]`,
    the other values lost without a word, and `getlist` was an AttributeError."""
    done = deploy(cluster, "query_lists")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/orders/find", "orders.find")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/orders/find?status=new&status=paid&limit=5&limit=9&sort=a")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": ["new", "paid"],
            "limit": 9,  # not a list: the last value, as before
            "sort": "a",
            "get_status": "paid",
            "get_all_status": ["new", "paid"],
        }
        form = [("status", "new"), ("status", "sent"), ("status", "paid")]
        r = requests.post(f"{base}/orders/find", data=form)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == ["new", "sent", "paid"]
        r = requests.post(f"{base}/orders/find?status=late", data=form)  # the query string wins
        assert r.status_code == 200, r.text
        assert r.json()["status"] == ["late"]
        r = requests.get(f"{base}/orders/find?status=new,paid")  # one value: split on commas, as before
        assert (r.status_code, r.json()["status"], r.json()["get_all_status"]) == (
            200,
            ["new", "paid"],
            ["new,paid"],
        )


def test_zatos_helper_services_input_logger_and_echo(cluster) -> None:
    """Zato's docs invoke its helper services: `self.invoke_async('zato.helpers.input-logger',
    'My payload')` (its invoke_async example) writes what it got to server.log, and
    zato.helpers.echo answers with its request. Before: `no such service:
    zato.helpers.input-logger`, the calling service's 500."""
    done = deploy(cluster, "zato20_helpers")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z20/helpers/log-it", "zato20.helpers.log-it")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z20/helpers/log-it")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["echoed"] == {"cust_id": 7}
        said = f"{{'request.payload': 'My payload', 'channel': 'invoke-async', 'cid': '{got['cid']}'"
        wait_for(lambda s=said: s in cluster.server_logs(), 15, what="the input logged")


def test_a_module_importing_a_package_zato_installs_is_told_what_it_is(cluster, tmp_path) -> None:
    """Zato's XML chapter parses with `from lxml import etree`, and Zato 2.0's services often
    `from anyjson import dumps`: Zato installs both, this server neither. Before, the refusal
    said to deploy a module named 'lxml' first, as if it were one of the user's own."""
    for package, said in (
        ("lxml", "(Zato installs lxml for its XML data format, this server does not: it takes JSON only"),
        ("anyjson", "(Zato installs anyjson, this server does not: use the standard json module"),
    ):
        path = tmp_path / f"uses_{package}.py"
        path.write_text(f"import {package}\nfrom zato.server.service import Service\n")
        done = deploy(cluster, str(path))
        assert done.returncode != 0
        assert f"No module named '{package}' {said}" in done.stderr, done.stderr
        assert "deploy it first" not in done.stderr
    path = tmp_path / "uses_other.py"
    path.write_text("import no_such_package_here\nfrom zato.server.service import Service\n")
    done = deploy(cluster, str(path))
    assert (
        "deploy it first: deployed modules import each other by name; if it is a package, install"
        in done.stderr
    )


def test_self_environ_takes_attributes_as_zato3s_bunch(cluster) -> None:
    """Zato 3.x makes self.environ a Bunch, so its services pass values between hooks as
    attributes (`self.environ.started_by = ...` in before_handle); it is still a dict, as Zato
    2.0's. Before: `AttributeError: 'dict' object has no attribute 'started_by'`, logged from
    before_handle, then the service's 500 when handle() read it."""
    done = deploy(cluster, "zato3_environ")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z3/environ", "zato3.environ.timed")
    for base in (cluster.server_url("server1"), cluster.lb_url):
        r = requests.get(f"{base}/z3/environ")
        assert r.status_code == 200, r.text
        keys = ["legacy", "started_by", "steps"]
        assert r.json() == {"steps": ["before_handle", "handle"], "legacy": "as a dict", "keys": keys}


def test_zato32_connection_kinds_left_out_are_named(cluster) -> None:
    """Zato 3.2's self.out.hl7 (FHIR and MLLP), self.out.sms, self.out.vault, self.out.kafka
    and self.rest are left out here: the client's 500 names the feature, as for self.pubsub.
    Before: `'Outgoing' object has no attribute 'hl7'` (and 'Patients' ... 'rest'), in the
    server log only, which reads as a typo in the service."""
    done = deploy(cluster, "zato32_left_out")
    assert done.returncode == 0, done.stdout + done.stderr
    channel(cluster, "/z32/left-out", "zato32.left-out.patients")
    cases = {
        "hl7": "self.out.hl7: HL7 connections (self.out.hl7.fhir, self.out.hl7.mllp)",
        "sms": "self.out.sms: SMS connections (Twilio)",
        "vault": "self.out.vault: Vault connections",
        "kafka": "self.out.kafka: Kafka connections",
        "rest": "self.rest: Zato's REST facade (self.rest.CONNECTION; an outgoing HTTP connection",
    }
    for kind, said in cases.items():
        r = requests.post(f"{cluster.lb_url}/z32/left-out", json={"kind": kind})
        assert r.status_code == 500, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith(said) and "is not supported by this server" in details, details


def test_a_service_asking_for_json_schema_validation_is_refused_at_deploy(cluster, tmp_path) -> None:
    """Zato 3.1+'s `schema = 'myschema.json'` validates a service's input against a JSON Schema
    ("If we are here, it means that the input schema validation succeeded", its article). This
    server does not do that. Before: the module deployed and the service ran on any input, the
    attribute ignored without a word. A `schema` of the service's own (a database schema's
    name) still deploys."""
    path = tmp_path / "books.py"
    path.write_text(
        "from zato.server.service import Service\n\n\n"
        "class AddBook(Service):\n    name = 'books.add'\n    schema = 'myschema.json'\n\n"
        "    def handle(self):\n        self.response.payload = {'year': self.request.payload['year']}\n"
    )
    done = deploy(cluster, str(path))
    assert done.returncode != 0, done.stdout
    said = "service books.add sets schema = 'myschema.json', Zato's JSON Schema validation of its input"
    assert said in done.stderr and "which this server does not do" in done.stderr, done.stderr
    path.write_text(
        "from zato.server.service import Service\n\n\n"
        "class AddBook(Service):\n    name = 'books.add'\n    schema = 'library'  # the database's\n\n"
        "    def handle(self):\n        self.response.payload = {'schema': self.schema}\n"
    )
    done = deploy(cluster, str(path))
    assert done.returncode == 0, done.stdout + done.stderr
