"""The service API as Zato 3.x's programming guide shows it (tests/zato_corpus/zato3_service_api.py),
deployed with `zato deploy` to a one-server quickstart and called on the server and through the
load balancer."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import requests

from tests.support import wait_for, zato

CORPUS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "zato_corpus")
CHANNELS = (
    ("/zato3/about", "zato3.api.about"),
    ("/zato3/export", "zato3.api.csv-export"),
    ("/zato3/request-info", "zato3.api.request-info"),
    ("/zato3/customer", "zato3.crm.customer.create"),
    ("/zato3/lookup", "zato3.crm.customer.lookup"),
    ("/api/billing/{phone_no}", "zato3.billing.endpoint"),
    ("/zato3/billing", "zato3.billing.set-info"),
    ("/zato3/publish", "zato3.orders.publish"),
    ("/zato3/upload", "zato3.reports.upload"),
    ("/zato3/reports", "zato3.reports.list"),
    ("/zato3/notify", "zato3.crm.customer.notify"),
    ("/zato3/lookup-later", "zato3.crm.customer.lookup-later"),
    ("/zato3/remembered", "zato3.crm.customer.remembered"),
    ("/zato3/server-config", "zato3.api.server-config"),
    ("/zato3/phone", "zato3.crm.phone-lookup"),
    ("/zato3/customers", "zato3.crm.customer.list"),
    ("/zato3/customer-records/{cust_id}", "zato3.crm.customer.record"),
    ("/zato3/register", "zato3.crm.customer.register"),
    ("/zato3/hooks/github", "zato3.hooks.github"),
)


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=1)
    qs.start()
    path = os.path.join(CORPUS, "zato3_service_api.py")
    done = subprocess.run(
        [sys.executable, "-m", "zato", "deploy", qs.path, path], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    base = qs.server_url("server1")
    for url_path, service in CHANNELS:
        channel(qs, url_path, service)
    channel(qs, "/zato3/csv-import", "zato3.reports.csv-import", data_format="text")
    probe = "/api/billing/1"
    wait_for(lambda: requests.options(f"{base}{probe}").status_code != 404, what="channels")
    wait_for(lambda: requests.options(f"{base}/zato3/notify").status_code != 404, what="channels")
    wait_for(lambda: requests.options(f"{base}/zato3/csv-import").status_code != 404, what="channels")
    yield qs


def channel(qs, url_path: str, service: str, data_format: str = "json") -> None:  # noqa: ANN001
    """An HTTP channel named after its service, through the admin API (the CLI's `zato channel
    create` is a process of its own per channel: seconds each)."""
    body = {"name": service, "url_path": url_path, "service": service, "data_format": data_format}
    r = requests.post(f"{qs.server_url('server1')}/zato/admin/channels", json=body, auth=qs.admin_auth)
    assert r.status_code in (200, 201), r.text


def urls(qs) -> list[str]:  # noqa: ANN001
    return [qs.server_url("server1"), qs.lb_url]


def test_service_attributes_hooks_and_simple_io_defaults(cluster) -> None:
    """Zato's service attributes as its "Writing a service" chapter shows them: impl_name,
    invocation_time (UTC), environ shared by the hooks, processing_time and handle_return_time
    in finalize_handle, and `self.logger.info("Hello!", cid=self.cid)`. Before: the service's
    500, `TypeError: Logger._log() got an unexpected keyword argument 'cid'` (and without the
    cid: `'ServiceAPI' object has no attribute 'impl_name'`, then 'invocation_time')."""
    cids = []
    for base in urls(cluster):
        before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        r = requests.post(f"{base}/zato3/about", json={"is_active": True})
        assert r.status_code == 200, cluster.server_logs()[-2500:]
        got = r.json()
        assert got["cid"] == r.headers["X-Zato-CID"]
        cids.append(got["cid"])
        assert got["name"] == "zato3.api.about"
        assert got["impl_name"] == "zato3_service_api.ServiceAPI"
        invoked = dt.datetime.fromisoformat(got["invoked_at"])
        assert before - dt.timedelta(seconds=60) <= invoked <= before + dt.timedelta(seconds=60)  # UTC
        assert got["page"] == 1 and got["cust_name"] == "anonymous" and got["is_active"] is True
        assert (got["channel_name"], got["channel_type"]) == ("zato3.api.about", "http-soap")
        assert got["seen"] == ["seen_before_handle", "seen_handle"]
    wait_for(lambda: "zato3.api.about took" in cluster.server_logs(), what="finalize_handle's line")
    logs = cluster.server_logs()
    for cid in cids:
        assert f"cid {cid}: Hello!" in logs
        assert f"cid {cid}: Zato 2.0 spelling, level 20" in logs
    assert "Traceback" not in logs, logs[-3000:]


def test_request_cid_data_format_and_transport(cluster) -> None:
    """Zato 4.1's request docs list self.request.cid, .data_format and .transport. Before:
    the service's 500, `AttributeError: 'Request' object has no attribute 'cid'`."""
    for base in urls(cluster):
        r = requests.get(f"{base}/zato3/request-info")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "cid": r.headers["X-Zato-CID"],
            "same_cid": True,
            "data_format": "json",
            "transport": "plain_http",
            "invoked": {"same_cid": True, "transport": None},
        }


def test_a_response_of_the_services_own(cluster) -> None:
    for base in urls(cluster):
        r = requests.get(f"{base}/zato3/export")
        assert r.status_code == 200, r.text
        assert r.text == "welcome,to,Zato"
        assert r.headers["Content-Type"].startswith("text/csv")
        assert r.headers["X-Welcome"] == "Happy coding!"
        assert r.headers["Content-Disposition"] == "attachment; filename=info.csv"


def test_invoke_as_bunch_and_inline(cluster) -> None:
    for base in urls(cluster):
        r = requests.post(f"{base}/zato3/customer", json={"cust_id": "7"})
        assert r.status_code == 201, r.text
        assert r.headers["Location"] == "/crm/customer/7"
        assert r.json() == {"summary": "Customer 7 (ABC)", "segment": "ABC", "name": "Customer 7"}


def test_invoke_with_json_text_and_data_format_json(cluster) -> None:
    """`self.invoke(name, dumps(input_data), data_format=DATA_FORMAT.JSON)`, as Zato's
    "Invoking other services" page writes it: the SimpleIO service gets the JSON parsed.
    Before: the service's 400, `missing input: cust_id` (it got the text)."""
    for base in urls(cluster):
        r = requests.post(f"{base}/zato3/lookup", json={"cust_id": 5})
        assert r.status_code == 200, r.text
        want = {"cust_id": 5, "name": "Customer 5", "segment": "ABC", "last_seen": "2019-03-01T12:00:00"}
        assert r.json() == want


def test_invoke_async_with_json_text_and_data_format_json(cluster) -> None:
    """`self.invoke_async(name, dumps(input_data), data_format=DATA_FORMAT.JSON)`: the other
    service gets the JSON parsed, as with self.invoke. Before: it got the text."""
    for n, base in enumerate(urls(cluster), 41):  # one cust_id for each: what the call gave is told apart
        r = requests.post(f"{base}/zato3/lookup-later", json={"cust_id": n})
        assert r.status_code == 200, r.text
        url = f"{base}/zato3/remembered"
        given = wait_for(
            lambda n=n, url=url: (g := requests.get(url).json()["given"]) and str(n) in g and g,
            what="the async service's input",
        )
        assert json.loads(given) == {"cust_id": n}, given


def test_outgoing_rest_as_zatos_example(cluster) -> None:
    zato(
        "conn",
        "create",
        "http-outgoing",
        cluster.path,
        "--name",
        "Billing",
        "--address",
        cluster.lb_url,
        "--url-path",
        "/api/billing/{phone_no}",
    )
    for base in urls(cluster):
        r = requests.get(f"{base}/zato3/billing")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "payload": {"billing": "395.7", "currency": "EUR"},
            "params": {"cust_id": "39175", "priority": "normal", "phone_no": "271637517"},
            "app_name": "Zato",
            "environment": "Production",
        }


def test_a_zato_api_left_out_is_named_and_a_services_own_attribute_of_its_name_works(cluster) -> None:
    """Zato's pub/sub and outgoing SFTP are left out on purpose (docs/zato-compat.md): the
    client's 500 and the server log name the feature, and the service that invoked the one
    that used it. Before: `'PublishOrder' object has no attribute 'pubsub'`, in the log only,
    which reads as a typo in the service. A service's own `self.email` is still its own."""
    cases = (
        ("/zato3/publish", "self.pubsub: Zato's publish/subscribe"),
        ("/zato3/upload", "self.out.sftp: outgoing SFTP connections"),
        ("/zato3/reports", "self.commands: running shell commands"),
    )
    for path, said in cases:
        r = requests.post(f"{cluster.lb_url}{path}", json={"order_id": 1})
        assert r.status_code == 500, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith(said) and "is not supported by this server" in details, details
    r = requests.post(f"{cluster.lb_url}/zato3/notify", json={"email": "jane@example.com"})
    assert (r.status_code, r.json()) == (200, {"email": "jane@example.com", "has_pubsub": False}), r.text
    r = requests.post(f"{cluster.lb_url}/zato3/notify", json={"email": "jane@example.invalid"})
    assert r.status_code == 500 and "self.pubsub" in r.json()["zato_env"]["details"], r.text
    said = "service zato3.orders.publish (invoked by zato3.crm.customer.notify): self.pubsub:"
    wait_for(lambda: said in cluster.server_logs(), what=said)


def test_zatos_server_cluster_id_and_fs_server_config_are_named_as_left_out(cluster) -> None:
    """Zato's self.server.cluster_id (an id in its own configuration database) and
    self.server.fs_server_config (server.conf, with its passwords) are left out: the client's
    500 and the server log name them. Before: `AttributeError: 'ServerView' object has no
    attribute 'cluster_id'`, which reads as a typo in the service."""
    server_cases = (
        ("cluster_id", "self.server.cluster_id: the cluster's id in Zato's own configuration database"),
        ("fs_server_config", "self.server.fs_server_config: the server's own configuration"),
    )
    for what, said in server_cases:
        r = requests.post(f"{cluster.lb_url}/zato3/server-config", json={"what": what})
        assert r.status_code == 500, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith(said) and "is not supported by this server" in details, details
    said = "service zato3.api.server-config: self.server.fs_server_config:"
    wait_for(lambda: said in cluster.server_logs(), what=said)


def test_a_name_alone_is_text_as_zatos_default_simple_io_type(cluster) -> None:
    """Zato's SimpleIO docs: "Unless it is overridden, the data type of an SIO element implicitly
    defaults to Text", which "converts input data to a Python string". A phone number sent as a
    JSON number is text to the service (`.startswith`, `'phone:' + ...`); names that type
    themselves (`is_*`, `*_id`) and objects, lists and true/false are as before. Before: the
    service's 500, `AttributeError: 'int' object has no attribute 'startswith'`."""
    body = {"phone_no": 48600123456, "country": "PL", "nick": 7.5, "is_vip": "true", "account_id": "12"}
    for base in urls(cluster):
        r = requests.post(f"{base}/zato3/phone", json={**body, "tags": ["a", 1]})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "phone_no": "48600123456",
            "is_domestic": True,
            "key": "phone:48600123456",
            "types": {
                "phone_no": "str",
                "country": "str",
                "nick": "str",
                "is_vip": "bool",
                "account_id": "int",
                "tags": "list",
            },
        }


def test_output_objects_are_read_by_attribute_properties_too(cluster) -> None:
    """Zato's response docs: SimpleIO serializes "dicts or SQLAlchemy objects", reading each
    declared output from the object by name, so a computed property (`full_name`) and a class
    attribute count. Before: only the instance's own __dict__ was read, and the service
    answered 500, `service zato3.crm.customer.list did not produce required output: full_name`."""
    for base in urls(cluster):
        r = requests.get(f"{base}/zato3/customers")
        assert r.status_code == 200, r.text
        assert r.json() == [
            {"cust_id": 1, "full_name": "Jane Doe", "segment": "retail"},
            {"cust_id": 2, "full_name": "John Roe", "segment": "retail"},
        ]
        r = requests.get(f"{base}/zato3/customer-records/7")
        assert r.status_code == 200, r.text
        assert r.json() == {"cust_id": 7, "full_name": "Jane Doe", "segment": "retail"}


def test_a_text_channel_gives_the_body_as_text_also_when_labelled_a_form(cluster) -> None:
    """Zato's "Other data formats" chapter: `curl .../other-example.my-service -d @data.csv` to a
    channel without a data format, and the service splits `self.request.payload`, the text.
    curl -d labels the body `application/x-www-form-urlencoded`. Before: a text channel parsed
    such a body as a form, the service got a dict and answered 500, `AttributeError: 'dict'
    object has no attribute 'split'`. A JSON channel still reads a form's fields."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for base in urls(cluster):
        r = requests.post(f"{base}/zato3/csv-import", data="q,w,e;r,t,y;u,i,o;", headers=form)
        assert r.status_code == 200, r.text
        assert r.text == "rows=3, first=q|w|e"
        assert r.headers["Content-Type"].startswith("text/plain")
    assert "Got elements: ['u', 'i', 'o']" in cluster.server_logs()


def test_a_date_input_takes_a_browsers_date_and_time(cluster) -> None:
    """Zato's Date "converts input data to a datetime.date instance"; a browser's date picker
    sent through JavaScript's toISOString() is "1990-05-01T00:00:00.000Z". Before: a 400,
    `invalid input birth_date: '1990-05-01T00:00:00.000Z' is not a date (YYYY-MM-DD)`."""
    for base in urls(cluster):
        for sent in ("1990-05-01T00:00:00.000Z", "1990-05-01", "1990-05-01T22:30:00+02:00"):
            r = requests.post(f"{base}/zato3/register", json={"cust_name": "Jane", "birth_date": sent})
            assert r.status_code == 200, r.text
            assert r.json() == {"cust_name": "Jane", "birth_date": "1990-05-01", "weekday": "Tuesday"}
        r = requests.post(f"{base}/zato3/register", json={"cust_name": "Jane", "birth_date": "1990-05-32"})
        assert r.status_code == 400, r.text
        assert (
            r.json()["zato_env"]["details"]
            == "invalid input birth_date: '1990-05-32' is not a date (YYYY-MM-DD)"
        )


def test_request_headers_are_found_whatever_their_case(cluster) -> None:
    """HTTP header names are case-insensitive (RFC 9110 5.1); a webhook service reads them as its
    sender's docs spell them (`headers['X-GitHub-Delivery']`, `headers.get('content-type')`).
    Before: only the Title-Case form was found, so `.get('x-github-event')` was None and
    `['X-GitHub-Delivery']` the service's 500, `KeyError: 'X-GitHub-Delivery'`."""
    sent = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78",
        "X-Hub-Signature-256": "sha256=ab",
    }
    for base in urls(cluster):
        r = requests.post(f"{base}/zato3/hooks/github", json={"ref": "refs/heads/main"}, headers=sent)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "event": "push",
            "delivery": "72d3162e-cc78",
            "has_signature": True,
            "content_type": "application/json",
            "missing": "none",
        }


def test_zato_hot_deploy_folders(cluster) -> None:
    """Zato's hot-deployment docs: `cp *.py /path/to/server/pickup/incoming/services/`; Zato
    3.2 took user config from `pickup/incoming/user-conf/`. A new server has both folders, and a
    file copied there is deployed to the cluster and moved to the folder's processed/. Before:
    neither folder was read, and the module was never deployed (nothing said why)."""
    server = cluster.server_dir("server1")
    folders = {sub: os.path.join(server, "pickup", "incoming", sub) for sub in ("services", "user-conf")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)  # as a user who follows Zato's docs would
    written = os.path.join(folders["user-conf"], ".hot_deploy_crm.ini.tmp")
    with open(written, "w") as f:
        f.write("[crm]\naddress = https://crm.example.com\ntimeout = 15\n")
    os.rename(written, os.path.join(folders["user-conf"], "hot_deploy_crm.ini"))
    drop_in(cluster, folders["services"], "zato_hot_deploy.py")
    channel(cluster, "/zato3/hot-deploy", "zato3.hot-deploy.where")
    for base in urls(cluster):
        r = wait_for(
            lambda b=base: ok(requests.get(f"{b}/zato3/hot-deploy")), what="the hot-deployed service"
        )
        assert r.json() == {"address": "https://crm.example.com", "timeout": 15}
    for sub, name in (("services", "zato_hot_deploy.py"), ("user-conf", "hot_deploy_crm.ini")):
        assert os.listdir(os.path.join(folders[sub], "processed")) == [name]
        assert not os.path.exists(os.path.join(folders[sub], name))
    for folder in folders.values():  # made with the server, owner-only (os.makedirs above found them)
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder


def test_zato20_pickup_dir(cluster) -> None:
    """Zato 2.0's docs hot-deploy with `cp my_service.py ~/zato/server1/pickup-dir/`. A new
    server has that folder (owner-only), read as pickup/ is. Before: it was not read, and the
    module was never deployed (nothing said why)."""
    folder = os.path.join(cluster.server_dir("server1"), "pickup-dir")
    os.makedirs(folder, exist_ok=True)  # as a user who follows Zato 2.0's docs would
    drop_in(cluster, folder, "zato20_pickup_dir.py")
    channel(cluster, "/zato20/greet", "zato20.pickup-dir.greet")
    for base in urls(cluster):
        r = wait_for(lambda b=base: ok(requests.get(f"{b}/zato20/greet?name=Jane")), what="the greet service")
        assert r.json() == {"greeting": "Hello, Jane"}
    assert os.listdir(os.path.join(folder, "processed")) == ["zato20_pickup_dir.py"]
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def drop_in(cluster, folder: str, name: str) -> None:  # noqa: ANN001
    """Corpus module `name` copied into a hot-deploy `folder` as a user would (written beside
    it, then renamed in), and deployed by the server."""
    module = os.path.join(folder, name)
    shutil.copy(os.path.join(CORPUS, name), module + ".tmp")
    os.rename(module + ".tmp", module)
    said = f"pickup: {name}: deployed"
    wait_for(lambda: said in cluster.server_logs(), timeout=60, what=f"{name} deployed from {folder}")


def ok(r: requests.Response) -> requests.Response | None:
    return r if r.status_code == 200 else None
