"""The cluster-status view is built in one place (zato.coord.status.collect): the servers this
host knows, the ODB's, and what Redis says of them. Here Redis cannot be reached (no socket:
a client whose every command fails as an unreachable Redis does); the live side is covered
by tests/integration/test_membership_status.py."""

from __future__ import annotations

import redis

from zato.common.errors import ODBError
from zato.coord.status import KnownServer, collect
from zato.odb.api import add_server, ensure_cluster, list_servers


class Unreachable:
    """A redis client for a Redis that refuses every connection."""

    def __getattr__(self, name: str):  # noqa: ANN204
        def refuse(*_args: object, **_kwargs: object) -> None:
            raise redis.ConnectionError("Connection refused")

        return refuse


def test_this_hosts_servers_and_the_odbs_are_listed_once_each_by_name(odb):
    ensure_cluster(odb, "c1")
    for name, port in (("server2", 17011), ("server1", 1)):
        add_server(odb, "c1", name, "10.0.0.2", port)
    mine = [KnownServer("server1", "127.0.0.1", 17010)]
    view = collect(Unreachable(), "c1", mine, registered=lambda: list_servers(odb, "c1"))
    assert [(s["name"], s["address"]) for s in view["servers"]] == [
        ("server1", "127.0.0.1:17010"),  # this host's directory wins over the ODB's row
        ("server2", "10.0.0.2:17011"),
    ]
    # Redis unreadable: whether they live is unknown, not "gone"
    assert {(s["live"], s["state"]) for s in view["servers"]} == {(None, "unknown")}
    assert view["lease"]["holder"] is None and view["children"] == []
    assert len(view["errors"]) == 1 and view["errors"][0].startswith("Redis: ")


def test_an_odb_that_fails_is_an_error_after_redis_and_the_rest_is_shown():
    def broken() -> list:
        raise ODBError("database is locked")

    view = collect(Unreachable(), "c1", [KnownServer("server1", "127.0.0.1", 17010)], registered=broken)
    assert [s["name"] for s in view["servers"]] == ["server1"]
    assert view["errors"][0].startswith("Redis: ") and view["errors"][1] == "ODB: database is locked"


def test_without_known_servers_the_view_has_only_the_live_ones():
    view = collect(Unreachable(), "c1")
    assert view["cluster"] == "c1" and view["servers"] == []


def test_a_connector_the_broker_blocks_or_that_reconnects_shows_it_beside_running():
    from zato.cli.cluster import _state

    assert _state({"state": "RUNNING", "activity": "blocked"}) == "RUNNING/blocked"
    assert _state({"state": "RUNNING", "activity": "reconnecting"}) == "RUNNING/reconnecting"
    assert _state({"state": "RUNNING", "activity": "running"}) == "RUNNING"
    assert _state({"state": "RUNNING", "activity": "refused"}) == "RUNNING/refused"
    assert _state({"state": "BACKOFF", "activity": "blocked"}) == "BACKOFF"  # the supervisor's word first


def test_a_connector_reconnecting_for_long_is_a_problem_with_how_long_and_why():
    from zato.cli.cluster import RECONNECTING_PROBLEM, _state, problems
    from zato.coord.status import _child

    def view(seconds: float) -> dict:
        stats = {"state": "reconnecting", "state_since": 1000.0, "updated": 1000.0 + seconds,
                 "last_error": "cannot connect to AMQP broker: timed out"}  # fmt: skip
        child = _child({"name": "amqp-channel:orders", "state": "RUNNING"}, stats)
        return {"servers": [{"live": True}], "lease": {"holder": "s3"}, "children": [child], "errors": []}

    assert problems(view(RECONNECTING_PROBLEM - 1)) == []  # one lost connection coming back
    assert problems(view(45.6)) == [
        "connector amqp-channel:orders on s3 has been reconnecting for 45 s (s3 does not say its"
        " [lease] handover_after: 10 s, the default, assumed), nothing is consumed"
        " or sent meanwhile: cannot connect to AMQP broker: timed out"
    ]
    published = {**view(45.6), "supervisor": {"handover_after": 60.0}}  # the holder's own setting
    assert problems(published) == []
    assert _state(view(45.6)["children"][0]) == "RUNNING/reconnecting 45 s"


def test_a_connector_its_queue_manager_refuses_is_a_problem_at_once_saying_what_to_do():
    from zato.cli.cluster import problems
    from zato.coord.status import _child

    stats = {"state": "refused", "state_since": 1000.0, "updated": 1003.0,
             "last_error": "user 'app' may not get from queue 'Q': grant +get on Q to app"}  # fmt: skip
    child = _child({"name": "ibm-mq-channel:in", "state": "RUNNING"}, stats)
    view = {"servers": [{"live": True}], "lease": {"holder": "s1"}, "children": [child], "errors": []}
    assert problems(view) == [
        "connector ibm-mq-channel:in on s1 is refused by its queue manager (for 3 s), nothing is"
        " consumed or sent meanwhile: user 'app' may not get from queue 'Q': grant +get on Q to app"
    ]


def test_an_amqp_connector_its_broker_refuses_names_the_broker():
    """Before, an AMQP connector whose login the broker refused was said to be refused by its
    queue manager."""
    from zato.cli.cluster import problems
    from zato.coord.status import _child

    stats = {"state": "refused", "state_since": 1000.0, "updated": 1005.0,
             "last_error": "the AMQP broker at h:5672 refuses the login of user 'app'"}  # fmt: skip
    child = _child({"name": "amqp-outgoing:out", "state": "RUNNING"}, stats)
    view = {"servers": [{"live": True}], "lease": {"holder": "s1"}, "children": [child], "errors": []}
    assert problems(view) == [
        "connector amqp-outgoing:out on s1 is refused by its AMQP broker (for 5 s), nothing is"
        " consumed or sent meanwhile: the AMQP broker at h:5672 refuses the login of user 'app'"
    ]


def test_a_running_connector_without_statistics_is_silent_and_only_a_running_one():
    from zato.cli.cluster import _state
    from zato.coord.status import _child

    silent = _child({"name": "amqp-channel:in", "state": "RUNNING", "pid": 7}, {})
    assert (silent["activity"], _state(silent), silent["messages_in"]) == ("silent", "RUNNING/silent", None)
    for state in ("STARTING", "BACKOFF", "FATAL", "STOPPING"):  # no process that should write them
        assert _child({"name": "amqp-channel:in", "state": state}, {})["activity"] is None


def test_a_live_running_server_an_lb_marks_down_or_maint_is_a_problem_a_draining_or_gone_one_not():
    from zato.coord.lb_view import Views, not_serving
    from zato.lb.reconcile import shown
    from zato.lb.runtime import ServerState

    assert shown(ServerState("server1", "", "DOWN", 0, "* L7TOUT")) == "DOWN (last check L7TOUT)"
    assert shown(ServerState("server2", "", "MAINT", 0, "")) == "MAINT"
    down = {
        "server10": "DOWN (last check L4TOUT)",
        "server1": "DOWN (last check L7TOUT)",
        "server2": "MAINT",
        "server4": "DOWN (last check L7STS)",
        "server7": "DOWN (last check L4CON)",
    }
    views = Views(down={"lb1:11223": down})
    servers = [{"name": f"server{i}", "live": True, "state": "running"} for i in (1, 2, 10)]
    servers += [{"name": "server4", "live": True, "state": "draining"}]  # stopping: its checks fail
    servers += [{"name": "server7", "live": False, "state": "gone"}]
    assert not_serving(views, servers) == [
        "server server1 is live but load balancer lb1:11223 marks it DOWN (last check L7TOUT): it sends it"
        " no requests",
        "server server2 is live but load balancer lb1:11223 marks it MAINT: it sends it no requests",
        "server server10 is live but load balancer lb1:11223 marks it DOWN (last check L4TOUT): it sends it"
        " no requests",
    ]
