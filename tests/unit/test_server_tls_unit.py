"""TLS on the servers' own ports without sockets: the member entry saying so, the HAProxy
server lines lb.conf [tls] ca_file renders, what the LB says of a server that disagrees, the
check `zato start` makes of a server's certificate against its CA, and a quickstart --tls."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace

import pytest

from zato.common import tls
from zato.common.errors import ConfigError
from zato.config.settings import load_lb_settings, load_server_settings
from zato.coord import parse
from zato.coord.membership import Member, entry, read_entry
from zato.coord.signing import member_key, sign
from zato.lb import render
from zato.lb.controller import tls_mismatch
from zato.lifecycle.layout import QuickstartSpec, _write_quickstart
from zato.server.app import gunicorn_options

KEY = member_key("a cluster secret", "c1")


def test_a_member_entry_says_whether_its_server_serves_tls():
    plain = Member("server1", "127.0.0.1", 17010, 4242, 1.0)
    assert read_entry(entry(replace(plain, tls=True), KEY, 3), "server1", KEY).tls is True
    doc = json.loads(entry(plain, KEY, 3))
    doc.pop("sig")
    doc.pop("tls")  # an older server's entry: plain HTTP
    assert read_entry(sign(KEY, doc), "server1", KEY).tls is False
    with pytest.raises(parse.BadEntry, match="tls"):
        read_entry(sign(KEY, {**doc, "tls": "yes"}), "server1", KEY)


@pytest.fixture
def made(tmp_path):
    root = str(tmp_path / "qs")
    os.makedirs(root)
    _write_quickstart(root, QuickstartSpec(root, servers=2, cluster="c1", tls=True))
    return root


def test_a_tls_quickstart_gives_each_server_a_certificate_and_every_client_the_ca(made):
    ca_file = os.path.join(made, "tls", "ca.pem")
    for name in ("server1", "server2"):
        s = load_server_settings(os.path.join(made, name))
        assert s.tls_cert == os.path.join(made, name, "config", "server.pem") and s.tls_ca_file == ca_file
        assert stat.S_IMODE(os.stat(s.tls_cert).st_mode) == 0o600
        tls.check_bundle(s.tls_cert)
        tls.check_signed_by(s.tls_cert, ca_file)
        options = gunicorn_options(s)
        assert options["certfile"] == options["keyfile"] == s.tls_cert
    lb = load_lb_settings(os.path.join(made, "load-balancer"))
    assert lb.tls_ca_file == ca_file
    line = render.render(lb, [render.Backend("server1", "127.0.0.1", 17010)])
    assert f"server server1 127.0.0.1:17010 ssl verify required ca-file {ca_file} check-ssl check " in line
    # named when the config is read: HAProxy takes it for servers the Runtime API adds later
    assert f"    default-server ssl verify required ca-file {ca_file}\n" in line
    assert "ca-file" not in render.render(replace(lb, tls_ca_file=""), [render.Backend("s", "127.0.0.1", 1)])


def test_a_certificate_another_ca_signed_is_refused_in_one_line(made, tmp_path):
    other = tls.new_ca("another CA")
    cert, key = tls.issue(other, "server1", ["127.0.0.1"])
    bundle = tls.write_bundle(str(tmp_path / "server.pem"), cert, key, [other.cert])
    tls.check_bundle(bundle)  # a good certificate and key ...
    with pytest.raises(ConfigError, match=r"server.pem: the certificate is not trusted by \[tls\] ca_file"):
        tls.check_signed_by(bundle, os.path.join(made, "tls", "ca.pem"))  # ... of the wrong CA


def test_the_lb_says_which_side_to_change_when_a_server_and_lb_conf_disagree(made):
    lb = load_lb_settings(os.path.join(made, "load-balancer"))
    plain = Member("server2", "10.0.0.2", 17011, 1, 0.0)
    assert "server server2 at 10.0.0.2:17011 serves plain HTTP while this LB expects TLS" in tls_mismatch(
        plain, lb
    )
    assert tls_mismatch(replace(plain, tls=True), lb) == ""
    said = tls_mismatch(replace(plain, tls=True), replace(lb, tls_ca_file=""))
    assert "serves HTTPS only" in said and "set [tls] ca_file in" in said
    assert tls_mismatch(plain, replace(lb, tls_ca_file="")) == ""


def test_a_ca_file_path_haproxy_cannot_take_as_one_word_is_refused(made):
    lb = load_lb_settings(os.path.join(made, "load-balancer"))
    with pytest.raises(render.UnsafeValue, match=r"\[tls\] ca_file"):
        render.render(replace(lb, tls_ca_file="/a b/ca.pem"), [])


def test_a_tls_servers_connectors_call_no_plain_server_and_say_so_once(caplog):
    from zato.connector.invoke import Invoker

    tls_one = Member("server1", "10.0.0.1", 17010, 1, 0.0, tls=True)
    plain = Member("server2", "10.0.0.2", 17010, 2, 0.0)
    strict = Invoker(None, "c1", b"k", 1, members=b"m", tls_only=True)
    with caplog.at_level("ERROR", logger="zato.connector.invoke"):
        assert strict._usable([tls_one, plain]) == [tls_one]
        assert strict._usable([tls_one, plain]) == [tls_one]
    said = [r.getMessage() for r in caplog.records]
    assert (
        len(said) == 1
        and "server server2 at 10.0.0.2:17010 serves plain HTTP while this server serves TLS" in said[0]
    )
    # a plain server (switching one at a time) calls both: the TLS one over TLS
    assert Invoker(None, "c1", b"k", 1, members=b"m")._usable([tls_one, plain]) == [tls_one, plain]


def test_a_certificate_that_does_not_name_the_announced_address_is_refused_in_one_line(made):
    bundle = os.path.join(made, "server1", "config", "server.pem")
    ca_file = os.path.join(made, "tls", "ca.pem")
    tls.check_signed_by(bundle, ca_file, "127.0.0.1")  # the quickstart's names it
    with pytest.raises(
        ConfigError, match=r"server.pem: the certificate does not name 10.0.0.12, the address"
    ):
        tls.check_signed_by(bundle, ca_file, "10.0.0.12")
