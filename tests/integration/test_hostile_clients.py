"""Hostile and broken HTTP clients against a real server's own port: clients that drop their
connections mid-body in a loop, and clients that send requests gunicorn cannot parse in a loop
(each makes a WARNING line once per [logging] client_warning_interval at most per worker, 60 s
by default, the next one saying how many went unsaid: here the interval is INTERVAL, so each
test waits seconds, not a minute); clients that send wrong credentials in a loop (said in full
a few times per interval per kind, counted in /metrics); and, through the LB, requests framed
ambiguously (request smuggling: HAProxy and gunicorn must agree where each request ends)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import time
from datetime import datetime
from itertools import pairwise
from urllib.parse import unquote

import pytest
import requests

from tests.support import wait_for, zato

WORKERS = 1  # one worker: one Throttled, so the lines are known
DROPPED = 2000
INTERVAL = 2.0  # [logging] client_warning_interval of this module's server
SAID = f"(said once every {INTERVAL:g} s at most in each worker; "
# A line's log time is taken just after the throttle let it through, by a worker that may have
# waited for a CPU meanwhile (the log's times are to the millisecond, the throttle's clock is
# monotonic): lines are checked to be INTERVAL apart less this. Unthrottled, they are ms apart.
SLACK = 0.5


@pytest.fixture(scope="module")
def qs(module_quickstart):
    conf = {"logging": {"client_warning_interval": INTERVAL}}
    cluster = module_quickstart(servers=1, workers=WORKERS, extra_conf=conf)
    cluster.start()
    zato(
        "channel", "create", cluster.path, "--name", "hping", "--url-path", "/hping", "--service", "zato.ping"
    )
    url = cluster.server_url("server1") + "/hping"
    zato(
        "channel",
        "create",
        cluster.path,
        "--name",
        "hidden",
        "--url-path",
        "/hidden",
        "--service",
        "zato.ping",
    )
    wait_for(lambda: requests.post(url, json={}, timeout=5).ok, 20, what="/hping")
    return cluster


def server_log(qs) -> str:
    with open(os.path.join(qs.server_dir("server1"), "logs", "server.log")) as f:
        return f.read()


def clients_gone(qs) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(qs.server_url("server1") + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "zato_server_clients_gone_total":
                return sample.value
    return 0.0


def drop_mid_body(port: int, path: str = "/hping") -> None:
    """A POST that announces 900 bytes, sends 100 and closes its socket. The internal path
    reads the body before it checks the signature (signed with it): no credentials needed."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Zato-Epoch: 1\r\nContent-Length: 900\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + b"a" * 100)


def check_throttled(lines: list[str], events: int, last_said: bool) -> None:
    """What `events` requests of one kind left in server.log (`lines`, theirs): WARNING lines
    at least INTERVAL apart (by their own log times: a flood that takes longer than INTERVAL,
    under load, may have more than one), each saying how many went unsaid since the one
    before. Every request is said or counted in the next line: all of them when the last one
    was said (`last_said`)."""
    assert lines and all("WARNING" in ln and SAID in ln for ln in lines), lines[:5]
    times = [datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() for ln in lines]
    assert all(b - a > INTERVAL - SLACK for a, b in pairwise(times)), lines
    counts = [int(re.search(r"; (\d+) more since the last time\)$", ln).group(1)) for ln in lines]
    assert counts[0] == 0, lines
    accounted = len(lines) + sum(counts)
    assert accounted == events if last_said else accounted <= events, lines


def test_clients_dropping_connections_mid_body_in_a_loop_do_not_flood_the_log(qs):
    """Before: one WARNING line per dropped request (2,000 requests, 2,000 lines). Now one line
    per interval at most in the (one) worker, the next one saying how many went unsaid, and
    every one counted in /metrics."""
    port = int(qs.server_url("server1").rsplit(":", 1)[1])
    before = len(server_log(qs))

    def said() -> list[str]:
        return [ln for ln in server_log(qs)[before:].splitlines() if "client went away" in ln]

    for i in range(DROPPED):
        drop_mid_body(port, "/hping" if i % 2 else "/zato/internal/invoke/zato.ping")
    wait_for(lambda: clients_gone(qs) >= DROPPED, 30, what="every dropped request counted")
    assert clients_gone(qs) == DROPPED
    flood = said()
    check_throttled(flood, DROPPED, last_said=False)
    assert requests.post(qs.server_url("server1") + "/hping", json={}, timeout=10).ok
    dropped = DROPPED

    def one_more_said() -> bool:  # a dropped request every 0.2 s until the interval is over
        nonlocal dropped
        drop_mid_body(port)
        dropped += 1
        wait_for(lambda: clients_gone(qs) >= dropped, 30, what="the dropped request counted")
        return len(said()) > len(flood)  # the line is written before the request is counted

    wait_for(one_more_said, 15 * INTERVAL, interval=0.2, what="the next line, an interval later")
    wait_for(lambda: clients_gone(qs) >= dropped, 30, what="every dropped request counted")
    assert clients_gone(qs) == dropped
    lines = said()
    assert len(lines) == len(flood) + 1, lines
    check_throttled(lines, dropped, last_said=True)  # the new one an interval after the flood's last
    assert "Traceback" not in server_log(qs)[before:]


BAD_REQUESTS = [  # what gunicorn refuses before the app sees it, and the status it answers
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /hping HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", b"400"),
    (b"GET /hping?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    (b"GET /hping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", b"431"),
]


def send_bad(port: int, i: int) -> None:
    request, status = BAD_REQUESTS[i % len(BAD_REQUESTS)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = s.recv(100)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer  # still answered


def test_requests_gunicorn_cannot_parse_sent_in_a_loop_do_not_flood_the_log(qs):
    """Before: gunicorn's 'Invalid request from ip=...' WARNING for every one (2,000 requests,
    2,000 lines). Now once per interval at most in the (one) worker, the next one with the count."""
    port = int(qs.server_url("server1").rsplit(":", 1)[1])
    before = len(server_log(qs))

    def said() -> list[str]:
        return [ln for ln in server_log(qs)[before:].splitlines() if "Invalid request from ip=" in ln]

    for i in range(DROPPED):
        send_bad(port, i)
    flood = said()
    check_throttled(flood, DROPPED, last_said=False)
    assert requests.post(qs.server_url("server1") + "/hping", json={}, timeout=10).ok
    sent = DROPPED

    def one_more_said() -> bool:  # a bad request every 0.2 s until the interval is over
        nonlocal sent
        send_bad(port, sent)  # answered: its line, if any, was written before
        sent += 1
        return len(said()) > len(flood)

    wait_for(one_more_said, 15 * INTERVAL, interval=0.2, what="the next line, an interval later")
    lines = said()
    assert len(lines) == len(flood) + 1, lines
    check_throttled(lines, sent, last_said=True)


HIDDEN = b"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /hping HTTP/1.1\r\nHost: x\r\n"
AMBIGUOUS = {  # each with a second request after what one parser or the other may take as its end
    "none (pipelining)": POST + b"Content-Length: 2\r\n\r\n{}" + HIDDEN,  # both answered and run
    "CL then TE": POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "TE then CL": POST + b"Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + HIDDEN,
    "TE chunked, identity": POST
    + b"Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
    + HIDDEN,
    "TE identity, chunked": POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "two TE": POST
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
    + HIDDEN,
    "TE folded": POST + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + HIDDEN,
    "TE after a tab": POST + b"Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + HIDDEN,
    "TE after a VT": POST + b"Transfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + HIDDEN,
    "TE name with a space": POST
    + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
    + HIDDEN,
    "two CL": POST + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}" + HIDDEN,
    "CL list": POST + b"Content-Length: 2, 40\r\n\r\n{}" + HIDDEN,
    "CL +": POST + b"Content-Length: +2\r\n\r\n{}" + HIDDEN,
    "chunk size 0x": POST + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n" + HIDDEN,
    "chunk size overflow": POST
    + b"Transfer-Encoding: chunked\r\n\r\n10000000000000002\r\n{}\r\n0\r\n\r\n"
    + HIDDEN,
    "chunk ext with LF": POST + b"Transfer-Encoding: chunked\r\n\r\n2;x\ny\r\n{}\r\n0\r\n\r\n" + HIDDEN,
    "bare LF chunks": POST + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n" + HIDDEN,
    "bare CR in a header": POST + b"X: a\rTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}" + HIDDEN,
    "bare LF heads": b"POST /hping HTTP/1.1\nHost: x\nContent-Length: 2\nTransfer-Encoding: chunked\n\n"
    + b"0\r\n\r\n"
    + HIDDEN,
    "NUL in a header": POST + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}" + HIDDEN,
    "CL in a trailer": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nContent-Length: 50\r\n\r\n"
    + HIDDEN,
    "chunk size and a space": POST + b"Transfer-Encoding: chunked\r\n\r\n2 \r\n{}\r\n0\r\n\r\n" + HIDDEN,
    "CL leading zeros": POST + b"Content-Length: 0002\r\n\r\n{}" + HIDDEN,
    "a GET's body": b"GET /hping HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(HIDDEN) + HIDDEN,
    "Upgrade: h2c": b"GET /hping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    + b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    + HIDDEN,
    "HTTP/1.0 TE and CL": b"POST /hping HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    + b"Content-Length: 5\r\n\r\n0\r\n\r\n"
    + HIDDEN,
}


def exchange(port: int, data: bytes) -> bytes:
    """What the LB answers to `data`, until it closes (or 3 s of silence)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(data)
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def test_no_request_hides_in_another_through_the_lb(qs):
    """HAProxy in front of gunicorn: for each ambiguous framing, the server runs /hidden only
    when the LB took it as a request of its own (and answered it to the client), never inside
    the first one's body. Checked with HAProxy 2.6 and gunicorn 27 (no change was needed)."""
    port = int(qs.lb_url.rsplit(":", 1)[1])
    access = os.path.join(qs.server_dir("server1"), "logs", "http_access.log")

    def hidden_run() -> int:
        with open(access) as f:
            return f.read().count('"GET /hidden HTTP/1.1" 200 ')

    checked: dict[str, int] = {}
    for name, data in AMBIGUOUS.items():
        ran = hidden_run()
        answer = exchange(port, data)
        answered = answer.count(b'{"pong": "zato"}') - (1 if answer.startswith(b"HTTP/1.1 200 ") else 0)
        # then a request of its own, on a new connection: once it is in the access log, so is
        # any hidden request the server ran before it (one worker, requests in order)
        assert requests.get(qs.lb_url + "/hidden", timeout=10).ok
        wait_for(lambda: hidden_run() >= ran + 1 + answered, 10, what=name)  # noqa: B023
        assert hidden_run() == ran + 1 + answered, (name, answer[:500])
        checked[name] = answered
    assert checked["none (pipelining)"] == 1, checked  # the count is right: a request run is seen


BURST = 5  # zato.server.rejections.BURST: rejections said in full per interval and kind
REJECTED_SAID = f"(said {BURST} times every {INTERVAL:g} s at most in each worker; "
FLOOD = 200  # bad requests of each kind


def rejected_counts(qs) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(qs.server_url("server1") + "/metrics", timeout=10).text
    return {
        s.labels["kind"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "zato_server_rejected_credentials_total"
    }


def check_rejections_said(lines: list[str], events: int) -> None:
    """What `events` rejections of one kind left in server.log, the last one said: at most
    BURST lines in any INTERVAL (by their own log times), each saying how many went unsaid
    since the one before, and every rejection said or counted."""
    assert lines and all("WARNING" in ln and REJECTED_SAID in ln for ln in lines), lines[:5]
    times = [datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() for ln in lines]
    assert all(b - a > INTERVAL - SLACK for a, b in zip(times, times[BURST:], strict=False)), lines
    counts = [int(re.search(r"; (\d+) more since the last time\)$", ln).group(1)) for ln in lines]
    assert len(lines) + sum(counts) == events, (len(lines), sum(counts), events)
    assert len(lines) < events, len(lines)  # the flood was not said line by line (the rate: above)


def test_rejected_credentials_sent_in_a_loop_are_said_a_few_times_an_interval_and_counted(qs):
    """Before: a WARNING line per request with wrong credentials (an internal call with a bad
    signature or epoch, the admin API's, the invoke endpoints', a secured channel's Basic
    Auth), so any client of a server's own port could fill its log at request rate, and
    nothing counted them. Now each kind is said in full BURST times per interval at most in
    the (one) worker, with the address and what was wrong; the next line says how many went
    unsaid; zato_server_rejected_credentials_total counts every one."""
    base = qs.server_url("server1")
    admin = requests.Session()
    admin.auth = qs.admin_auth
    sec = {
        "name": "credflood-sec",
        "type": "basic_auth",
        "username": "credflood",
        "password": "pw-credflood-9",
    }
    r = admin.post(f"{base}/zato/admin/conn/security", json=sec, timeout=10)
    assert r.status_code == 201, r.text
    channel = {
        "name": "credflood-ch",
        "url_path": "/credflood",
        "service": "zato.ping",
        "security": "credflood-sec",
    }
    r = admin.post(f"{base}/zato/admin/channels", json=channel, timeout=10)
    assert r.status_code == 201, r.text
    client = requests.Session()
    wait_for(
        lambda: client.get(f"{base}/credflood", auth=("credflood", "pw-credflood-9"), timeout=5).ok,
        20,
        what="/credflood",
    )
    bad_signature = {"X-Zato-Epoch": "1", "X-Zato-Signature": "ab" * 32}
    kinds = {  # kind: (a request with wrong credentials, what its lines say)
        "internal": (
            lambda i: client.post(
                f"{base}/zato/internal/invoke/zato.ping",
                data=b"{}",
                headers=bad_signature if i % 2 else {"X-Zato-Epoch": "soon"},
                timeout=10,
            ),
            "internal invoke of zato.ping refused: bad or missing X-Zato-",
        ),
        "admin": (
            lambda i: client.get(
                f"{base}/zato/admin/channels", auth=(qs.admin_auth[0], f"no-{i}"), timeout=10
            ),
            "admin API: rejected credentials for user ",
        ),
        "invoke": (
            lambda i: client.post(
                f"{base}/zato/api/invoke/zato.ping", auth=("admin.invoke", f"no-{i}"), timeout=10
            ),
            "/zato/api/invoke/zato.ping: rejected credentials for user 'admin.invoke' from 127.0.0.1",
        ),
        "channel": (
            lambda i: client.get(f"{base}/credflood", auth=("credflood", f"no-{i}"), timeout=10),
            "HTTP channel credflood-ch: rejected credentials (user 'credflood') from 127.0.0.1",
        ),
    }
    before = len(server_log(qs))
    counted = rejected_counts(qs)

    def said(what: str) -> list[str]:
        return [ln for ln in server_log(qs)[before:].splitlines() if what in ln]

    started = time.monotonic()
    for i in range(FLOOD):
        for send, _ in kinds.values():
            assert send(i).status_code == 401
    # at most BURST lines an interval while it lasted (each hashes a password: on a loaded
    # machine the flood takes longer, and more lines are its due)
    allowed = BURST * (int((time.monotonic() - started) / INTERVAL) + 2)
    for kind, (send, what) in kinds.items():
        flood = said(what)
        assert len(flood) <= allowed and len(flood) < FLOOD, (kind, len(flood), allowed)

        def one_more_said(send=send, what=what, flood=flood) -> bool:  # every 0.2 s until it is said
            assert send(0).status_code == 401
            return len(said(what)) > len(flood)

        wait_for(one_more_said, 15 * INTERVAL, interval=0.2, what=f"the next {kind} line")
    after = rejected_counts(qs)
    for kind, (_, what) in kinds.items():
        lines = said(what)
        sent = int(after[kind] - counted.get(kind, 0))
        assert sent > FLOOD, (kind, sent)  # every request counted (the flood and what followed)
        check_rejections_said(lines, sent)
    log = server_log(qs)[before:]
    assert "bad or missing X-Zato-Signature for epoch 1 from 127.0.0.1" in log
    assert "bad or missing X-Zato-Epoch from 127.0.0.1" in log
    assert "pw-credflood-9" not in log and qs.admin_auth[1] not in log and "ab" * 32 not in log
    assert "Traceback" not in log


def test_a_number_too_long_to_read_is_a_400_that_says_what_the_client_can_do(qs):
    """Before, the 400 passed on Python's advice to the server's own code ("use
    sys.set_int_max_str_digits() to increase the limit"), which no client can follow."""
    body = b'{"n": ' + b"9" * 5000 + b"}"
    said = (
        "malformed JSON in the request body: a number of 5000 digits"
        " (at most 4300 are read: send a longer one as a string)"
    )
    for url in (
        qs.server_url("server1") + "/hping",
        qs.server_url("server1") + "/zato/admin/channels",
        qs.lb_url + "/hping",
    ):
        answer = requests.post(
            url, data=body, auth=qs.admin_auth, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert (answer.status_code, answer.json()["zato_env"]["details"]) == (400, said), url


BAD_ESCAPES = (  # a path with a % not followed by two hexadecimal digits, and what it reached before
    "/zato/internal/invoke/zato.ping%",  # the internal endpoint (401: bad or missing X-Zato-Epoch)
    "/zato/%69nternal/invoke/zato.ping%zz",  # the same
    "/zato/admin/services%",  # the admin API's login (401), with [admin] through_lb = false too
    "/zato/api/invoke/zato.ping%4",  # Zato's invoke endpoint's login (401)
    "/hping%g0",  # a channel (404: no channel serves it)
)


def as_sent(
    base: str, method: str, path: str, auth: tuple[str, str] | None = None, extra: dict | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Status, headers and body of `path` sent exactly as written (requests would send a bad %
    as %25, and decode the well-formed escapes of unreserved characters)."""
    host, port = base.split("//")[1].split(":")
    headers = {"Content-Type": "application/json", **(extra or {})}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


def test_a_path_with_a_malformed_escape_is_refused_by_the_lb_before_any_server_sees_it(qs):
    """The LB matches /zato/internal/, /zato/admin/ and /metrics on the percent-decoded path,
    and HAProxy decodes no path with a malformed escape: before, such a path passed every rule
    and the server, which decodes the rest and keeps the bad % as it is, served it: the
    internal endpoint and the admin API's login were reached through the public port."""
    access = os.path.join(qs.server_dir("server1"), "logs", "http_access.log")

    def served() -> str:
        with open(access) as f:
            return f.read()

    before, log_before = len(served()), len(server_log(qs))
    for path in BAD_ESCAPES:
        status, headers, body = as_sent(qs.lb_url, "POST", path, qs.admin_auth)
        assert status == 400, (path, status, body)
        env = json.loads(body)["zato_env"]
        assert env["details"] == (
            "malformed request path: a % not followed by two hexadecimal digits (send a % as %25)"
        ), path
        assert headers["X-Zato-CID"] == env["cid"], path
    # well-formed escapes are served as before, decoded
    assert as_sent(qs.lb_url, "GET", "/%68ping")[2] == b'{"pong": "zato"}'
    assert as_sent(qs.lb_url, "GET", "/zato/admin/%73ervices", qs.admin_auth)[0] == 200
    assert as_sent(qs.lb_url, "GET", "/hping%25")[0] == 404  # /hping%: no channel serves it
    # the access log has each path as the server decoded it (internal calls: not at all)
    wait_for(lambda: "GET /hping% " in served()[before:], 10, what="the last request in the access log")
    seen = served()[before:]  # one worker, requests in order: whatever reached it is in there
    assert not any(f" {unquote(path)} " in seen for path in BAD_ESCAPES), seen
    assert "internal invoke of zato.ping" not in server_log(qs)[log_before:]
    # the servers' own ports are not the LB's business: they still serve such paths as before
    assert as_sent(qs.server_url("server1"), "GET", "/hping%g0")[0] == 404


def test_a_client_cannot_set_the_path_the_server_routes_with_a_script_name_header(qs):
    """gunicorn takes a SCRIPT_NAME header from the addresses of forwarded_allow_ips
    (127.0.0.1 by default, where the LB of a one-host cluster is) and cuts it off the path
    before the app sees it; the LB passes a client's headers on as they are. Before, through
    the public port, `GET /x/metrics` with `SCRIPT_NAME: /x` was the server's /metrics (the LB
    refuses /metrics), `/x/zato/internal/...` the internal endpoint and `/x/zato/admin/...` the
    admin API (with [admin] through_lb = false too, and outside its login throttle); a
    SCRIPT_NAME the path did not begin with was a 500 "Configuration problem" page. Now the
    header is dropped, as any header with an underscore from any other client."""
    trick = {"SCRIPT_NAME": "/x"}
    for base in (qs.lb_url, qs.server_url("server1")):
        status, _, body = as_sent(base, "GET", "/x/metrics", extra=trick)
        assert status == 404 and b"no channel serves /x/metrics" in body, (base, status, body[:200])
        status, _, body = as_sent(base, "POST", "/x/zato/internal/invoke/zato.ping", extra=trick)
        assert status == 404, (base, status, body[:200])
        status, _, body = as_sent(base, "GET", "/x/zato/admin/services", qs.admin_auth, extra=trick)
        assert status == 404, (base, status, body[:200])
        status, _, body = as_sent(base, "GET", "/hping", extra={"SCRIPT_NAME": "/elsewhere"})
        assert (status, body) == (200, b'{"pong": "zato"}'), (base, status, body[:300])
    assert as_sent(qs.lb_url, "GET", "/metrics")[0] == 403  # as before
