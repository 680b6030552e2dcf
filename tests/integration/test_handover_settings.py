"""server.conf [lease] handover_after and yield_for (zato.connector.handover), with real servers.

Before, both were constants (10 s of a connector reconnecting before the holder hands the lease
over, 300 s for which a server that did is not handed it again): an operator could not tune
them, and `[lease] handover_after = 2` was refused as an unknown setting. Now they are settings
with bounds, refused at start with a line naming the file, key, value and range."""

from __future__ import annotations

import os
import re

import pytest
import redis

from tests.support import REDIS_URL, Quickstart, free_port, one_line_error, wait_for, zato
from zato.coord.keys import Keys
from zato.coord.lease import read_holder

HANDOVER_AFTER = 1
YIELD_FOR = 40


def test_a_small_handover_after_hands_the_lease_over_and_yield_for_bounds_the_note(quickstart):
    """A two-server cluster whose AMQP channel points at a port nobody listens on: the holder
    hands the lease over after handover_after, its note lives yield_for (not 300 s), and the
    next holder, failing the same broker, keeps the lease."""
    conf = {"lease": {"handover_after": str(HANDOVER_AFTER), "yield_for": str(YIELD_FOR)}}
    qs = quickstart(servers=2, lb=False, extra_conf=conf)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        qs.start()
        first = wait_for(lambda: read_holder(client, qs.cluster), 60, what="a lease holder").server
        zato("conn", "create", "amqp-def", qs.path, "--name", "nowhere", "--password", "guest",
             "--port", str(free_port()))  # fmt: skip
        zato("conn", "create", "amqp-channel", qs.path, "--name", "orders", "--def", "nowhere",
             "--queue", "zt-hos-orders", "--service", "demo.ping")  # fmt: skip

        def handed_over() -> bool:
            holder = read_holder(client, qs.cluster)
            return holder is not None and holder.server != first

        wait_for(handed_over, 120, what=f"{first} handing the lease over")
        ttl = client.pttl(Keys(qs.cluster).lease_yield(first))
        assert 0 < ttl <= YIELD_FOR * 1000, ttl
        said = (
            r"connector amqp-channel:orders has been reconnecting for \d+ s \(.*\): handing the lease over to"
            rf" \S+, which may reach it \(\[lease\] handover_after {HANDOVER_AFTER} s\); {first} lets them"
            rf" take it first for {YIELD_FOR} s \(\[lease\] yield_for\)"
        )
        assert re.search(said, qs.server_logs()), said
        second = read_holder(client, qs.cluster).server
        wait_for(lambda: "handed the lease over for the same connector" in qs.server_logs(), 60,
                 what=f"{second} keeping the lease: the broker is away for both")  # fmt: skip
    finally:
        client.close()


@pytest.fixture(scope="module")
def one_server(tmp_path_factory):
    qs = Quickstart(tmp_path_factory.mktemp("handover-conf"), servers=1, lb=False).create()
    yield qs
    qs.close()


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"handover_after": "0"}, "[lease] handover_after: 0 must be more than 0 and at most 3600 (seconds)"),
        ({"yield_for": "1e12"}, "[lease] yield_for: 1e12 must be more than 0 and at most 86400 (seconds)"),
        ({"handover_after": "later"}, "[lease] handover_after: 'later' is not a number"),
        (
            {"handover_after": "60", "yield_for": "100"},
            "[lease] yield_for (100 s) must be at least twice handover_after (60 s): shorter, a next"
            " holder failing the same broker would not see that this one handed the lease over for it,"
            " and the lease would move around the cluster",
        ),
    ],
)
def test_a_bad_handover_setting_is_refused_at_start(one_server, values, said):
    conf = os.path.join(one_server.server_dir("server1"), "config", "server.conf")
    with open(conf, encoding="utf-8") as f:
        before = f.read()
    try:
        Quickstart._merge(conf, "lease", values)
        line = one_line_error(zato("start", one_server.server_dir("server1"), check=False))
        assert line == f"zato: error: {conf}: {said}", line
        assert one_server.pid("server1") is None  # nothing started
    finally:
        if one_server.pid("server1") is not None:  # it started after all (before the fix): stopped again
            zato("stop", one_server.server_dir("server1"), "--timeout", "5", check=False)
        with open(conf, "w", encoding="utf-8") as f:
            f.write(before)
