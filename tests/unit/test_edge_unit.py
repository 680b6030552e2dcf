"""The edge without sockets: the per-call signature of internal calls, the body reader's
limits, lb.conf edge settings and the HAProxy lines they render."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import ssl
from dataclasses import replace

import pytest

from zato.common import tls
from zato.common.errors import ConfigError
from zato.common.signing import epoch_key, new_stamp, parse_stamp, sign, verify
from zato.config.settings import load_lb_settings
from zato.lb import edge, render
from zato.lifecycle.layout import create_lb_dir
from zato.server import body as bodies
from zato.server.body import BodyError, ClientGone, Lingering, read_body

SECRET = "cluster-secret-value"


def test_a_signature_fits_only_its_epoch_service_cid_stamp_and_body():
    stamp = new_stamp(1_800_000_000.5)
    sig = sign(epoch_key(SECRET, 7), 7, "svc", "K1", stamp, b"body")
    assert verify(SECRET, sig, 7, "svc", "K1", stamp, b"body")
    assert not verify(SECRET, sig, 8, "svc", "K1", stamp, b"body")  # replayed with a raised epoch
    assert not verify(SECRET, sig, 7, "other", "K1", stamp, b"body")
    assert not verify(SECRET, sig, 7, "svc", "K2", stamp, b"body")
    assert not verify(SECRET, sig, 7, "svc", "K1", new_stamp(1_800_000_000.5), b"body")  # another nonce
    assert not verify(SECRET, sig, 7, "svc", "K1", "", b"body")
    assert not verify(SECRET, sig, 7, "svc", "K1", stamp, b"body!")
    assert not verify("another-secret", sig, 7, "svc", "K1", stamp, b"body")
    assert epoch_key(SECRET, 7) != epoch_key(SECRET, 8)


def test_a_stamp_says_its_time_and_a_nonce_of_its_own():
    at, nonce = parse_stamp(new_stamp(1_800_000_000.25)) or (0.0, "")
    assert at == 1_800_000_000.25 and len(nonce) == 32
    assert parse_stamp(new_stamp(1.0))[1] != nonce  # type: ignore[index]
    for bad in ("", "1800000000250", "-" + "a" * 32, "12-" + "A" * 32, "12-" + "a" * 31, "1 2-" + "a" * 32):
        assert parse_stamp(bad) is None, bad


def env(body: bytes, length: str | None = None, chunked: bool = False) -> dict:
    e = {"wsgi.input": io.BytesIO(body)}
    if length is not None:
        e["CONTENT_LENGTH"] = length
    if chunked:
        e["HTTP_TRANSFER_ENCODING"] = "chunked"
    return e


def test_body_limits():
    assert read_body(env(b"abc", "3"), 10, 5) == b"abc"
    assert read_body(env(b"abc"), 10, 5) == b""  # no length, not chunked: no body
    assert read_body(env(b"x" * 10, chunked=True), 10, 5) == b"x" * 10
    with pytest.raises(BodyError) as over:
        read_body(env(b"", "11"), 10, 5)  # nothing to read: decided from the header
    assert over.value.status == 413 and "11 bytes" in over.value.detail
    with pytest.raises(BodyError) as chunked:
        read_body(env(b"x" * 11, chunked=True), 10, 5)
    assert chunked.value.status == 413
    with pytest.raises(BodyError) as bad:
        read_body(env(b"", "ten"), 10, 5)
    assert bad.value.status == 400
    with pytest.raises(ClientGone, match="after 2 of 5 bytes"):
        read_body(env(b"ab", "5"), 10, 5)


@pytest.fixture
def lb_dir(tmp_path):
    return create_lb_dir(str(tmp_path / "lb"), "edge", port=18099)


def set_lb_conf(lb_dir: str, text: str) -> None:
    with open(os.path.join(lb_dir, "config", "lb.conf"), "a") as f:
        f.write(text)


class Gone(io.RawIOBase):
    def read(self, size=-1):  # noqa: ANN001
        raise ConnectionResetError


def test_after_a_413_the_rest_of_the_body_is_read_and_dropped_within_bounds(monkeypatch):
    rest = io.BytesIO(b"r" * 200_000)
    answer = Lingering([b"413 answer"], rest, seconds=5)
    assert list(answer) == [b"413 answer"]  # the answer first, as it was
    answer.close()
    assert rest.tell() == 200_000  # read to the end of what the client sent
    monkeypatch.setattr(bodies, "LINGER_BYTES", 100_000)
    endless = io.BytesIO(b"e" * 1_000_000)
    Lingering([b""], endless, seconds=5).close()
    assert 100_000 <= endless.tell() < 100_000 + bodies.CHUNK  # stops at LINGER_BYTES
    Lingering([b""], Gone(), seconds=5).close()  # a client that went: nothing to drop, no error


def test_default_edge_config_protects_the_public_port(lb_dir):
    text = render.render(load_lb_settings(lb_dir), [render.Backend("s1", "127.0.0.1", 17010)])
    assert "timeout http-request 5000ms" in text and "timeout http-keep-alive 2000ms" in text
    assert "    maxconn 4000" in text and "sc0_conn_cur gt 256" in text
    assert "maxconn 256 maxqueue 256" in text  # per server, with a bounded queue
    assert "http-request return status 403" in text and "if zato_internal" in text
    assert "sc1_gpc0_rate(admin_failures) ge 10" in text
    assert "if !zato_admin { sc2_gpc0_rate(channel_failures) ge 20 }" in text  # secured channels' 401s
    assert "acl zato_admin path,url_dec -m beg /zato/api/invoke/" in text  # zato-client's path too
    assert "option httpchk GET /zato/ready" in text  # readiness, not liveness, decides traffic
    # a status a server answered is the service's answer: never replayed (a GET ran four times)
    assert "    retry-on conn-failure empty-response junk-response 0rtt-rejected\n" in text
    # A vanished host's requests: found by keep-alive probes, replayed or answered 504;
    # shutdown-sessions killed requests still connecting (render.py's docstring).
    assert "on-marked-down shutdown-sessions" not in text
    assert "option srvtcpka" in text and "srvtcpka-cnt 2" in text
    assert "option http-server-close" in text and "option http-keep-alive" not in text
    assert "http-after-response set-status 504 if { status 502 }" in text
    assert " ssl crt " not in text


def test_edge_settings_from_lb_conf(lb_dir):
    set_lb_conf(
        lb_dir,
        "[admin]\nthrough_lb = off\n[tls]\ncert = lb.pem\n[haproxy]\nmax_conn_per_source = 0\n"
        "[channels]\nmax_failures = 0\n",
    )
    s = load_lb_settings(lb_dir)
    assert s.edge.tls_cert == os.path.join(lb_dir, "config", "lb.pem")
    text = render.render(s, [])
    assert "are not served through the load balancer" in text and "admin_failures" not in text
    assert "channel_failures" not in text and "track-sc2" not in text
    assert "tcp-request connection" not in text
    assert f"ssl crt {s.edge.tls_cert} alpn h2,http/1.1" in text
    assert "alpn h2" not in render.render(replace(s, edge=replace(s.edge, tls_cert="")), [])


@pytest.mark.parametrize("alpn", ["h2\n    lua-load /tmp/x.lua", "h2 http/1.1", ""])
def test_an_alpn_value_that_is_not_protocol_names_is_refused(lb_dir, alpn):
    set_lb_conf(lb_dir, f"[tls]\nalpn = {alpn}\n")
    with pytest.raises(ConfigError, match=r"\[tls\] alpn"):
        load_lb_settings(lb_dir)


def test_bad_edge_value_is_one_named_error(lb_dir):
    set_lb_conf(lb_dir, "[admin]\nthrough_lb = maybe\n")
    with pytest.raises(ConfigError, match=r"\[admin\] through_lb: 'maybe' is not true or false"):
        load_lb_settings(lb_dir)


def test_certificate_check_names_what_is_wrong_in_one_line(tmp_path):
    ca = tls.new_ca("unit CA")
    cert, key = tls.issue(ca, "localhost", ["localhost", "127.0.0.1"], days=30)
    bundle = tls.write_bundle(str(tmp_path / "lb.pem"), cert, key, [ca.cert])
    assert os.stat(bundle).st_mode & 0o777 == 0o600
    assert tls.check_bundle(bundle) == cert
    later = cert.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(ConfigError, match=r"lb.pem: the certificate \(CN=localhost\) expired on "):
        tls.check_bundle(bundle, now=later)
    _, other_key = tls.issue(ca, "other", ["other"])
    tls.write_bundle(bundle, cert, other_key, [])
    with pytest.raises(ConfigError, match="the private key does not match the certificate"):
        tls.check_bundle(bundle)
    with open(bundle, "wb") as f:
        f.write(tls.cert_pem(cert))
    with pytest.raises(ConfigError, match=r"no private key in the file \(nor in lb.pem.key\)"):
        tls.check_bundle(bundle)
    with open(bundle + ".key", "wb") as f:  # HAProxy's other layout: the key next to the certificate
        f.write(tls.key_pem(key))
    assert tls.check_bundle(bundle) == cert
    with pytest.raises(ConfigError, match="cannot read the TLS certificate"):
        tls.check_bundle(str(tmp_path / "missing.pem"))


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A real TLS handshake between two contexts, in memory (OpenSSL through MemoryBIO)."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    s = server.wrap_bio(bios[0], bios[1], server_side=True)
    c = client.wrap_bio(bios[2], bios[3], server_hostname=hostname)
    done = {s: False, c: False}
    for _ in range(20):
        for end in (c, s):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        if bios[3].pending:
            bios[0].write(bios[3].read())  # client -> server
        if bios[1].pending:
            bios[2].write(bios[1].read())  # server -> client
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_quickstart_certificates_pass_strict_verification(tmp_path):
    """Python 3.13's default client context verifies strictly (VERIFY_X509_STRICT). A CA and a
    server certificate without key identifiers failed there with "Missing Authority Key
    Identifier", so every 3.13 client of a `--tls` quickstart refused the LB."""
    ca = tls.new_ca("unit CA")
    cert, key = tls.issue(ca, "localhost", ["localhost", "127.0.0.1"])
    ca_file, _ = tls.write_ca(str(tmp_path / "tls"), ca)
    bundle = tls.write_bundle(str(tmp_path / "lb.pem"), cert, key, [ca.cert])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(bundle)
    client = ssl.create_default_context(cafile=ca_file)
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    handshake(server, client, "localhost")
    stranger = ssl.create_default_context(cafile=tls.write_ca(str(tmp_path / "other"), tls.new_ca("x"))[0])
    with pytest.raises(ssl.SSLCertVerificationError):  # the check is real: another CA is refused
        handshake(server, stranger, "localhost")


def test_maxconn_is_lowered_to_what_the_open_files_limit_allows():
    from zato.config.settings import EdgeSettings
    from zato.lb.edge import fit_maxconn

    fitted, warning = fit_maxconn(EdgeSettings(maxconn=4000), 2048)
    assert fitted.maxconn == 974
    assert "needs about 8100 open files" in warning and "using maxconn 974" in warning
    same, none = fit_maxconn(EdgeSettings(maxconn=4000), 20000)
    assert same.maxconn == 4000 and none == ""


def test_server_keep_alive_is_an_operators_choice(lb_dir):
    """lb.conf [haproxy] server_keep_alive: kept server connections (faster, but a request on
    one to a vanished host waits for timeout server) instead of one request a connection."""
    settings = load_lb_settings(lb_dir)
    assert settings.server_keep_alive is False
    kept = render.render(replace(settings, server_keep_alive=True), [])
    assert "\n    option http-keep-alive\n" in kept and "\n    option http-server-close\n" not in kept


def gunicorn_chunked(raw: bytes) -> dict:
    """The environ of a chunked request whose wsgi.input is gunicorn's own chunked decoder."""
    from gunicorn.http.body import Body, ChunkedReader
    from gunicorn.http.unreader import IterUnreader

    stream = Body(ChunkedReader(object(), IterUnreader([raw])))
    return {"wsgi.input": stream, "HTTP_TRANSFER_ENCODING": "chunked"}


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", "malformed chunked body: Invalid chunk size: "),
        (b"2\r\n{}XX0\r\n\r\n", "malformed chunked body: Invalid chunk terminator"),
        (b"2;\x01\r\n{}\r\n0\r\n\r\n", "malformed chunked body: Invalid chunk extension"),
    ],
)
def test_a_body_gunicorn_cannot_decode_is_a_400_saying_why(raw, said):
    """Before: gunicorn's InvalidChunkSize went up as an unexpected error: a 500 and a traceback."""
    assert read_body(gunicorn_chunked(b"2\r\n{}\r\n0\r\n\r\n"), 100, 5) == b"{}"
    with pytest.raises(bodies.Malformed) as bad:
        read_body(gunicorn_chunked(raw), 100, 5)
    assert bad.value.status == 400 and bad.value.detail.startswith(said), bad.value.detail
    assert bad.value.detail.isprintable()
    with pytest.raises(ClientGone):  # the body just stops: the client went away
        read_body(gunicorn_chunked(b"5\r\nab"), 100, 5)


def test_what_any_client_can_cause_is_said_once_a_minute_with_how_often_it_was_not():
    now = [0.0]
    said = bodies.Throttled(60, clock=lambda: now[0])
    assert said.due() == 0
    for t in (1, 30, 59.9):
        now[0] = t
        assert said.due() is None
    now[0] = 60.0
    assert said.due() == 3
    now[0] = 61.0
    assert said.due() is None


def test_a_burst_is_said_in_full_then_counted_until_the_oldest_said_is_an_interval_old():
    now = [0.0]
    said = bodies.Throttled(60, clock=lambda: now[0], burst=3)
    assert said.how_often == "3 times a minute"
    for t in (0, 1, 2):
        now[0] = t
        assert said.due() == 0
    for t in (3, 59.9):
        now[0] = t
        assert said.due() is None
    now[0] = 60.0  # the first one said is a minute old: one more may be said, with the count
    assert said.due() == 2
    now[0] = 60.5
    assert said.due() is None
    now[0] = 61.0
    assert said.due() == 1
    assert bodies.Throttled(2, burst=5).how_often == "5 times every 2 s"


def test_the_429s_of_failed_logins_say_when_to_try_again():
    """Before: the LB's 429 for admin logins (and channels' logins) had no Retry-After."""
    from zato.config.settings import EdgeSettings
    from zato.lb import edge

    settings = EdgeSettings(admin_max_failures=10, channel_max_failures=20)
    lines = "\n".join(edge.frontend_lines(settings))
    for counter, table in ((1, edge.ADMIN_TABLE), (2, edge.CHANNEL_TABLE)):
        assert f"set-var(txn.zato_failure_rate) sc{counter}_gpc0_rate({table})" in lines
    returns = [ln for ln in lines.splitlines() if "return status 429" in ln]
    assert len(returns) == 2 and all("hdr Retry-After %[var(txn.zato_retry_after)]" in ln for ln in returns)
    limit = settings.admin_max_failures
    assert f"int({60 * limit}),div(txn.zato_failure_rate),neg,add(121)" in lines


def test_the_stats_pages_are_throttled_per_address_and_can_be_left_alone(lb_dir):
    """Before: nothing limited guessing the stats password; any client could try as fast as it
    liked on /zato-lb-stats or /zato-lb-metrics."""
    text = render.render(load_lb_settings(lb_dir), [])
    guard = text.index("sc1_gpc0_rate(stats_failures) ge 10")  # [stats] max_failures default
    assert guard < text.index("http-request auth realm") < text.index("stats enable")  # before the 401s
    assert "acl zato_lb_page path -m beg /zato-lb-stats" in text
    assert "acl zato_lb_page path /zato-lb-metrics" in text
    counted = "if zato_lb_page { req.hdr_cnt(authorization) gt 0 } !{ http_auth(zato_lb_stats) }"
    assert "sc-inc-gpc0(1) " + counted in text
    assert "backend stats_failures" in text
    conf = os.path.join(lb_dir, "config", "lb.conf")
    with open(conf) as f:
        text = f.read().replace("[stats]\n", "[stats]\nmax_failures = 0\n", 1)
    with open(conf, "w") as f:
        f.write(text)
    text = render.render(load_lb_settings(lb_dir), [])
    assert "stats_failures" not in text and "zato_lb_page" not in text


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/zato/internal/invoke/x%", True),
        ("/zato/admin/services%4", True),
        ("/a%zz/b", True),
        ("/a%4g", True),
        ("/a%%41", True),
        ("/a%41%", True),
        ("/zato/%69nternal/invoke/x", False),
        ("/a%25", False),
        ("/a%aF/b%00", False),
        ("/plain/path", False),
    ],
)
def test_the_lb_knows_a_malformed_escape_in_a_path(path, bad):
    """HAProxy's url_dec gives no value for such a path, so the rules on the decoded path
    would not see it: the frontend refuses it (400) before them."""
    assert bool(re.search(edge.BAD_ESCAPE_RE, path)) is bad


def test_a_malformed_escape_is_refused_before_the_rules_on_the_decoded_path(lb_dir):
    lines = edge.frontend_lines(load_lb_settings(lb_dir).edge)
    first_decoded = next(i for i, line in enumerate(lines) if "url_dec" in line)
    refused = next(i for i, line in enumerate(lines) if "return status 400" in line)
    assert refused < first_decoded and "if zato_bad_escape" in lines[refused]
    assert "a %% not followed by two hexadecimal digits (send a %% as %%25)" in lines[refused]  # lf-string


@pytest.mark.parametrize("te", ["gzip, chunked", "deflate,chunked", "chunked, gzip", "x-custom, chunked"])
def test_a_transfer_coding_the_server_does_not_undo_is_a_501(te):
    with pytest.raises(BodyError) as caught:
        bodies.check_codings({"HTTP_TRANSFER_ENCODING": te})
    assert caught.value.status == 501 and "is not supported" in caught.value.detail


@pytest.mark.parametrize("te", [None, "chunked", "Chunked", "identity, chunked", "chunked,"])
def test_chunked_alone_is_read(te):
    bodies.check_codings({} if te is None else {"HTTP_TRANSFER_ENCODING": te})
