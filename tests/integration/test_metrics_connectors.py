"""What an operator reads of a quickstart-like cluster (two servers, the LB, the dashboard, an
AMQP channel and two AMQP outgoing connections on RabbitMQ, one of them with a password the
broker refuses so its messages wait) is the same in every view: each server's /metrics, the
labels docs/metrics.md gives, the dashboard's and `zato cluster status`'s numbers for the same
things. (Refused, not a broker away: a holder whose connector reconnects for 10 s hands the
lease over, and every connector's counters start again on the next holder.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import uuid

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conn_support import Rabbit, services_source
from tests.integration.test_dashboard import browser, login, needs_browser, row  # noqa: F401 - browser: a fixture
from tests.metrics_lint import documented_labels, exposed_name
from tests.support import REDIS_URL, process_table, wait_for, zato
from zato.coord.keys import Keys
from zato.coord.lease import read_supervisor_status
from zato.odb.connectors import CONNECTOR_KINDS

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "metrics.md")

SENDER = """
from zato.service import Service


class SendTo(Service):
    name = "ops.send-to"

    def handle(self):
        for item in self.request.payload["items"]:
            self.outgoing.amqp.send(item, self.request.payload["to"])
"""

Series = dict[tuple[str, tuple], float]  # (documented name, sorted labels) -> value


def scrape(url: str) -> tuple[Series, dict[str, str]]:
    """({(family, labels): value}, {family: type}) of one /metrics answer; a histogram's
    samples under their own names."""
    text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
    series: Series = {}
    types = {}
    for family in text_string_to_metric_families(text):
        name = exposed_name(family)
        types[name] = family.type
        for s in family.samples:
            key = name if family.type != "histogram" else s.name
            series[(key, tuple(sorted(s.labels.items())))] = s.value
    return series, types


def of(series: Series, name: str, **match: str) -> dict[tuple, float]:
    """The samples of `name` whose labels include `match`."""
    return {
        labels: value
        for (n, labels), value in series.items()
        if n == name and match.items() <= dict(labels).items()
    }


def _children(qs) -> set[str]:  # noqa: ANN001
    """The connectors the holder's supervisor runs now (its status in Redis)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return {c["name"] for c in (read_supervisor_status(client, qs.cluster) or {}).get("children", [])}
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster(module_quickstart, tmp_path_factory):
    qs = module_quickstart(servers=2, extra_conf={"main": {"connector_hang_after": 0}})  # stopped, not killed
    qs.start()
    qs.start("dashboard")
    folder = tmp_path_factory.mktemp("mod")
    (folder / "conn_services.py").write_text(services_source())
    (folder / "ops_sender.py").write_text(SENDER)
    zato("deploy", qs.path, str(folder / "conn_services.py"))
    zato("deploy", qs.path, str(folder / "ops_sender.py"))
    rabbit = Rabbit()
    qs.queue_in = rabbit.queue(f"zt-ov-in-{uuid.uuid4().hex[:8]}")
    qs.queue_out = rabbit.queue(f"zt-ov-out-{uuid.uuid4().hex[:8]}")
    create = ("conn", "create")
    try:
        zato(*create, "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        zato(
            *create,
            "amqp-def",
            qs.path,
            "--name",
            "refused",
            "--password",
            "not-guests-password",
        )
        zato(*create, "amqp-channel", qs.path, "--name", "in", "--def", "rabbit", "--queue", qs.queue_in,
             "--service", "conn.record")  # fmt: skip
        zato(
            *create,
            "amqp-outgoing",
            qs.path,
            "--name",
            "out",
            "--def",
            "rabbit",
            "--routing-key",
            qs.queue_out,
        )
        zato(*create, "amqp-outgoing", qs.path, "--name", "stuck", "--def", "refused", "--routing-key", "x")
        zato("channel", "create", qs.path, "--name", "send-to", "--url-path", "/ops/send-to",
             "--service", "ops.send-to")  # fmt: skip
        send = qs.lb_url + "/ops/send-to"
        wait_for(
            lambda: requests.post(send, json={"to": "out", "items": []}, timeout=10).ok, 30, what="channel"
        )
        for to, n in (("out", 5), ("stuck", 3)):  # through the LB: both servers' workers send
            for i in range(n):
                assert requests.post(send, json={"to": to, "items": [{"i": i}]}, timeout=10).ok
        for i in range(7):
            rabbit.publish(qs.queue_in, f'{{"i": {i}}}')
        yield qs
    finally:  # the channel's connector stopped first: running, it would declare its queues again
        zato("conn", "delete", "amqp-channel", qs.path, "--name", "in", check=False)
        wait_for(lambda: "amqp-channel:in" not in _children(qs), 30, what="the channel's connector stopped")
        rabbit.close()


def settled(qs) -> Series:  # noqa: ANN001
    """server1's scrape once the traffic sent in the fixture shows in the connectors' counters."""

    def done() -> Series | None:
        series, _ = scrape(qs.server_url("server1"))
        taken = of(series, "zato_connector_messages_in_total", connector="amqp-channel:in")
        sent = of(series, "zato_connector_messages_out_total", connector="amqp-outgoing:out")
        stuck = of(series, "zato_outgoing_queue_depth", connection="stuck")  # its broker refuses it
        waiting = sum(v for labels, v in stuck.items() if dict(labels)["list"] != "parked")
        ok = list(taken.values()) == [7] and list(sent.values()) == [5] and waiting == 3
        return series if ok else None

    return wait_for(done, 60, interval=0.5, what="the connectors' counters showing the traffic")


def test_outgoing_queue_depth_joins_the_connector_metrics_on_connector_and_kind(cluster):
    """Before: zato_outgoing_queue_depth said kind="amqp" and connection="out" where every
    connector metric says kind="amqp-outgoing" and connector="amqp-outgoing:out", so no PromQL
    join (`... * on (connector, kind) ...`) matched a queue with its connector's state."""
    series = settled(cluster)
    depth = of(series, "zato_outgoing_queue_depth")
    running = {
        (dict(labels)["connector"], dict(labels)["kind"])
        for labels in of(series, "zato_connector_state", state="RUNNING")
    }
    joined = {(dict(labels).get("connector"), dict(labels)["kind"]) for labels in depth}
    assert joined == {("amqp-outgoing:out", "amqp-outgoing"), ("amqp-outgoing:stuck", "amqp-outgoing")}
    assert joined <= running  # every queue has its connector's state, on (connector, kind)
    for labels in depth:  # and its connection's name, as before
        assert dict(labels)["connection"] == dict(labels)["connector"].partition(":")[2]
    # Every series with a connector: its kind is the connector's own, one of the documented ones
    with open(DOCS) as f:
        docs = f.read()
    for (name, labels), _ in series.items():
        found = dict(labels)
        if "connector" in found:
            assert found["kind"] == found["connector"].partition(":")[0], (name, found)
            assert found["kind"] in CONNECTOR_KINDS and f"`{found['kind']}`" in docs, (name, found)


def _client_gone(url: str) -> None:
    """A request whose client leaves before its whole body arrived (zato_server_clients_gone_total)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /zato/internal/invoke/x HTTP/1.1\r\nX-Zato-Epoch: 1\r\nContent-Length: 9\r\n\r\n{")


def test_every_series_has_the_labels_and_label_values_the_docs_give(cluster):
    """Each family both servers expose carries exactly the labels of its row in docs/metrics.md,
    and a label whose values the row lists takes no other value."""
    settled(cluster)
    docs = documented_labels(DOCS)
    for server in cluster.server_names:
        url = cluster.server_url(server)
        requests.get(
            url + "/zato/admin/channels", auth=("admin", "wrong"), timeout=10
        )  # a rejected credential
        _client_gone(url)
        wait_for(
            lambda url=url: of(scrape(url)[0], "zato_server_clients_gone_total"),
            15,
            what="a client gone counted",
        )
        series, types = scrape(url)
        assert set(types) == set(docs), f"exposed but undocumented or documented but not exposed on {server}"
        for name, labels in docs.items():
            mine = (
                (name,)
                if types[name] != "histogram"
                else tuple(name + x for x in ("_bucket", "_sum", "_count"))
            )
            samples = [dict(found) for n, found in series if n in mine]
            assert samples, f"{name}: no sample on {server}"
            for found in samples:
                found.pop("le", None)  # a histogram's buckets
                assert set(found) == set(labels), (server, name, found)
                for label, values in labels.items():
                    assert values is None or found[label] in values, (server, name, found)


def test_requests_total_leaves_out_health_checks_and_scrapes_as_its_help_says(cluster):
    """Before: zato_server_requests_total's HELP (what Grafana and Prometheus show of it) said
    "every path", where health checks and scrapes are not counted (docs/metrics.md): the
    number looked short of what the LB and a load test sent."""
    settled(cluster)
    url = cluster.server_url("server2")
    text = requests.get(url + "/metrics", timeout=10).text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "zato_server_requests")
    assert family.documentation == "HTTP requests served, by kind (health checks and scrapes are not counted)"
    before = of(scrape(url)[0], "zato_server_requests_total")
    for path in ("/zato/ping", "/zato/ready", "/metrics") * 5:
        assert requests.get(url + path, timeout=10).status_code == 200
    assert of(scrape(url)[0], "zato_server_requests_total") == before


def test_cluster_status_says_what_waits_to_go_out_as_the_metrics_count_it(cluster):
    """Before: `zato cluster status` said nothing of an active outgoing connection's messages
    yet to go out (only an inactive one's), where /metrics and the dashboard count them: its
    connectors' table has a WAITING column now, and --json each connector's `waiting`."""
    series = settled(cluster)
    depth = of(series, "zato_outgoing_queue_depth", connector="amqp-outgoing:stuck")
    assert sum(v for labels, v in depth.items() if dict(labels)["list"] != "parked") == 3
    lines = zato("cluster", "status", cluster.path, check=False).stdout.splitlines()
    header = next(line for line in lines if line.startswith("NAME "))
    column = header.index("WAITING")  # by position: a state may read "RUNNING/refused 12 s"
    rows = {line.split()[0]: line for line in lines if line.startswith(("amqp-channel:", "amqp-outgoing:"))}
    shown = [
        rows[name][column:].split()[0]
        for name in ("amqp-outgoing:stuck", "amqp-outgoing:out", "amqp-channel:in")
    ]
    assert shown == ["3", "0", "-"], "\n".join(lines)
    data = json.loads(zato("cluster", "status", cluster.path, "--json", check=False).stdout)
    assert {c["name"]: c["waiting"] for c in data["children"]} == {
        "amqp-outgoing:stuck": 3,
        "amqp-outgoing:out": 0,
        "amqp-channel:in": None,
    }


COUNTERS = {
    "restarts": "zato_connector_restarts_total",
    "messages_in": "zato_connector_messages_in_total",
    "messages_out": "zato_connector_messages_out_total",
    "failures": "zato_connector_failures_total",
    "parked": "zato_connector_parked_total",
}


def differences(qs, op) -> list[str]:  # noqa: ANN001 - a Quickstart, an Operator
    """Where the dashboard's state and server1's /metrics, read now, disagree (one line each).
    A series /metrics leaves out is None, as the dashboard shows a number it has not ("-")."""
    series, _ = scrape(qs.server_url("server1"))
    state = op.state()
    out = []

    def same(what: str, shown: object, metric: object) -> None:
        if shown != metric:
            out.append(f"{what}: the dashboard shows {shown!r}, /metrics {metric!r}")

    def total(name: str, **labels: str) -> float | None:
        found = of(series, name, **labels)
        return sum(found.values()) if found else None

    live = [s["name"] for s in state["servers"] if s["live"]]
    same("live servers", len(live), total("zato_cluster_servers_live"))
    holders = [dict(labels)["server"] for labels in of(series, "zato_lease_holder")]
    same("lease holder", [state["lease"]["holder"]] if state["lease"]["holder"] else [], holders)
    same("takeovers", len(state["takeovers"]), total("zato_lease_takeovers_total"))
    for which in ("queued", "parked"):
        same(f"async {which}", state["async"][which], total("zato_async_calls", list=which))
    for c in state["connectors"]:
        labels = {"connector": c["name"], "kind": c["kind"]}
        metric_state = [dict(k)["state"] for k in of(series, "zato_connector_state", **labels)]
        same(f"{c['name']} state", [c["state"]] if c["state"] != "INACTIVE" else [], metric_state)
        for key, name in COUNTERS.items():
            same(f"{c['name']} {key}", c.get(key), total(name, **labels))
        if c["kind"].endswith("-outgoing"):
            depth = {dict(k)["list"]: v for k, v in of(series, "zato_outgoing_queue_depth", **labels).items()}
            yet = depth.get("waiting", 0) + depth.get("processing", 0) if depth else None
            same(f"{c['name']} waiting", c.get("waiting"), yet)
            same(f"{c['name']} parked now", c["parked_now"], depth.get("parked"))
        else:
            same(f"{c['name']} parked now", c["parked_now"], total("zato_channel_parking_queue", **labels))
    # an inactive connection holding messages has a row (INACTIVE) and no connector series
    shown = {c["name"] for c in state["connectors"] if c["state"] != "INACTIVE"}
    same("connectors", shown, {dict(k)["connector"] for k in of(series, "zato_connector_state")})
    return out


def agreeing(qs, op, what: str) -> None:  # noqa: ANN001 - a Quickstart, an Operator
    """Wait until the dashboard and /metrics agree (the page refreshes twice a second, a
    connector's stats once a second); the last differences as the error if they never do."""
    last: list[list[str]] = []

    def agree() -> bool:
        last.append(differences(qs, op))
        return not last[-1]

    try:
        wait_for(agree, 30, interval=0.5, what=what)
    except AssertionError:
        raise AssertionError(f"{what}:\n" + "\n".join(last[-1])) from None


def test_the_dashboard_shows_the_numbers_the_metrics_show(cluster):
    """The dashboard's servers, lease holder, takeovers, invoke_async calls and, for each
    connector, its state, counters, messages parked now and (outgoing) waiting to go out are
    the values of /metrics for the same things. Before, the dashboard showed no messages
    waiting to go out: an outgoing connection its broker refuses kept them in Redis, in
    zato_outgoing_queue_depth, and its row said nothing of them."""
    from tests.integration.test_dashboard import Operator

    settled(cluster)
    op = Operator(f"http://127.0.0.1:{cluster.dashboard_port}/", *cluster.admin_auth)
    agreeing(cluster, op, "the dashboard and /metrics agreeing")
    state = op.state()
    stuck = next(c for c in state["connectors"] if c["name"] == "amqp-outgoing:stuck")
    assert stuck["waiting"] == 3  # what the page's "waiting" column shows
    assert stuck["activity"] == "refused" and len(state["takeovers"]) == 1  # the lease stayed put


@needs_browser
def test_the_page_shows_what_waits_to_go_out_as_the_metrics_count_it(cluster, browser):  # noqa: F811 - the fixture
    """In a real browser, the connectors' table has a "waiting" column: the outgoing connection
    its broker refuses shows its 3 messages, the one that sent everything 0, the channel none;
    /metrics says the same (waiting and processing lists)."""
    series = settled(cluster)
    browser.get(f"http://127.0.0.1:{cluster.dashboard_port}/")
    login(browser, *cluster.admin_auth)

    def waiting(connector: str) -> str | None:
        return row(browser, "connectors", connector).get("waiting")

    wait_for(lambda: waiting("amqp-outgoing:stuck") == "3", 30, what="the page showing 3 waiting")
    assert waiting("amqp-outgoing:out") == "0" and waiting("amqp-channel:in") == "-"
    depth = of(series, "zato_outgoing_queue_depth", connector="amqp-outgoing:stuck")
    assert sum(v for labels, v in depth.items() if dict(labels)["list"] != "parked") == 3


def test_a_message_parked_by_an_outgoing_connection_is_said_alike_everywhere(cluster):
    """A message in an outgoing connection's parked list in Redis: /metrics (list="parked"), the
    dashboard's "parked now" and `zato cluster status` (--json `parked_now`, and a line saying
    how to send it again) say 1. Before, `zato cluster status` said nothing of it: its PARKED
    column is what the process parked since it started (0 here)."""
    from tests.integration.test_dashboard import Operator
    from zato.coord.client import connect
    from zato.coord.queues import OutQueue

    settled(cluster)
    queue = OutQueue(connect(cluster.settings("server1").redis), cluster.cluster, "amqp", "out")
    queue.client.lpush(queue.parked, '{"body": "refused"}')
    try:
        op = Operator(f"http://127.0.0.1:{cluster.dashboard_port}/", *cluster.admin_auth)
        agreeing(cluster, op, "the dashboard and /metrics agreeing on the parked message")
        series, _ = scrape(cluster.server_url("server1"))
        assert list(
            of(series, "zato_outgoing_queue_depth", connector="amqp-outgoing:out", list="parked").values()
        ) == [1]
        data = json.loads(zato("cluster", "status", cluster.path, "--json", check=False).stdout)
        out = next(c for c in data["children"] if c["name"] == "amqp-outgoing:out")
        assert (out["parked_now"], out["parked"]) == (1, 0)
        said = zato("cluster", "status", cluster.path, check=False).stdout
        # the table says which is which, as the dashboard's "parked since start" and "parked now";
        # before, its one PARKED column said 0 with a message parked
        assert _cells(said, "amqp-outgoing:out", "PARKED-SINCE-START", "PARKED-NOW") == ["0", "1"], said
        assert (
            "  amqp-outgoing:out: 1 message(s) in its parked list in Redis (refused by its broker or queue"
            " manager, whatever restarted meanwhile); once the cause is mended: zato conn replay-parked"
            " amqp-outgoing DIR --name out"
        ) in said, said
    finally:
        queue.client.delete(queue.parked)
        queue.client.close()


def test_a_connector_stopped_past_its_statistics_ttl_is_silent_and_its_counters_do_not_drop_to_0(cluster):
    """Before: a connector process stopped (SIGSTOP) or hung writes no statistics, and they
    expire after 10 s while its supervisor still says RUNNING: `zato cluster status` said
    RUNNING (no problem), the dashboard RUNNING in green, and /metrics said its counters were 0
    (zato_connector_messages_in_total 7, then 0, then 7 again once it went on: Prometheus takes
    the 0 for a reset, so increase() and rate() counted the 7 again, and an alert on
    increase(zato_connector_parked_total) fired for messages parked long before). Now it reads
    RUNNING/silent with a problem line, zato_connector_activity says "silent", and its counters
    have no sample while they are unknown."""
    from tests.integration.test_dashboard import Operator

    settled(cluster)
    name = "amqp-channel:in"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        doc = read_supervisor_status(client, cluster.cluster) or {}
        pid = next(c["pid"] for c in doc.get("children", []) if c["name"] == name)
        holder, stats = doc["server"], Keys(cluster.cluster).connector_stats(name)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: not client.exists(stats), 30, interval=0.5, what="its statistics expired")
            series, _ = scrape(cluster.server_url("server1"))
            assert of(series, "zato_connector_messages_in_total", connector=name) == {}
            assert of(series, "zato_connector_activity", connector=name) == {
                (("activity", "silent"), ("connector", name), ("kind", "amqp-channel")): 1
            }
            said = zato("cluster", "status", cluster.path, check=False)
            assert said.returncode == 3 and _cells(said.stdout, name, "STATE") == ["RUNNING/silent"], (
                said.stdout
            )
            assert (
                f"problem: connector {name} on {holder} (pid {pid}) is RUNNING but silent: it has written no"
                " statistics for 10 s or more (stopped or hung?), so nothing may be consumed or sent;"
                f" {holder} kills and restarts it after its [main] connector_hang_after"
            ) in said.stdout.splitlines(), said.stdout
            op = Operator(f"http://127.0.0.1:{cluster.dashboard_port}/", *cluster.admin_auth)
            agreeing(cluster, op, "the dashboard and /metrics agreeing on a silent connector")
            row = next(c for c in op.state()["connectors"] if c["name"] == name)
            assert (row["state"], row["activity"], row["messages_in"]) == ("RUNNING", "silent", None)
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        client.close()

    def taken() -> list[float]:
        return list(of(scrape(cluster.server_url("server1"))[0], "zato_connector_messages_in_total",
                       connector=name).values())  # fmt: skip

    wait_for(lambda: taken() == [7], 30, interval=0.5, what="its counter back at 7, never reset")


def _cells(status: str, connector: str, *columns: str) -> list[str | None]:
    """The cells of `columns` in the row of `connector` of `zato cluster status`'s table."""
    lines = status.splitlines()
    header = next(line for line in lines if line.startswith("NAME "))
    row = next(line for line in lines if line.startswith(connector + " "))
    return [row[header.index(c) :].split()[0] if f" {c} " in header else None for c in columns]


def _supervisors(qs) -> list[int]:  # noqa: ANN001
    """The connector supervisor of each server (a child of its arbiter)."""
    arbiters = {qs.pid(name) for name in qs.server_names}
    return [pid for pid, ppid, cmd in process_table() if ppid in arbiters and b"supervisor" in cmd]


def test_while_no_server_holds_the_lease_the_dashboard_lists_the_connectors_not_running(cluster):
    """Before: while no server held the lease (a takeover under way; here both supervisors
    stopped, so the lease lapses) /metrics said each active connector NOT_RUNNING and the
    dashboard's Connectors table was empty, as if the cluster had none. Now the page lists each
    NOT_RUNNING, saying why, with the numbers /metrics has for it; once a server holds the lease
    again they are RUNNING on both."""
    from tests.integration.test_dashboard import Operator

    settled(cluster)
    op = Operator(f"http://127.0.0.1:{cluster.dashboard_port}/", *cluster.admin_auth)
    names = {"amqp-channel:in", "amqp-outgoing:out", "amqp-outgoing:stuck"}
    stopped = wait_for(
        lambda: len(found := _supervisors(cluster)) == 2 and found, 30, what="both supervisors"
    )
    assert isinstance(stopped, list)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not op.state()["lease"]["holder"], 30, what="the lease lapsed")
        agreeing(cluster, op, "the dashboard and /metrics agreeing while no server holds the lease")
        rows = {c["name"]: c for c in op.state()["connectors"]}
        assert set(rows) == names
        assert {(c["state"], c["last_error"]) for c in rows.values()} == {
            ("NOT_RUNNING", "no server holds the lease to run it")
        }
        assert rows["amqp-outgoing:stuck"]["waiting"] == 3  # what waits is still said
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def running() -> bool:
        shown = {c["name"]: c["state"] for c in op.state()["connectors"]}
        return shown == dict.fromkeys(names, "RUNNING")

    wait_for(running, 90, interval=0.5, what="every connector running again")
    agreeing(cluster, op, "the dashboard and /metrics agreeing once a server holds the lease again")


def test_an_inactive_connection_holding_messages_has_a_row_on_the_dashboard(cluster):
    """Before: an outgoing connection made inactive while messages waited for it (`zato conn
    edit ... --active false`, to pause sending) was on no row of the page, so what waited was
    shown nowhere there, while /metrics (zato_outgoing_queue_depth) and `zato cluster status`
    ('... 3 message(s) waiting; the connection is inactive') said it. Now a row in state
    INACTIVE has its waiting messages and says how to send them."""
    from tests.integration.test_dashboard import Operator

    def stuck_waiting() -> float:  # not settled(): a takeover before this test zeroed the counters
        depth = of(scrape(cluster.server_url("server1"))[0], "zato_outgoing_queue_depth", connection="stuck")
        return sum(v for labels, v in depth.items() if dict(labels)["list"] != "parked")

    wait_for(lambda: stuck_waiting() == 3, 60, interval=0.5, what="3 messages waiting for stuck")
    op = Operator(f"http://127.0.0.1:{cluster.dashboard_port}/", *cluster.admin_auth)
    edit = ("conn", "edit", "amqp-outgoing", cluster.path, "--name", "stuck", "--wait", "60")
    zato(*edit, "--active", "false")
    try:

        def inactive() -> dict | None:
            rows = {c["name"]: c for c in op.state()["connectors"]}
            found = rows.get("amqp-outgoing:stuck")
            return found if found and found["state"] == "INACTIVE" else None

        row = wait_for(inactive, 30, interval=0.5, what="the inactive connection's row")
        assert isinstance(row, dict)
        assert (row["waiting"], row["parked_now"]) == (3, 0)
        assert row["last_error"] == (
            "the connection is inactive: its messages go out once it is active again"
            " (zato conn edit amqp-outgoing DIR --name stuck --active true)"
        )
        agreeing(cluster, op, "the dashboard and /metrics agreeing on the inactive connection")
    finally:
        # no --wait: its broker refuses the login, so it runs but never connects (--wait says so)
        zato(*edit[:-2], "--active", "true")
    wait_for(lambda: "amqp-outgoing:stuck" in _children(cluster), 60, what="the connection running again")


def test_a_live_server_whose_metrics_do_not_answer_is_said_on_the_dashboard(cluster):
    """Before: a server whose workers hang (here stopped) while its supervisor renews its
    membership read "live" on the dashboard with a blank requests/s, and nothing said why. Now
    its error bar says its /metrics did not answer, and that the LB marks it DOWN (as the LB
    reports it in Redis: also on a dashboard of another host); the lines go once they answer."""
    from tests.integration.test_dashboard import Operator

    op = Operator(f"http://127.0.0.1:{cluster.dashboard_port}/", *cluster.admin_auth)
    arbiter = cluster.pid("server2")
    workers = [pid for pid, ppid, cmd in process_table() if ppid == arbiter and b"worker" in cmd]
    assert workers
    url = cluster.server_url("server2") + "/metrics"
    line = f"server server2: its {url} did not answer within 0.5 s, so its requests/s are not shown"
    lb_id = f"{socket.gethostname()}:{cluster.lb_port}"
    down = f"server server2 is live but load balancer {lb_id} marks it DOWN (last check L7TOUT)"

    def said() -> list[str]:
        return [e for e in op.state()["errors"] if e.startswith((line, down))]

    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: len(said()) == 2, 20, interval=0.5, what=f"the dashboard saying {line!r} and {down!r}"
        )
        server2 = next(s for s in op.state()["servers"] if s["name"] == "server2")
        assert (server2["live"], server2["rps"]) == (True, None)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not said(), 30, interval=0.5, what="the line gone once its workers answer")
