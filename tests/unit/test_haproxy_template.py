"""haproxy.cfg is rendered from the commented template etc/haproxy.cfg (and the external LB's
from etc/haproxy-external.cfg): the comments reach the file, every placeholder gets a value
that was checked for its place, and template and code cannot drift apart silently."""

from __future__ import annotations

import dataclasses
import re

import pytest

from zato.common.cid import CID_RE
from zato.common.errors import LBError
from zato.config.settings import LBSettings, RedisSettings
from zato.lb.external import render_external
from zato.lb.render import Backend, UnsafeValue, fill, render
from zato.lifecycle.templates import template

SETTINGS = LBSettings("/srv/lb", "c1", "127.0.0.1", 11223, RedisSettings(), "admin", "pw 1")


def test_the_rendered_file_keeps_the_templates_comments_and_fills_every_placeholder():
    text = render(SETTINGS, [Backend("s1", "127.0.0.1", 17010)])
    assert text.startswith("# Rendered by the Zato load-balancer controller for cluster c1.\n")
    assert "# The cluster's live servers, from its membership in Redis" in text
    assert "${" not in text
    assert "    user admin insecure-password pw\\ 1\n" in text  # quoted as an HAProxy word
    assert re.search(r"^backend zato_servers\n(    .*\n)+    server s1 127\.0\.0\.1:17010 check ", text, re.M)
    assert text.index("global\n") < text.index("defaults\n")  # no comment line ends in "global"


def test_the_external_template_renders_one_server_per_cluster():
    text = render_external("0.0.0.0:8080", ["10.0.0.1:11223", "lb-b:11223"])
    assert text.startswith("# External load balancer in front of 2 Zato clusters")
    assert "    server cluster2 lb-b:11223 check inter 500 fall 2 rise 1" in text and "${" not in text
    # a cluster's LB answers 503 when it has no server left: the request goes to the other
    assert "    retry-on conn-failure empty-response junk-response 0rtt-rejected 502 503 504\n" in text


def test_a_value_or_line_that_could_add_a_line_is_refused():
    with pytest.raises(UnsafeValue):
        fill("a ${x}\n", {"x": "1\n    lua-load /tmp/x.lua"}, {})
    with pytest.raises(UnsafeValue):
        fill("${b}\n", {}, {"b": ["    server a 1.2.3.4:1\r"]})
    with pytest.raises(UnsafeValue):
        fill("a ${x}\n", {"x": 1.5}, {})  # type: ignore[dict-item]


def test_template_and_code_out_of_step_is_an_error_not_a_broken_file():
    with pytest.raises(LBError, match="does not fill"):
        fill("a ${x} ${y}\n", {"x": "1"}, {})
    with pytest.raises(LBError, match="lacks"):
        fill("a ${x}\n", {"x": "1", "unused": "2"}, {})
    with pytest.raises(LBError, match="lacks"):
        fill("a\n", {}, {"servers": []})


def test_an_empty_block_takes_its_line_away():
    assert fill("a\n${b}\nc ${n}\n", {"n": 3}, {"b": []}) == "a\nc 3\n"
    assert fill("${b}\n", {}, {"b": ["x", "y"]}) == "x\ny\n"


def test_the_templates_are_shipped_next_to_the_other_config_templates():
    for name in ("haproxy.cfg", "haproxy-external.cfg"):
        assert template(name).startswith("# ")


def test_the_request_log_is_on_by_default_and_off_with_access_log_false():
    on = render(SETTINGS, [])
    assert "    log stdout format raw local0 info\n" in on and "    log global\n" in on
    assert ' %ID \\"%HM %[capture.req.uri,' in on  # the CID: its unique id, the X-Zato-CID the server gets
    off = render(dataclasses.replace(SETTINGS, access_log=False), [])
    assert not re.search(r"^\s*(log|log-format|http-request capture) ", off, re.M)
    assert "    http-request set-header X-Zato-CID %[var(txn.zato_cid)]\n" in off  # one CID either way


def test_a_clients_cid_is_kept_only_when_a_server_would_take_it():
    """The LB keeps a client's X-Zato-CID only if it is one header matching the servers' own
    test (zato.common.cid.CID_RE); else the request gets a new CID, its unique id."""
    text = render(SETTINGS, [])
    assert "    unique-id-format %[var(txn.zato_cid)]\n" in text
    kept = re.search(
        r"^    http-request set-var\(txn\.zato_cid\) req\.fhdr\(X-Zato-CID\) if (.*)$", text, re.M
    )
    assert kept, text
    assert kept.group(1) == (
        "{ req.fhdr_cnt(X-Zato-CID) eq 1 } { req.fhdr(X-Zato-CID) -m reg " + CID_RE.pattern + " }"
    )
    assert "    http-request set-var-fmt(txn.zato_cid) K%[uuid," in text
    order = [
        text.index(s) for s in ("set-var(txn.zato_cid)", "set-var-fmt(txn.zato_cid)", "set-header X-Zato-CID")
    ]
    assert order == sorted(order) and order[-1] < text.index("http-request return")  # before any refusal
