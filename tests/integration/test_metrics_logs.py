"""/metrics on a real two-worker server, HAProxy's exporter on the LB, and JSON logs (server.log
and http_access.log).

The service answers with its worker's pid: once both workers have served, a total equal to
every request proves the scrape sums the workers, whichever of them answers it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics_lint import documented, exposed_name, problems
from tests.support import free_port, process_table, wait_for, zato

MODULE = """
import os
from zato.service import Service


class Pid(Service):
    name = "test.pid"

    def handle(self):
        self.response.payload = {"pid": os.getpid()}


class Fail(Service):
    name = "test.fail"

    def handle(self):
        raise ValueError("this service always fails")


class Slow(Service):
    name = "test.slow"

    def handle(self):  # says which worker runs it (its pid in the file named), then takes its time
        import time

        with open(self.request.payload["pid_file"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(30)
"""


def samples(url: str) -> dict[tuple, float]:
    """{(name, sorted labels): value} of one scrape (a new connection each time)."""
    text = requests.get(url, timeout=10, headers={"Connection": "close"}).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=1, workers=2, extra_conf={"logging": {"format": "json"}})
    qs.start()
    qs.deploy("pidmod", MODULE)
    base = qs.server_url("server1")
    for name, service in (("pid", "test.pid"), ("fail", "test.fail"), ("slow", "test.slow")):
        r = requests.post(
            f"{base}/zato/admin/channels",
            auth=qs.admin_auth,
            timeout=10,
            json={"name": name, "url_path": f"/test/{name}", "service": service},
        )
        assert r.status_code in (200, 201), r.text
    wait_for(lambda: requests.get(f"{base}/test/pid", timeout=5).ok, 30, what="channel served")
    return qs


def test_metrics_rise_with_traffic_and_sum_all_workers(cluster):
    base = cluster.server_url("server1")
    key = ("zato_rest_channel_requests_total", (("channel", "pid"), ("method", "GET"), ("status", "200")))
    before = samples(base + "/metrics").get(key, 0)
    pids = set()
    sent = 0
    while len(pids) < 2 or sent < 20:
        r = requests.get(base + "/test/pid", timeout=10, headers={"Connection": "close"})
        pids.add(r.json()["pid"])
        sent += 1
        assert sent < 400, "one worker served everything"
    for _ in range(4):  # whichever worker answers the scrape, it counts every worker's requests
        after = samples(base + "/metrics")
        assert after[key] == before + sent
        service = after[("zato_service_invocations_total", (("service", "test.pid"),))]
        assert service >= sent
        assert after[("zato_service_duration_seconds_count", (("service", "test.pid"),))] == service
        assert after[("zato_server_requests_in_flight", ())] == 0
    assert after[("zato_lease_holder", (("server", "server1"),))] == 1
    assert after[("zato_lease_epoch", ())] >= 1
    assert after[("zato_lease_takeovers_total", ())] >= 1
    assert after[("zato_cluster_servers_live", ())] == 1
    assert after[("zato_redis_up", ())] == 1


def test_requests_to_zatos_invoke_endpoints_count_in_the_dashboards_requests_total(cluster):
    """Before: a request to Zato's invoke endpoints (/zato/admin/invoke, /zato/api/invoke/NAME,
    what Zato's own clients call) ran its service, counted in zato_service_invocations_total,
    and in no kind of zato_server_requests_total, which the dashboard's requests/s reads: a
    server serving only Zato's clients read 0 requests/s. Now they count as kind="invoke"."""
    base = cluster.server_url("server1")
    settings = cluster.settings("server1")
    auth = (settings.invoke_username, settings.invoke_password)
    key = ("zato_server_requests_total", (("kind", "invoke"),))
    before = samples(base + "/metrics").get(key, 0)
    for _ in range(3):
        admin = requests.post(base + "/zato/admin/invoke", json={"name": "zato.ping"}, auth=auth, timeout=10)
        api = requests.post(base + "/zato/api/invoke/zato.ping", json={}, auth=auth, timeout=10)
        assert admin.ok and api.ok, (admin.text, api.text)
    assert samples(base + "/metrics").get(key, 0) == before + 6


def test_made_up_methods_are_501_before_the_service_and_one_metric_series(cluster):
    """Before: a channel made without --method ran its service for any method and counted each
    method under its own label: 4,000 made-up methods grew /metrics from 8 KB to 178 KB."""
    base = cluster.server_url("server1")
    other = ("zato_rest_channel_requests_total", (("channel", "pid"), ("method", "other"), ("status", "501")))
    ran = ("zato_service_invocations_total", (("service", "test.pid"),))
    before = samples(base + "/metrics")
    size = len(requests.get(base + "/metrics", timeout=10).content)
    for i in range(200):
        url = (cluster.lb_url if i % 2 else base) + "/test/pid"
        r = requests.request(f"Q{i:08d}", url, timeout=10)
        assert r.status_code == 501, r.text
        env = r.json()["zato_env"]
        assert env["result"] == "ZATO_ERROR" and env["details"].startswith(
            f"method Q{i:08d} is not implemented"
        )
    assert requests.request("TRACE", base + "/test/pid", timeout=10).status_code == 501
    after = samples(base + "/metrics")
    assert after[other] == before.get(other, 0) + 201
    assert after.get(ran, 0) == before.get(ran, 0)  # the service never ran
    methods = {dict(labels).get("method") for _, labels in after}
    assert not any(m and m.startswith("Q") for m in methods), methods
    assert len(requests.get(base + "/metrics", timeout=10).content) < size + 1000


def test_made_up_paths_service_names_and_cids_add_no_series(cluster):
    """A client's made-up values (paths, service names in invoke paths, CIDs, admin calls with
    or without credentials) never become label values: 1,000 of them add at most the one
    series of each `kind` and nothing per value."""
    base = cluster.server_url("server1")
    before = set(samples(base + "/metrics"))
    paths = (
        "/made/up/{}",
        "/test/pid/{}",
        "/zato/api/invoke/{}",
        "/zato/internal/invoke/{}",
        "/zato/internal/invoke-many/{}",
        "/zato/internal/invoke-messages/{}",
        "/zato/admin/{}",
    )
    session = requests.Session()
    for i in range(1000 // len(paths) + 1):
        made_up = f"m{i:05d}x"
        for path in paths:
            session.get(base + path.format(made_up), headers={"X-Zato-CID": made_up}, timeout=10)
        session.post(base + "/zato/admin/invoke", json={"name": made_up}, auth=cluster.admin_auth, timeout=10)
        session.post(base + f"/zato/api/invoke/{made_up}", json={}, auth=cluster.admin_auth, timeout=10)
    after = set(samples(base + "/metrics"))
    values = {v for _, labels in after for _, v in labels}
    assert not any("m0" in v for v in values), sorted(values)
    new = {name for name, _ in after - before}
    # kind="admin"/"internal" at most; the calls without credentials: kind="admin"/"invoke"
    fixed = {"zato_server_requests_total", "zato_server_rejected_credentials_total"}
    assert new <= fixed, sorted(after - before)


def test_haproxy_exporter_needs_the_stats_credentials(cluster):
    url = cluster.lb_url + "/zato-lb-metrics"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(cluster.lb_url + "/metrics", timeout=10).status_code == 403  # servers' own ports only
    from zato.config.settings import load_lb_settings

    lb = load_lb_settings(cluster.lb_dir)
    r = requests.get(url, auth=(lb.stats_username, lb.stats_password), timeout=10)
    assert r.status_code == 200
    assert 'haproxy_server_status{proxy="zato_servers",server="server1"' in r.text


def test_json_logs_parse_line_by_line_with_cid_and_no_secret(cluster):
    base = cluster.server_url("server1")
    failed = requests.get(base + "/test/fail", timeout=10)
    assert failed.status_code == 500
    cid = failed.headers["X-Zato-CID"]
    log = os.path.join(cluster.server_dir("server1"), "logs", "server.log")

    def records() -> list[dict]:
        with open(log) as f:
            return [json.loads(line) for line in f if line.strip()]  # every line is one object

    wait_for(lambda: any(r.get("cid") == cid for r in records()), 10, what="the failure's log record")
    lines = records()
    failure = next(r for r in lines if r.get("cid") == cid)
    assert failure["level"] == "ERROR" and failure["role"] == "worker" and failure["server"] == "server1"
    assert "ValueError: this service always fails" in failure["exc"]
    assert {"arbiter", "worker", "supervisor"} <= {r["role"] for r in lines}
    assert all({"time", "level", "logger", "message", "pid"} <= set(r) for r in lines)
    text = open(log).read()
    settings = cluster.settings("server1")
    assert settings.admin_password not in text and settings.cluster_secret not in text
    access = os.path.join(cluster.server_dir("server1"), "logs", "http_access.log")
    with open(access) as f:
        lines = [json.loads(line) for line in f if line.strip()]  # every line is one object
    answer = next(a for a in lines if a["cid"] == cid)  # the same request, by the same CID
    assert answer["status"] == 500 and answer["target"] == "/test/fail" and answer["method"] == "GET"
    assert answer["bytes"] == len(failed.content) and answer["duration_ms"] > 0 and answer["user"] == "-"
    assert answer["time"].endswith("Z") and answer["remote"] == "127.0.0.1"


def test_every_process_writes_to_a_new_log_once_the_old_one_is_moved_away(cluster, tmp_path):
    """logrotate's default (rename, then a new file): the arbiter, the workers, the connector
    supervisor and a connector all go on in the new server.log, nothing more in the moved one.
    Before, every process kept writing to the renamed file and server.log never came back."""
    logs = os.path.join(cluster.server_dir("server1"), "logs")
    os.rename(os.path.join(logs, "server.log"), os.path.join(logs, "server.log.1"))
    moved_size = os.path.getsize(os.path.join(logs, "server.log.1"))
    os.rename(os.path.join(logs, "http_access.log"), os.path.join(logs, "http_access.log.1"))
    module = tmp_path / "after_rotation.py"
    module.write_text("from zato.service import Service\n\nclass After(Service):\n    name = 'test.after'\n")
    zato("deploy", cluster.path, str(module))  # each worker logs loading it
    pickup = os.path.join(cluster.server_dir("server1"), "pickup", "picked_after.py")
    with open(pickup, "w") as f:  # the arbiter logs deploying it
        f.write("from zato.service import Service\n\nclass Picked(Service):\n    name = 'test.picked'\n")
    zato("conn", "create", "zmq-channel", cluster.path, "--name", "rot", "--address",
         f"@tcp://127.0.0.1:{free_port()}", "--service", "test.pid")  # fmt: skip
    new_log = os.path.join(logs, "server.log")

    def roles() -> set[str]:
        if not os.path.exists(new_log):
            return set()
        with open(new_log) as f:
            return {json.loads(line)["role"] for line in f if line.strip()}

    try:
        wait_for(
            lambda: {"arbiter", "worker", "supervisor", "connector"} <= roles(),
            30,
            what="every role in the new server.log",
        )
        with open(new_log) as f:
            pids = {r["pid"] for r in map(json.loads, f) if r["role"] == "worker"}
        assert len(pids) == 2  # both workers
        assert os.path.getsize(os.path.join(logs, "server.log.1")) == moved_size

        # The access log is checked once a second: within it, lines go on in the moved file
        def access_cids(name: str) -> set[str]:
            with open(os.path.join(logs, name)) as f:
                return {json.loads(line)["cid"] for line in f}

        def pid_cid() -> str:
            url = cluster.server_url("server1") + "/test/pid"
            return requests.get(url, timeout=10, headers={"Connection": "close"}).headers["X-Zato-CID"]

        time.sleep(1.1)  # every worker's check is due: its next line opens the new file
        moved = access_cids("http_access.log.1")
        later = {pid_cid() for _ in range(10)}
        assert later <= access_cids("http_access.log") and not later & moved
    finally:
        zato("conn", "delete", "zmq-channel", cluster.path, "--name", "rot")


DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "metrics.md")
# HAProxy's own names that break the conventions (docs/metrics.md, HAProxy)
HAPROXY_OWN = frozenset(("haproxy_process_failed_resolutions", "haproxy_process_idle_time_percent"))


def test_every_metric_parses_follows_prometheus_conventions_and_is_documented(cluster):
    """Every family the server and the LB expose parses with prometheus_client's parser and
    passes promtool's naming rules; each of ours is in docs/metrics.md with its type."""
    base = cluster.server_url("server1")
    for path in ("/test/pid", "/test/fail", "/zato/admin/channels"):  # every per-server family has a value
        requests.get(base + path, timeout=10, auth=cluster.admin_auth)
    host, port = base.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # a client gone mid-body
        s.sendall(b"POST /zato/internal/invoke/x HTTP/1.1\r\nX-Zato-Epoch: 1\r\nContent-Length: 9\r\n\r\n{")
    gone = "zato_server_clients_gone_total"
    wait_for(lambda: gone in requests.get(base + "/metrics", timeout=10).text, 10, what=gone)
    text = requests.get(base + "/metrics", timeout=10).text
    assert problems(text) == []
    exposed = {exposed_name(f): f.type for f in text_string_to_metric_families(text)}
    assert exposed == {name: kind for name, (kind, _) in documented(DOCS).items()}
    from zato.config.settings import load_lb_settings

    lb = load_lb_settings(cluster.lb_dir)
    url = cluster.lb_url + "/zato-lb-metrics"
    lb_text = requests.get(url, auth=(lb.stats_username, lb.stats_password), timeout=10).text
    assert problems(lb_text, allowed=HAPROXY_OWN) == []
    assert {f.name for f in text_string_to_metric_families(lb_text)} >= HAPROXY_OWN  # still HAProxy's


def _workers(cluster) -> set[int]:  # noqa: ANN001
    arbiter = cluster.pid("server1")
    return {pid for pid, ppid, cmd in process_table() if ppid == arbiter and b"worker" in cmd}


def test_a_worker_killed_mid_request_keeps_what_it_counted_and_nothing_is_counted_twice(cluster, tmp_path):
    """Multiprocess mode: a SIGKILLed worker's counts stay in the scrape's totals, its
    replacement starts its own, and the request it was serving is no longer in flight."""
    base = cluster.server_url("server1")
    key = ("zato_rest_channel_requests_total", (("channel", "pid"), ("method", "GET"), ("status", "200")))
    in_flight = ("zato_server_requests_in_flight", ())
    before = samples(base + "/metrics").get(key, 0)
    served: dict[int, int] = {}
    while len(served) < 2:  # both workers count some
        pid = requests.get(base + "/test/pid", timeout=10, headers={"Connection": "close"}).json()["pid"]
        served[pid] = served.get(pid, 0) + 1
    sent = sum(served.values())
    pid_file = tmp_path / "slow.pid"
    slow = threading.Thread(
        target=_ignored, args=(base + "/test/slow", {"pid_file": str(pid_file)}), daemon=True
    )
    slow.start()
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the slow request running")
    assert samples(base + "/metrics")[in_flight] == 1
    victim = int(pid_file.read_text())
    assert victim in served and victim in _workers(cluster)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(_workers(cluster) - {victim}) == 2, what="the replacement worker")
    for _ in range(6):  # whichever worker answers: the dead one's counts once, nothing in flight
        after = samples(base + "/metrics")
        assert after[key] == before + sent
        assert after[in_flight] == 0
    slow.join(10)


def _ignored(url: str, body: dict) -> None:
    with contextlib.suppress(requests.RequestException):  # its worker was killed: no answer
        requests.post(url, json=body, timeout=40)
