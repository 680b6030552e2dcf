"""The edge with a real HAProxy and a real server: body limits (413 before reading, chunked
counted), slow bodies (408), header limits (count and size: 431, request line: 414), client
disconnects (one warning line, no service call), /zato/internal/ refused on the public port,
admin brute force throttled (with Retry-After), admin access through the LB turned off,
malformed chunked bodies (400, one warning line), what body refusals count in /metrics."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import textwrap
import threading

import pytest
import requests

from tests.support import signed_headers, wait_for, zato

MAX_BODY = 1000
MAX_HEADER_SIZE = 1024  # [limits] max_header_size: bytes of one header line
MAX_REQUEST_LINE = 512  # [limits] max_request_line: bytes of "GET /path?query HTTP/1.1"
MAX_FORM_FIELDS = 20  # [limits] max_form_fields
SERVICE = """
from zato.service import Service

class Count(Service):
    name = "edge.count"

    def handle(self):
        self.logger.info("edge.count called with %d bytes", len(self.request.raw or b""))
        self.response.payload = {"size": len(self.request.raw or b"")}


class FormFields(Service):
    name = "edge.form-fields"

    def handle(self):
        self.response.payload = {"fields": len(self.request.http.POST)}
        self.logger.info("edge.form-fields read the form")
"""


@pytest.fixture(scope="module")
def qs(module_quickstart, tmp_path_factory):
    limits = {
        "max_body": MAX_BODY,
        "body_timeout": "1.5",
        "max_headers": 30,
        "max_header_size": MAX_HEADER_SIZE,
        "max_request_line": MAX_REQUEST_LINE,
        "max_form_fields": MAX_FORM_FIELDS,
    }
    cluster = module_quickstart(servers=1, extra_conf={"limits": limits, "main": {"drain_seconds": "0.2"}})
    cluster.start()
    module = tmp_path_factory.mktemp("mod") / "edge_api.py"
    module.write_text(SERVICE)
    zato("deploy", cluster.path, str(module))
    channel = ["--name", "count", "--url-path", "/count", "--service", "edge.count", "--data-format", "text"]
    zato("channel", "create", cluster.path, *channel)
    small = ["--name", "small", "--url-path", "/small", "--service", "edge.count", "--max-body", "100"]
    zato("channel", "create", cluster.path, *small, "--data-format", "text")
    form = ["--name", "form", "--url-path", "/form", "--service", "edge.form-fields", "--data-format", "json"]
    zato("channel", "create", cluster.path, *form)
    zato("conn", "create", "security", cluster.path, "--name", "edge-users", "--type", "basic_auth",
         "--username", "edge", "--password", "-", input="edge-pw-1234\n")  # fmt: skip
    secured = [
        "--name",
        "secured",
        "--url-path",
        "/secured",
        "--service",
        "edge.count",
        "--security",
        "edge-users",
    ]
    zato("channel", "create", cluster.path, *secured)
    wait_for(lambda: requests.post(cluster.server_url("server1") + "/count", timeout=5).ok, 20, what="/count")
    return cluster


def server_log(qs) -> str:
    with open(os.path.join(qs.server_dir("server1"), "logs", "server.log")) as f:
        return f.read()


def calls(qs) -> int:
    return server_log(qs).count("edge.count called")


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall(textwrap.dedent(head).replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_body_over_the_limit_is_refused_from_content_length_before_it_is_read(qs):
    head = f"""\
        POST /count HTTP/1.1
        Host: x
        Content-Type: application/json
        Content-Length: {50 * 1024 * 1024}
        """
    before = calls(qs)
    with raw_request(qs.server_url("server1"), head) as sock:  # not a byte of the body is sent
        answer = read_all(sock)  # answered before a byte of the body; closed after 1 s without one
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"result": "ZATO_ERROR"' in answer and b"over the limit of 1000 bytes" in answer
    assert calls(qs) == before


def test_a_client_that_waits_for_100_continue_gets_its_413_without_sending_the_body(qs):
    """Expect: 100-continue with a Content-Length over the limit, to a server's own port: gunicorn
    writes its 100 Continue before the application sees the request (no setting or documented
    hook stops it), and the 413 follows at once, decided from Content-Length: a client that
    reads on after the 100 (as curl does) sends no byte of its body (curl: 0 of 200 MB)."""
    head = f"""\
        POST /count HTTP/1.1
        Host: x
        Expect: 100-continue
        Content-Type: application/json
        Content-Length: {50 * 1024 * 1024}
        """
    before = calls(qs)
    with raw_request(qs.server_url("server1"), head) as sock:  # not a byte of the body is sent
        answer = read_all(sock)
    final = answer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert final.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"over the limit of 1000 bytes" in final
    assert calls(qs) == before


def test_a_large_body_over_the_limit_gets_its_413_through_the_lb_and_directly(qs):
    """A client that sends its whole body without waiting (no Expect: 100-continue, as
    requests does) still reads the 413: the server reads and drops the rest after answering,
    instead of closing on unread data (which the kernel answers with a reset that can take
    the answer with it, in HAProxy or in the client)."""
    body = b"b" * (8 * 1024 * 1024)
    for url in (qs.lb_url + "/count", qs.server_url("server1") + "/count"):
        for _ in range(3):
            answer = requests.post(url, data=body, timeout=30)
            assert answer.status_code == 413, (url, answer.status_code, answer.text[:200])
            assert "over the limit of 1000 bytes" in answer.json()["zato_env"]["details"]


def test_chunked_body_is_counted_while_read_and_a_small_one_passes(qs):
    url = qs.server_url("server1") + "/count"
    big = requests.post(url, data=iter([b"x" * 600, b"y" * 600]), timeout=10)  # chunked, 1200 bytes
    assert big.status_code == 413 and big.json()["zato_env"]["result"] == "ZATO_ERROR"
    small = requests.post(url, data=iter([b"x" * 300, b"y" * 300]), timeout=10)
    assert small.status_code == 200 and small.json() == {"size": 600}
    through_lb = requests.post(qs.lb_url + "/count", data=b"z" * (MAX_BODY + 1), timeout=10)
    assert through_lb.status_code == 413


def test_a_body_of_tiny_chunks_shares_the_worker_and_is_timed_out(qs):
    """3 MB sent as 1-byte chunks (18 MB on the wire) to the server's own port: gunicorn
    decodes chunks without waiting on the socket while the client keeps up. Before, that held
    the (only) worker for seconds: a ping sent meanwhile was answered after the upload, and
    body_timeout (1.5 s here) never fired. Now the worker takes turns between reads: the ping
    is answered first, and the upload gets its 408."""
    zato("channel", "create", qs.path, "--name", "big", "--url-path", "/big", "--service", "edge.count",
         "--data-format", "text", "--max-body", "4000000")  # fmt: skip
    host, port = "127.0.0.1", int(qs.server_url("server1").rsplit(":", 1)[1])
    wait_for(lambda: requests.post(f"http://{host}:{port}/big", data=b"b", timeout=5).ok, 20, what="/big")
    answered: list[str] = []
    upload: dict = {}
    sending = threading.Event()
    # The ping's connection is made before the upload, so its request reaches the server in
    # one send once the upload is under way (a loaded machine took over body_timeout to make a
    # new connection through requests: the 408 came first, and the run proved nothing).
    ping = socket.create_connection((host, port), timeout=30)

    def send_tiny_chunks() -> None:
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            s.sendall(b"1\r\nX\r\n" * 1000)
            sending.set()  # the server reads the body: its body_timeout runs from now
            piece = b"1\r\nX\r\n" * 100_000
            try:
                for _ in range(30):
                    s.sendall(piece)
                s.sendall(b"0\r\n\r\n")
            except OSError:  # the server answered 408 and closed while we sent
                pass
            upload["answer"] = s.recv(200)
            answered.append("upload")

    sender = threading.Thread(target=send_tiny_chunks)
    try:
        sender.start()
        assert sending.wait(10)
        ping.sendall(b"GET /zato/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ping.recv(200).startswith(b"HTTP/1.1 200")
        answered.append("ping")
        sender.join(60)
        assert answered == ["ping", "upload"]
        assert upload["answer"].startswith(b"HTTP/1.1 408")
    finally:
        ping.close()
        sender.join(60)
        zato("channel", "delete", qs.path, "--name", "big")


def test_a_channel_limit_replaces_the_servers(qs):
    url = qs.server_url("server1") + "/small"
    wait_for(lambda: requests.post(url, data=b"s" * 100, timeout=5).status_code == 200, 20, what="/small")
    over = requests.post(url, data=b"s" * 101, timeout=10)
    assert over.status_code == 413 and "over the limit of 100 bytes" in over.json()["zato_env"]["details"]
    listed = requests.get(qs.server_url("server1") + "/zato/admin/channels", auth=qs.admin_auth, timeout=10)
    limits = {c["name"]: c["max_body"] for c in listed.json()["channels"]}
    assert limits == {"count": None, "small": 100, "form": None, "secured": None}


@pytest.mark.parametrize("size", [2**31, 2**70])
def test_a_channel_limit_the_odb_cannot_hold_is_refused_with_400_and_one_cli_line(qs, size):
    """Before, 2**70 reached SQLite: the admin API answered 500 "internal server error" and the
    CLI printed a 60-line OverflowError traceback (PostgreSQL's INTEGER overflowed from 2**31)."""
    body = {"name": "huge", "url_path": "/huge", "service": "edge.count", "max_body": size}
    answer = requests.post(
        qs.server_url("server1") + "/zato/admin/channels", json=body, auth=qs.admin_auth, timeout=10
    )
    said = f"channel max_body {size} is over 2147483647 bytes (2 GiB), the most a channel can have"
    assert (answer.status_code, answer.json()["zato_env"]["details"]) == (400, said)
    args = ["--name", "huge", "--url-path", "/huge", "--service", "edge.count", "--max-body", str(size)]
    cli = zato("channel", "create", qs.path, *args, check=False)
    assert (cli.returncode, cli.stderr.strip()) == (1, f"zato: error: {said}")
    listed = requests.get(qs.server_url("server1") + "/zato/admin/channels", auth=qs.admin_auth, timeout=10)
    assert "huge" not in {c["name"] for c in listed.json()["channels"]}


def test_a_form_of_too_many_fields_is_refused_with_400_before_the_service(qs):
    """Before, any number of fields within max_body was parsed: 4 MiB of `a&a&...` cost a
    worker 1.3 s of CPU and 170 MB."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    fits = "&".join(f"f{i}=v" for i in range(MAX_FORM_FIELDS)).encode()
    r = requests.post(qs.lb_url + "/count", data=fits, headers=form, timeout=5)
    assert r.status_code == 200 and r.json()["size"] == len(fits)
    over = fits + b"&one=more"
    for url in (qs.lb_url, qs.server_url("server1")):
        r = requests.post(url + "/count", data=over, headers=form, timeout=5)
        assert r.status_code == 400, r.text
        details = r.json()["zato_env"]["details"]
        assert f"more than {MAX_FORM_FIELDS} fields ([limits] max_form_fields)" in details
    assert server_log(qs).count(f"edge.count called with {len(over)} bytes") == 0


def test_a_service_reading_the_form_of_a_json_body_gets_the_same_field_limit(qs):
    """On a JSON channel a body that opens with { is JSON even when labelled a form, so the
    channel does not parse it as a form; self.request.http.POST then did, without the limit."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    fits = json.dumps({"a": "&".join(f"f{i}" for i in range(MAX_FORM_FIELDS))}).encode()  # split at each &
    r = requests.post(qs.server_url("server1") + "/form", data=fits, headers=form, timeout=5)
    assert r.status_code == 200 and r.json() == {"fields": MAX_FORM_FIELDS}, r.text
    over = json.dumps({"a": "&".join(f"f{i}" for i in range(MAX_FORM_FIELDS + 1))}).encode()
    before = server_log(qs).count("edge.form-fields read the form")
    for url in (qs.lb_url, qs.server_url("server1")):
        r = requests.post(url + "/form", data=over, headers=form, timeout=5)
        assert r.status_code == 400, r.text
        details = r.json()["zato_env"]["details"]
        assert f"more than {MAX_FORM_FIELDS} fields ([limits] max_form_fields)" in details
    assert server_log(qs).count("edge.form-fields read the form") == before


def test_a_form_is_a_form_whatever_the_case_of_its_content_type(qs):
    """Media types are case-insensitive (RFC 9110 8.3.1). Before, a form sent as
    `Application/x-www-form-urlencoded` was parsed as JSON: a 400 'malformed JSON in the
    request body', and self.request.http.POST was empty."""
    for ctype in ("Application/X-WWW-Form-Urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED; Charset=UTF-8"):
        for url in (qs.lb_url, qs.server_url("server1")):
            r = requests.post(url + "/form", data=b"a=1&b=2", headers={"Content-Type": ctype}, timeout=5)
            assert (r.status_code, r.json()) == (200, {"fields": 2}), (ctype, url, r.text)


def test_a_slow_body_times_out_with_408(qs):
    head = """\
        POST /count HTTP/1.1
        Host: x
        Content-Length: 500
        """
    with raw_request(qs.server_url("server1"), head, b"only ten b") as sock:
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 1.5 s" in answer


def test_a_slow_body_408_says_connection_close_as_the_connection_is_closed(qs):
    """Before: the 408 said `Connection: keep-alive`, then the server closed the connection."""
    head = """\
        POST /count HTTP/1.1
        Host: x
        Content-Length: 500
        """
    with raw_request(qs.server_url("server1"), head, b"only ten b") as sock:
        answer = read_all(sock)  # read to EOF: the server did close it
    head_lines = answer.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert head_lines[0].startswith(b"http/1.1 408 ")
    assert b"connection: close" in head_lines and b"connection: keep-alive" not in head_lines


def metric(qs, name: str, **labels: str) -> float:
    """A sample of the server's /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(qs.server_url("server1") + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


MALFORMED = {  # body -> what the 400 says after "malformed chunked body: "
    b"zz\r\n{}\r\n0\r\n\r\n": "Invalid chunk size",
    b"2\r\n{}XX0\r\n\r\n": "Invalid chunk terminator",
}


def test_a_malformed_chunked_body_is_a_400_in_zato_envelope_with_one_warning_line(qs):
    """Before: a 500 'internal server error' and an ERROR with a 30-line InvalidChunkSize
    traceback in server.log for every such request, on any path, without credentials."""
    auth = base64.b64encode(b"edge:edge-pw-1234").decode()
    admin = base64.b64encode(":".join(qs.admin_auth).encode()).decode()
    heads = {
        "/count": "",
        "/secured": f"Authorization: Basic {auth}\n",
        "/zato/admin/channels": f"Authorization: Basic {admin}\n",
        "/zato/internal/invoke/edge.count": "X-Zato-Epoch: 1000000000\n",  # no signature
    }
    log_before = server_log(qs)
    before = calls(qs)
    count_before = metric(
        qs, "zato_rest_channel_requests_total", channel="count", method="POST", status="400"
    )
    answers = 0
    for _ in range(3):
        for path, extra in heads.items():
            for body, said in MALFORMED.items():
                head = f"POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\n{extra}"
                head += "Transfer-Encoding: chunked\n"
                with raw_request(qs.server_url("server1"), head, body) as sock:
                    answer = read_all(sock)
                status_line, _, rest = answer.partition(b"\r\n")
                assert status_line.startswith(b"HTTP/1.1 400 "), (path, answer[:300])
                assert b"\r\nconnection: close\r\n" in rest.lower(), path
                env = json.loads(rest.partition(b"\r\n\r\n")[2])["zato_env"]
                assert env["result"] == "ZATO_ERROR", path
                assert env["details"].startswith(f"malformed chunked body: {said}"), (path, env)
                answers += 1
    assert calls(qs) == before
    log = server_log(qs)[len(log_before) :]
    assert "Traceback" not in log and "InvalidChunkSize" not in log and "internal server error" not in log
    warnings = [line for line in log.splitlines() if "answered 400: malformed chunked body" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], warnings  # one a minute at most
    access = open(os.path.join(qs.server_dir("server1"), "logs", "http_access.log")).read()
    assert access.count('"POST /count HTTP/1.1" 400 ') >= 6
    after = metric(qs, "zato_rest_channel_requests_total", channel="count", method="POST", status="400")
    assert after == count_before + 6


def test_a_body_in_a_transfer_coding_the_server_does_not_decode_is_a_501_and_runs_nothing(qs):
    """gunicorn takes `Transfer-Encoding: gzip, chunked` (deflate, compress) and undoes only
    the chunked framing: before, the service ran with the body still gzip-compressed (a JSON
    channel: 400 malformed JSON). RFC 9112: a transfer coding the server does not understand
    is a 501. The LB refuses such requests itself (HAProxy's 422); this is the server's port."""
    compressed = gzip.compress(b'{"hello": "world"}')
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(compressed), compressed)
    large = os.urandom(2_000_000)  # more than the sockets hold: read and dropped after the 501
    large_body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(large), large)
    before = calls(qs)
    for coding in ("gzip", "deflate", "compress", "GZip"):
        head = f"POST /count HTTP/1.1\nHost: x\nTransfer-Encoding: {coding}, chunked\n"
        with raw_request(qs.server_url("server1"), head, large_body if coding == "gzip" else body) as sock:
            answer = read_all(sock)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 501 "), (coding, answer[:300])
        assert b"\r\nconnection: close\r\n" in rest.lower(), coding
        env = json.loads(rest.partition(b"\r\n\r\n")[2])["zato_env"]
        assert env["details"] == (
            f"transfer coding {coding.lower()!r} is not supported: send the body with"
            " Transfer-Encoding: chunked alone (a compressed body with Content-Encoding)"
        ), env
    assert calls(qs) == before
    # chunked alone is read as before (identity, a no-op, too)
    for te in ("chunked", "identity, chunked"):
        head = f"POST /count HTTP/1.1\nHost: x\nTransfer-Encoding: {te}\nConnection: close\n"
        with raw_request(qs.server_url("server1"), head, b"2\r\nab\r\n0\r\n\r\n") as sock:
            answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"size": 2}'), (te, answer)


def test_body_refusals_on_a_channel_are_counted_with_their_status(qs):
    """Before: 413 and 408 on a channel were in http_access.log but not in
    zato_rest_channel_requests_total."""

    def count(status: str) -> float:
        return metric(qs, "zato_rest_channel_requests_total", channel="count", method="POST", status=status)

    before = {status: count(status) for status in ("413", "408")}
    assert requests.post(qs.server_url("server1") + "/count", data=b"b" * 2000, timeout=10).status_code == 413
    with raw_request(
        qs.server_url("server1"), "POST /count HTTP/1.1\nHost: x\nContent-Length: 50\n", b"a"
    ) as s:
        assert read_all(s).startswith(b"HTTP/1.1 408 ")
    assert count("413") == before["413"] + 1
    assert count("408") == before["408"] + 1


def test_a_slow_request_head_is_dropped_by_the_server_too(qs):
    sock = raw_request(qs.server_url("server1"), "GET /count HTTP/1.1\nX-Slow: a", timeout=0.5)
    with sock:
        for _ in range(40):  # a byte every 0.5 s, for at most 20 s
            try:
                sock.send(b"a")
                assert sock.recv(100) == b""  # closed by the server, without an answer
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the server kept a slow request head open for 20 s")


def test_too_many_headers_are_refused(qs):
    before = calls(qs)
    headers = {f"X-Extra-{i}": "1" for i in range(40)}
    resp = requests.post(qs.server_url("server1") + "/count", headers=headers, timeout=10)
    assert resp.status_code == 431  # Request Header Fields Too Large, from gunicorn
    assert calls(qs) == before


def test_a_request_line_over_the_limit_is_refused_with_414(qs):
    before = calls(qs)
    for base in (qs.server_url("server1"), qs.lb_url):
        fits = requests.post(f"{base}/count?q={'a' * (MAX_REQUEST_LINE - 100)}", timeout=10)
        assert fits.status_code == 200, fits.text
        over = requests.post(f"{base}/count?q={'a' * MAX_REQUEST_LINE}", timeout=10)
        assert over.status_code == 414, over.text  # URI Too Long, from gunicorn
    assert calls(qs) == before + 2  # only the two that fit reached the service


def test_a_header_over_the_size_limit_is_refused_with_431(qs):
    before = calls(qs)
    for base in (qs.server_url("server1"), qs.lb_url):
        fits = requests.post(f"{base}/count", headers={"X-Big": "b" * (MAX_HEADER_SIZE - 100)}, timeout=10)
        assert fits.status_code == 200, fits.text
        over = requests.post(f"{base}/count", headers={"X-Big": "b" * MAX_HEADER_SIZE}, timeout=10)
        assert over.status_code == 431, over.text  # Request Header Fields Too Large, from gunicorn
    assert calls(qs) == before + 2


def test_client_gone_mid_body_is_one_warning_line_and_no_service_call(qs):
    head = """\
        POST /count HTTP/1.1
        Host: x
        Content-Length: 900
        """
    before = calls(qs)
    sock = raw_request(qs.server_url("server1"), head, b"a" * 100)
    sock.close()  # gone after 100 of 900 bytes
    wait_for(lambda: "client went away during POST /count" in server_log(qs), 10, what="the warning")
    log = server_log(qs)
    lines = [ln for ln in log.splitlines() if "client went away" in ln]
    assert len(lines) == 1 and "WARNING" in lines[0] and " cid K" in lines[0]
    assert metric(qs, "zato_server_clients_gone_total") == 1
    assert "Traceback" not in log and "unexpected error" not in log
    assert calls(qs) == before


def test_admin_bodies_are_read_within_the_same_limits(qs):
    auth = base64.b64encode(":".join(qs.admin_auth).encode()).decode()
    head = f"""\
        POST /zato/admin/channels HTTP/1.1
        Host: x
        Authorization: Basic {auth}
        Content-Type: application/json
        Content-Length: 900
        """
    gone = metric(qs, "zato_server_clients_gone_total")
    raw_request(qs.server_url("server1"), head, b"{" * 100).close()
    # counted; its warning line may be left for later (one a minute at most: test_hostile_clients.py)
    wait_for(lambda: metric(qs, "zato_server_clients_gone_total") == gone + 1, 10, what="the count")
    assert "Traceback" not in server_log(qs)
    url = qs.server_url("server1") + "/zato/admin/channels"
    over = requests.post(url, auth=qs.admin_auth, data=b"{" * (MAX_BODY + 1), timeout=10)
    assert over.status_code == 413 and over.json()["zato_env"]["result"] == "ZATO_ERROR"


def test_internal_path_is_refused_on_the_public_port_and_served_by_the_servers(qs):
    body = b"{}"
    epoch = 10**9  # far ahead: the server accepts it (the test only needs a valid signature)
    headers = {
        **signed_headers(qs.cluster_secret, epoch, "zato.ping", body),
        "Content-Type": "application/json",
    }
    paths = (
        "/zato/internal/invoke/zato.ping",
        "/zato/%69nternal/invoke/zato.ping",
        "/zato/internal",
        "/zato/internal/invoke-many/zato.ping",  # several invocations in one call
    )
    for path in paths:
        resp = requests.post(qs.lb_url + path, data=body, headers=headers, timeout=10)
        assert resp.status_code == 403, path
        env = resp.json()["zato_env"]
        assert env["result"] == "ZATO_ERROR" and resp.headers["X-Zato-CID"] == env["cid"]
    direct = requests.post(
        qs.server_url("server1") + "/zato/internal/invoke/zato.ping", data=body, headers=headers, timeout=10
    )
    assert direct.status_code == 200


def _admin(qs, password: str) -> requests.Response:
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return requests.get(
        qs.lb_url + "/zato/admin/services", headers={"Authorization": "Basic " + token}, timeout=10
    )


def test_a_burst_of_wrong_admin_passwords_is_throttled(qs):
    user, password = qs.admin_auth
    assert _admin(qs, password).status_code == 200
    codes = [_admin(qs, "wrong-password").status_code for _ in range(15)]
    assert codes[:10] == [401] * 10  # [admin] max_failures (10 a minute) are answered ...
    assert set(codes[10:]) == {429}  # ... then this address is refused
    refused = _admin(qs, password)
    assert refused.status_code == 429 and "too many failed admin logins" in refused.text
    # seconds until the rate of failures (a 60 s sliding window) is certainly under the limit
    assert 60 < int(refused.headers["Retry-After"]) <= 121, refused.headers
    assert requests.get(qs.server_url("server1") + "/zato/admin/services", auth=qs.admin_auth, timeout=10).ok


def test_admin_through_the_lb_can_be_turned_off(qs):
    qs._merge(os.path.join(qs.lb_dir, "config", "lb.conf"), "admin", {"through_lb": "false"})
    qs.kill("load-balancer", signal.SIGHUP)
    wait_for(lambda: requests.get(qs.lb_url + "/zato/admin/services", timeout=5).status_code == 403, 20)
    resp = requests.get(qs.lb_url + "/zato/admin/services", auth=qs.admin_auth, timeout=5)
    assert resp.status_code == 403 and "not served through the load balancer" in resp.text
    # nor is its login, behind a path HAProxy cannot decode (before: 401 or 404 from the admin API)
    token = base64.b64encode(":".join(qs.admin_auth).encode()).decode()
    for path in ("/zato/admin/services%", "/zato/admin/services%zz"):
        head = f"GET {path} HTTP/1.1\nHost: x\nAuthorization: Basic {token}\nConnection: close\n"
        with raw_request(qs.lb_url, head) as sock:
            answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"malformed request path" in answer, answer
    assert requests.get(qs.lb_url + "/zato/ping", timeout=5).ok
