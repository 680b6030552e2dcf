"""Issue 15's boundaries, value by value (no sockets): what is read from Redis, what goes into
haproxy.cfg or a Runtime API command, and what users give for channels and connections."""

from __future__ import annotations

import json

import pytest

from zato.common.errors import ConfigError, ConnectorError, LBError
from zato.coord import parse
from zato.coord.membership import MAX_ENTRY_AGE, Member, entry, max_age, read_entry
from zato.coord.signing import member_key, sign
from zato.lb.render import Backend, UnsafeValue
from zato.lb.runtime import RuntimeAPI
from zato.odb import connectors
from zato.odb.api import make_channel
from zato.server.wsgi import HTTPError, parse_payload

KEY = member_key("a cluster secret", "c1")
GOOD = Member("server1", "127.0.0.1", 17010, 4242, 1.0)


@pytest.mark.parametrize(
    "change",
    [
        {"port": "17010"},
        {"port": "1\nglobal\n    lua-load /x.lua"},
        {"port": 70000},
        {"port": True},
        {"port": 17010.0},
        {"host": "127.0.0.1 backup"},
        {"host": "a;b"},
        {"name": "server1\n"},
        {"pid": "1"},
        {"state": "up"},
        {"started_at": "now"},
        {"seen_epoch": -1},
        {"at": "now"},
        {"at": True},
        {"ttl": 0},
        {"ttl": 86400},
        {"ttl": "3"},
    ],
)
def test_a_signed_member_with_an_odd_field_is_refused(change):
    doc = {**json.loads(entry(GOOD, KEY, 3)), **change}
    doc.pop("sig")
    with pytest.raises(parse.BadEntry):  # signed with the right key, yet not a member
        read_entry(sign(KEY, doc), doc["name"], KEY)


def test_only_entries_signed_with_the_cluster_key_are_members():
    assert read_entry(entry(GOOD, KEY, 3), "server1", KEY) == GOOD
    for raw in (
        entry(GOOD, member_key("another secret", "c1"), 3),
        entry(GOOD, member_key("a cluster secret", "c2"), 3),
    ):
        with pytest.raises(parse.BadEntry, match="not signed"):
            read_entry(raw, "server1", KEY)
    with pytest.raises(parse.BadEntry, match="its name"):
        read_entry(entry(GOOD, KEY, 3), "server2", KEY)  # a real entry copied under another name
    tampered = json.loads(entry(GOOD, KEY, 3)) | {"port": 28998}
    with pytest.raises(parse.BadEntry):
        read_entry(json.dumps(tampered), "server1", KEY)


def test_a_replayed_member_entry_is_refused_once_its_signed_time_is_old():
    now = 1_800_000_000.0
    bound = max_age(3)
    assert bound == MAX_ENTRY_AGE  # a default 3 s ttl: 10 ttls are less than the floor
    assert read_entry(entry(GOOD, KEY, 3, at=now - 1), "server1", KEY, now=now) == GOOD  # a fresh heartbeat
    assert read_entry(entry(GOOD, KEY, 3, at=now - bound + 1), "server1", KEY, now=now) == GOOD  # skew
    for at, what in ((now - bound - 1, "old"), (now + bound + 1, "ahead")):
        with pytest.raises(parse.BadEntry, match=what):  # a stopped server's entry, written back
            read_entry(entry(GOOD, KEY, 3, at=at), "server1", KEY, now=now)
    long_ttl = entry(GOOD, KEY, 30, at=now - 299)  # a writer with a long ttl: 10 ttls
    assert read_entry(long_ttl, "server1", KEY, now=now) == GOOD
    with pytest.raises(parse.BadEntry, match="more than 300 s old"):
        read_entry(long_ttl, "server1", KEY, now=now + 2)


def test_a_member_entry_without_a_signed_time_is_refused():
    doc = json.loads(entry(GOOD, KEY, 3))
    for field in ("sig", "at", "ttl"):
        doc.pop(field)
    with pytest.raises(parse.BadEntry, match="no signed time 'at'.*older version"):
        read_entry(sign(KEY, doc), "server1", KEY)  # what a server before the `at` field wrote


@pytest.mark.parametrize("raw", ["abc", "5\n", " 5", "-1", "1e3", "9" * 16, "５"])
def test_an_epoch_is_digits_only(raw):
    with pytest.raises(parse.BadEntry):
        parse.epoch(raw)
    assert parse.epoch("42") == 42 and parse.epoch(None) == 0


@pytest.mark.parametrize(
    ("name", "ip", "port"),
    [
        ("a\nb", "127.0.0.1", 1),
        ("ok", "127.0.0.1\n", 1),
        ("ok", "localhost", 1),
        ("ok", "10.0.0.1", "80"),
        ("", "1.2.3.4", 1),
    ],
)
def test_the_renderer_refuses_what_it_cannot_prove_safe(name, ip, port):
    with pytest.raises(UnsafeValue):
        Backend(name, ip, port)


def test_runtime_api_commands_cannot_carry_a_second_command(tmp_path):
    api = RuntimeAPI(str(tmp_path / "no.sock"))
    for cmd in (
        "show stat\nshutdown frontend x",
        "show info; disable frontend zato_lb",
        "set server a/b state ready\r",
    ):
        with pytest.raises(LBError, match="refusing an unsafe"):
            api.command(cmd)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("name", "a/b", "name"),
        ("name", "x" * 65, "name"),
        ("url_path", "/a b", "url_path"),
        ("url_path", "/a\x00b", "url_path"),
        ("url_path", "/" + "a" * 1000, "url_path"),
        ("url_path", "/a%zz", "% only as %XX"),
        ("url_path", "/a%2Fb", "%2F would read as a /"),
        ("url_path", "/a%7Bid%7D", "as a {param}"),
        ("url_path", "/caf%E9", "not UTF-8"),
        ("url_path", "/a%0Ab", "control character"),
        ("url_path", "/a\u0085b", "url_path"),
        ("url_path", "/orders?status=new", "without a query string"),
        ("url_path", "/orders#top", "or fragment"),
        ("url_path", "/metrics", "the server's Prometheus metrics, answered before any channel"),
        ("url_path", "/%6Detrics", "the server's Prometheus metrics"),
        ("url_path", "/zato-lb-alive", "the load balancer's health check"),
        ("method", "BREW", "method"),
        ("is_active", "false", "is_active"),
        ("service", "svc\n", "service"),
    ],
)
def test_channel_input_is_validated(field, value, says):
    good = {"name": "orders", "url_path": "/api/orders/{id}", "service": "demo.orders", "method": "GET"}
    make_channel(**good, is_active=True)
    with pytest.raises(ConfigError, match=says):
        make_channel(**{**good, field: value})


def test_connection_names_are_deletable_and_strings_have_no_control_characters():
    fields = {f.name: f for f in connectors.check_kind("amqp-def")}
    with pytest.raises(ConnectorError, match="name"):
        connectors.coerce("amqp-def", fields["name"], "a/b")
    with pytest.raises(ConnectorError, match="control characters"):
        connectors.coerce("amqp-def", fields["host"], "broker\x00.example.com")


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b"1" + b"0" * 5000])
def test_deep_json_and_huge_integers_are_a_400(body):
    with pytest.raises(HTTPError) as e:
        parse_payload(body, as_json=True)
    assert e.value.status == 400


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/zamówienia/{id}", "/zamówienia/{id}"),
        ("/zam%C3%B3wienia/{id}", "/zamówienia/{id}"),  # the same channel, as requests are decoded
        ("/a%20b", "/a b"),
        ("/%41pi", "/Api"),
        ("/plain/{x}", "/plain/{x}"),
    ],
)
def test_channel_paths_are_kept_as_requests_are_matched(given, kept):
    ch = make_channel("c", given, "demo.svc")
    assert ch.url_path == kept


def test_reserved_channel_paths_are_the_ones_the_server_and_the_lb_answer():
    from zato.lb import render
    from zato.odb.api import RESERVED_PATHS
    from zato.server import metrics

    answered = {metrics.METRICS_PATH, render.ALIVE_URI, render.STATS_URI, render.METRICS_URI}
    assert set(RESERVED_PATHS) == answered
