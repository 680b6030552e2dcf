"""What a service sets on self.response reaches the client as one well-formed HTTP answer, or
as a 500 in Zato's envelope naming the service in server.log, never as a broken response that
the load balancer drops or gunicorn answers with its own HTML page. Also: HEAD answers without
a body, JSON bodies with NaN are refused before the service runs, and Unauthorized's challenge
is sent. A real one-server quickstart with its load balancer."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

import pytest
import requests

from tests.support import wait_for

SERVICES = """
from zato.common.exception import Reportable, Unauthorized
from zato.server.service import Service

BAD_VALUES = {"zolw": "\\u017c\\u00f3\\u0142w", "crlf": "a\\r\\nX: y"}


class Framing(Service):
    name = "resp.framing"

    def handle(self):
        self.response.payload = {"ok": True, "text": "more than three bytes"}
        self.response.headers["Content-Length"] = "3"
        self.response.headers["transfer-encoding"] = "chunked"
        self.response.headers["Keep-Alive"] = "timeout=5"
        self.response.headers["X-Kept"] = "yes"


class Csv(Service):
    name = "resp.csv"

    def handle(self):
        self.response.payload = "a,b\\n1,2\\n"
        header = self.request.http.GET.get("header", "Content-Type")
        self.response.headers[header] = "text/csv"


class BadHeader(Service):
    name = "resp.bad-header"

    def handle(self):
        kind = self.request.payload["kind"]
        if kind == "name":
            self.response.headers["X Bad: y"] = "1"
        else:
            self.response.headers["X-Bad"] = BAD_VALUES[kind]
        self.response.payload = {"ok": True}


class Status(Service):
    name = "resp.status"

    def handle(self):
        self.response.status_code = self.request.payload["status"]
        self.response.payload = {"ok": True}


class Ran(Service):
    name = "resp.ran"

    def handle(self):
        self.logger.info("resp.ran ran with %r", self.request.payload)
        self.response.payload = self.request.payload


class WhoAreYou(Service):
    name = "resp.who"

    def handle(self):
        raise Unauthorized(self.cid, "who are you", 'Basic realm="x"')


class SetsCid(Service):
    name = "resp.sets-cid"

    def handle(self):
        self.response.headers["X-Zato-CID"] = "MYOWNCID"
        self.response.payload = {"ok": True}


class Reports(Service):
    name = "resp.reports"

    def handle(self):
        raise Reportable(self.cid, "I am a teapot", self.request.payload["status"])
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    qs = module_quickstart(servers=1)
    qs.start()
    qs.deploy("resp", SERVICES)
    qs.open_channels("resp", ("framing", "csv", "bad-header", "status", "ran", "who", "sets-cid", "reports"))
    wait_for(lambda: requests.get(f"{qs.lb_url}/resp/framing", timeout=5).status_code != 404, what="channels")
    return qs


def _said_once(qs, text: str) -> None:  # noqa: ANN001
    logs = qs.server_logs()
    assert logs.count(text) == 1, f"{text!r} said {logs.count(text)} times"


def test_a_service_content_length_or_other_framing_header_is_dropped_with_one_warning(qs):
    """Before: two Content-Length headers (the service's 3 and the body's); HAProxy refused the
    answer and the client got a 504 'The server handling the request was lost...'."""
    for _ in range(3):
        r = requests.get(f"{qs.lb_url}/resp/framing", timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == {"ok": True, "text": "more than three bytes"}
        assert r.raw.headers.getlist("Content-Length") == [str(len(r.content))]
        assert "Keep-Alive" not in r.headers
        assert r.headers["X-Kept"] == "yes"
    for header in ("Content-Length", "transfer-encoding", "Keep-Alive"):
        _said_once(qs, f"service resp.framing set response header {header}, which the server sets itself")


def test_a_service_content_type_header_wins_whatever_its_case(qs):
    """Before: two Content-Type headers, application/json and text/csv."""
    for header in ("Content-Type", "content-type", "CONTENT-TYPE"):
        r = requests.get(f"{qs.server_url('server1')}/resp/csv", params={"header": header}, timeout=5)
        assert r.status_code == 200, r.text
        assert r.raw.headers.getlist("Content-Type") == ["text/csv"], header
        assert r.text == "a,b\n1,2\n"


def test_a_header_http_cannot_carry_is_the_service_500_in_zato_envelope(qs):
    """Before: gunicorn's own HTML 'Internal Server Error', no X-Zato-CID, and a log saying
    'Response headers already set!' without naming the service."""
    why = {
        "zolw": "response header X-Bad: its value is not latin-1 text",
        "crlf": "response header X-Bad: its value contains a line break",
        "name": "response header 'X Bad: y': the name is not an HTTP header name",
    }
    for kind, said in why.items():
        r = requests.post(f"{qs.server_url('server1')}/resp/bad-header", json={"kind": kind}, timeout=5)
        assert r.status_code == 500, r.text
        env = r.json()["zato_env"]
        cid = env["cid"]
        assert r.headers["X-Zato-CID"] == cid
        assert env["details"] == f"service resp.bad-header failed; see the server log for cid {cid}"
        assert "X: y" not in r.headers and "X Bad: y" not in r.headers
        assert f"cid {cid}: service resp.bad-header set {said}" in qs.server_logs()
    assert "Response headers already set" not in qs.server_logs()


def test_a_lone_surrogate_echoed_back_is_json_in_json_and_text_utf8_cannot_hold_in_text(qs):
    """A client's JSON may hold a \\ud800 escape: half a UTF-16 pair, no character. Echoed back
    inside an object it goes out escaped as it came; as the whole payload (a str, sent as text)
    UTF-8 cannot hold it: the service's 500, and the log says that, not 'not JSON' as before."""
    url = f"{qs.server_url('server1')}/resp/ran"
    inside = requests.post(
        url, data=b'{"a": "\\ud800"}', headers={"Content-Type": "application/json"}, timeout=5
    )
    assert (inside.status_code, inside.content) == (200, b'{"a": "\\ud800"}'), inside.content
    alone = requests.post(url, data=b'"\\ud800"', headers={"Content-Type": "application/json"}, timeout=5)
    assert alone.status_code == 500, alone.text
    cid = alone.json()["zato_env"]["cid"]
    said = [line for line in qs.server_logs().splitlines() if f"cid {cid}: service resp.ran answered" in line]
    assert len(said) == 1 and "answered with text UTF-8 cannot hold (" in said[0], said
    assert "a lone surrogate, such as a JSON \\ud800 escape it was sent, is half a character" in said[0], said


def test_a_status_code_of_digits_is_taken_and_any_other_is_the_service_500(qs):
    """Before: '202' was a 500 logged as 'unexpected error serving /resp/status' with a
    TypeError of the server's own; 42 went out as '42 Unknown'."""
    url = f"{qs.server_url('server1')}/resp/status"
    r = requests.post(url, json={"status": "202"}, timeout=5)
    assert (r.status_code, r.json()) == (202, {"ok": True})
    for bad in (42, 200.5, "abc", True, 600):
        r = requests.post(url, json={"status": bad}, timeout=5)
        assert r.status_code == 500, (bad, r.text)
        cid = r.json()["zato_env"]["cid"]
        assert (
            r.json()["zato_env"]["details"] == f"service resp.status failed; see the server log for cid {cid}"
        )
        said = f"cid {cid}: service resp.status set self.response.status_code to {bad!r}"
        assert said in qs.server_logs(), bad
    assert "unexpected error serving" not in qs.server_logs()


def test_an_informational_status_is_the_service_500_not_a_hung_or_dropped_answer(qs):
    """HTTP sends a 1xx status ahead of an answer, never as one. Before: a service setting
    100 or 103 had gunicorn send `100 Continue` and nothing after it, which HAProxy answered
    with its own HTML 500 (python-requests: `Connection aborted`), and 101 kept the client of
    the load balancer waiting until HAProxy's 504; Reportable with status 100 did the same."""
    for path, how in (
        ("status", "set self.response.status_code to"),
        ("reports", "raised Reportable with status"),
    ):
        for bad in (100, 101, 103, "199"):
            for base in (qs.server_url("server1"), qs.lb_url):
                r = requests.post(f"{base}/resp/{path}", json={"status": bad}, timeout=10)
                assert r.status_code == 500, (bad, r.text)
                cid = r.json()["zato_env"]["cid"]
                said = f"service resp.{path} failed; see the server log for cid {cid}"
                assert r.json()["zato_env"]["details"] == said
                said = f"cid {cid}: service resp.{path} {how} {bad!r}, not a whole number 200-599"
                assert said in qs.server_logs(), (bad, path)


def test_head_sends_no_body_and_gunicorn_warns_of_none(qs):
    """Before: each HEAD made gunicorn log 'WSGI app sent body bytes on a no-body response'."""
    for url in (f"{qs.server_url('server1')}/zato/ping", f"{qs.server_url('server1')}/resp/csv"):
        got, head = requests.get(url, timeout=5), requests.head(url, timeout=5)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["Content-Length"] == str(len(got.content))
        assert head.headers["X-Zato-CID"]
    requests.head(f"{qs.lb_url}/zato/ping", timeout=5)
    assert "body bytes on a no-body response" not in qs.server_logs("*.log")


def test_json_with_nan_or_infinity_is_a_400_before_the_service_runs(qs):
    """Before: the service ran (with its side effects), then the answer was a 500 'Out of
    range float values are not JSON compliant'."""
    for i, constant in enumerate(("NaN", "Infinity", "-Infinity")):
        body = f'{{"run": {i}, "a": {constant}}}'
        r = requests.post(
            f"{qs.server_url('server1')}/resp/ran",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=5,
        )
        assert r.status_code == 400, r.text
        assert r.json()["zato_env"]["details"].startswith("malformed JSON in the request body: "), r.text
        assert constant in r.json()["zato_env"]["details"]
        assert f"resp.ran ran with {{'run': {i}" not in qs.server_logs()


def test_json_with_a_number_out_of_a_doubles_range_is_a_400_before_the_service_runs(qs):
    """1e400 is read as infinity. Before: the service ran (with its side effects), then the
    answer was a 500 'service resp.ran failed', as with NaN before."""
    for i, number in enumerate(("1e400", "-1E+999", "1" + "0" * 400 + ".5")):
        r = requests.post(
            f"{qs.server_url('server1')}/resp/ran",
            data=f'{{"run": "big-{i}", "a": [{number}]}}',
            headers={"Content-Type": "application/json"},
            timeout=5,
        )
        assert r.status_code == 400, r.text
        details = r.json()["zato_env"]["details"]
        assert details.startswith("malformed JSON in the request body: the number "), details
        assert "out of range" in details and len(details) < 200
        assert f"resp.ran ran with {{'run': 'big-{i}'" not in qs.server_logs()
    r = requests.post(f"{qs.server_url('server1')}/resp/ran", json={"run": "max", "a": 1.7e308}, timeout=5)
    assert r.status_code == 200 and r.json() == {"run": "max", "a": 1.7e308}


def test_the_admin_api_refuses_json_with_nan_as_malformed(qs):
    body = '{"name": "nan-ch", "url_path": "/nan", "service": "resp.ran", "is_active": NaN}'
    r = requests.post(
        f"{qs.server_url('server1')}/zato/admin/channels",
        data=body,
        auth=qs.admin_auth,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400, r.text
    assert r.json()["zato_env"]["details"].startswith("malformed JSON in the request body: "), r.text


def test_unauthorized_with_a_challenge_sends_it_as_www_authenticate(qs):
    """Zato's Unauthorized(cid, msg, challenge); before, the 401 had no WWW-Authenticate."""
    r = requests.get(f"{qs.lb_url}/resp/who", timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="x"'
    assert r.json()["zato_env"]["details"] == "who are you"


def test_a_service_x_zato_cid_header_is_dropped_and_the_request_cid_sent_once(qs):
    """Before: two X-Zato-CID headers, the request's and the service's MYOWNCID."""
    for base in (qs.server_url("server1"), qs.lb_url):
        r = requests.get(f"{base}/resp/sets-cid", headers={"X-Zato-CID": ""}, timeout=5)
        assert r.status_code == 200, r.text
        cids = r.raw.headers.getlist("X-Zato-CID")
        assert len(cids) == 1 and cids[0] != "MYOWNCID", cids
    _said_once(qs, "service resp.sets-cid set response header X-Zato-CID, which the server sets itself")


def test_zatos_reportable_answers_with_the_status_it_was_given(qs):
    """Zato's Reportable(cid, msg, status); before, the status was ignored and the answer a 500."""
    url = f"{qs.server_url('server1')}/resp/reports"
    for status in (418, "409", 503):
        r = requests.post(url, json={"status": status}, timeout=5)
        assert r.status_code == int(status), r.text
        assert r.json()["zato_env"]["details"] == "I am a teapot"
        assert r.headers["X-Zato-CID"] == r.json()["zato_env"]["cid"]
    for bad in (42, 600, "abc"):
        r = requests.post(url, json={"status": bad}, timeout=5)
        assert r.status_code == 500, (bad, r.text)
        cid = r.json()["zato_env"]["cid"]
        assert (
            r.json()["zato_env"]["details"]
            == f"service resp.reports failed; see the server log for cid {cid}"
        )
        assert (
            f"cid {cid}: service resp.reports raised Reportable with status {bad!r}, not a whole number"
            in (qs.server_logs())
        )


def test_a_service_own_401_to_a_connector_is_the_call_answer_not_a_refused_call(qs):
    """A service a channel connector invokes that raises Zato's Unauthorized (or sets status
    401) ran: its 401 is the call's failed answer, counted towards parking the message as any
    failure. Before, the connector took it for the server refusing its credentials: it ran the
    service again on every other server, then got NoServer, which gives the message back
    uncounted, so the service ran again and again and the message was never parked."""
    with connector_invoker(qs) as invoker:
        who = invoker.invoke("resp.who", b"{}", "application/json")
        assert (who.status, who.credentials_refused) == (401, False), who
        assert "who are you" in who.text
        status = invoker.invoke("resp.status", b'{"status": 401}', "application/json")
        assert (status.status, status.credentials_refused) == (401, False), status
        assert invoker.invoke("resp.ran", b'{"n": 1}', "application/json").ok


def test_a_service_own_409_to_a_connector_is_the_call_answer_not_a_stale_epoch(qs):
    """A service a channel connector invokes that answers 409 (a Conflict: Reportable or
    self.response.status_code) ran and failed. Before, the connector took it for the server
    refusing its epoch as stale: it stopped as if its lease were lost ('lease lost ... refused
    epoch N as stale'), and the message, given back, stopped the next one too."""
    with connector_invoker(qs) as invoker:
        conflict = invoker.invoke("resp.reports", b'{"status": 409}', "application/json")
        assert (conflict.status, conflict.stale) == (409, False), conflict
        assert "I am a teapot" in conflict.text
        status = invoker.invoke("resp.status", b'{"status": 409}', "application/json")
        assert (status.status, status.stale) == (409, False), status
        # the server's own refusal of an epoch older than the newest is still stale
        with connector_invoker(qs, epoch_offset=-1) as old:
            refused = old.invoke("resp.ran", b'{"n": 2}', "application/json")
        assert (refused.status, refused.stale) == (409, True), refused


def test_a_kept_connection_the_server_closed_as_idle_is_made_again_there_and_runs_once(qs):
    """gunicorn closes a kept connection idle for its keepalive (2 s) while it waits for the next
    request's head, so before it read one: a call sent on it meanwhile (here a connector that
    takes the keepalive for longer) is made again on a new connection to the same server, and
    the service runs once. (An answer that began and was cut is not made again:
    test_invoke_servers.)"""
    mark = uuid.uuid4().hex[:8]
    with connector_invoker(qs) as invoker:
        invoker.keepalive = 60.0  # the connection is reused past the server's keepalive
        assert invoker.invoke("resp.ran", json.dumps({"n": f"{mark}-1"}).encode(), "application/json").ok
        time.sleep(3)  # idle past the server's keepalive: gunicorn closes the connection
        again = invoker.invoke("resp.ran", json.dumps({"n": f"{mark}-2"}).encode(), "application/json")
    assert again.ok, again
    wait_for(lambda: f"{mark}-2" in qs.server_logs(), what="the service's log line")
    _said_once(qs, f"resp.ran ran with {{'n': '{mark}-2'}}")


@contextlib.contextmanager
def connector_invoker(qs, epoch_offset: int = 0):  # noqa: ANN001, ANN201
    """An Invoker as server1's channel connectors have, under the newest epoch (+ offset)."""
    import redis

    from tests.support import REDIS_URL
    from zato.common.signing import epoch_key
    from zato.connector.invoke import Invoker
    from zato.coord.lease import current_epoch
    from zato.coord.signing import member_key

    s = qs.settings("server1")
    client = redis.Redis.from_url(REDIS_URL)
    epoch = current_epoch(client, s.cluster) + epoch_offset
    key, members = epoch_key(s.cluster_secret, epoch), member_key(s.cluster_secret, s.cluster)
    invoker = Invoker(client, s.cluster, key, epoch, members=members)
    try:
        yield invoker
    finally:
        invoker.close()
        client.close()
