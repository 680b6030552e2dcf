"""/metrics as a scraper sees it on a real two-worker server: the format it asks for, and
totals that hold while workers are killed and re-forked, with a bounded metrics folder."""

from __future__ import annotations

import os
import re
import signal

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.support import cluster_name, free_port, process_table, wait_for, zato

MODULE = """
import os
from zato.service import Service


class Pid(Service):
    name = "test.metrics.pid"

    def handle(self):
        self.response.payload = {"pid": os.getpid()}
"""

# What Prometheus 3 sends when it scrapes (scrape_protocols' default order).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
REQUESTS = ("zato_server_requests_total", (("kind", "channel"),))
INVOKED = ("zato_service_invocations_total", (("service", "test.metrics.pid"),))
TIMED = ("zato_service_duration_seconds_count", (("service", "test.metrics.pid"),))


@pytest.fixture(scope="module")
def server(module_quickstart):
    qs = module_quickstart(servers=1, workers=2, cluster=cluster_name("metrics"))
    qs.start()
    qs.deploy("metricsmod", MODULE)
    base = qs.server_url("server1")
    r = requests.post(
        f"{base}/zato/admin/channels",
        auth=qs.admin_auth,
        timeout=10,
        json={"name": "pid", "url_path": "/test/pid", "service": "test.metrics.pid"},
    )
    assert r.status_code in (200, 201), r.text
    wait_for(lambda: requests.get(f"{base}/test/pid", timeout=5).ok, 30, what="channel served")
    return qs


def _samples(families) -> dict[tuple, float]:  # noqa: ANN001
    out = {}
    for family in families:
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(base: str) -> dict[tuple, float]:
    text = requests.get(base + "/metrics", timeout=10, headers={"Connection": "close"}).text
    return _samples(text_string_to_metric_families(text))


def _workers(qs) -> set[int]:  # noqa: ANN001
    arbiter = qs.pid("server1")
    return {pid for pid, ppid, cmd in process_table() if ppid == arbiter and b"worker" in cmd}


def _metrics_dir(qs) -> str:  # noqa: ANN001
    return os.path.join(qs.server_dir("server1"), "work", "metrics")


def _file_pids(qs) -> set[int]:  # noqa: ANN001
    """The pids of the metrics files in the folder (counter_PID.db, gauge_livesum_PID.db...)."""
    names = os.listdir(_metrics_dir(qs))
    return {int(m.group(1)) for m in map(re.compile(r".*_(\d+)\.db$").match, names) if m}


def test_prometheus_gets_openmetrics_that_parses_and_ends_with_eof(server):
    """Before: every scrape was Prometheus' text format 0.0.4 whatever the scraper asked for."""
    base = server.server_url("server1")
    requests.get(base + "/test/pid", timeout=10)
    r = requests.get(base + "/metrics", timeout=10, headers={"Accept": PROMETHEUS_ACCEPT})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0"), r.headers
    assert r.text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(r.text)}  # raises on anything malformed
    assert families["zato_server_requests"].type == "counter"
    assert families["zato_service_duration_seconds"].type == "histogram"
    assert families["zato_lease_takeovers"].type == "counter"
    assert _samples(families.values())[REQUESTS] >= 1

    plain = requests.get(base + "/metrics", timeout=10)  # no Accept: Prometheus' text format
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4"), plain.headers
    assert "# EOF" not in plain.text
    assert {f.name for f in text_string_to_metric_families(plain.text)} >= {"zato_server_requests"}


def test_killed_workers_keep_their_counts_and_leave_no_files_behind(server):
    """A worker killed 6 times: every scrape's totals hold what the killed workers counted
    (a counter never goes back) and the metrics folder keeps files of the live workers only.
    Before: each killed worker left its counter and histogram files, read by every scrape."""
    base = server.server_url("server1")
    sent = 0
    before = scrape(base)
    for round_ in range(6):
        served: dict[int, int] = {}
        while len(served) < 2:  # both workers count some, the one to be killed included
            r = requests.get(base + "/test/pid", timeout=10, headers={"Connection": "close"})
            served[r.json()["pid"]] = served.get(r.json()["pid"], 0) + 1
            sent += 1
            assert len(served) == 2 or sum(served.values()) < 400, "one worker served everything"
        live = _workers(server)
        victim = sorted(served)[round_ % 2]
        assert victim in live
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda v=victim: len(_workers(server) - {v}) == 2, what="the replacement worker")
        gone = f"the files of killed worker {victim} gone"
        wait_for(lambda v=victim: v not in _file_pids(server), 10, what=gone)
        for _ in range(4):  # whichever worker answers: every request once, killed workers' included
            after = scrape(base)
            assert after[REQUESTS] == before.get(REQUESTS, 0) + sent
            assert after[INVOKED] == before.get(INVOKED, 0) + sent
            assert after[TIMED] == after[INVOKED]
    assert _file_pids(server) <= _workers(server)
    r = requests.get(base + "/metrics", timeout=10, headers={"Accept": PROMETHEUS_ACCEPT})
    assert _samples(openmetrics_families(r.text))[REQUESTS] == before.get(REQUESTS, 0) + sent


def _supervisor(qs) -> int | None:  # noqa: ANN001
    arbiter = qs.pid("server1")
    found = [pid for pid, ppid, cmd in process_table() if ppid == arbiter and b"supervisor" in cmd]
    return found[0] if found else None


def _connector_states(base: str, name: str) -> dict[tuple[str, str], float]:
    """{(kind, state): value} of zato_connector_state for connector `name` in one scrape."""
    return {
        (dict(labels)["kind"], dict(labels)["state"]): value
        for (sample, labels), value in scrape(base).items()
        if sample == "zato_connector_state" and dict(labels)["connector"] == name
    }


def test_a_connector_keeps_its_state_series_while_no_server_holds_the_lease(server):
    """Before: while no server held the lease (a takeover under way) every connector series was
    gone, so `zato_connector_state{state!="RUNNING"}` said nothing. Now each active connector of
    the ODB is there, NOT_RUNNING. The lease is left to lapse by stopping the only supervisor."""
    base = server.server_url("server1")
    name = "zmq-channel:scraped"
    address = f"tcp://127.0.0.1:{free_port()}"
    create = ("conn", "create", "zmq-channel", server.path, "--name", "scraped", "--address", address)
    zato(*create, "--service", "test.metrics.pid")
    wait_for(
        lambda: _connector_states(base, name) == {("zmq-channel", "RUNNING"): 1},
        60,
        what="the connector running",
    )
    supervisor = wait_for(lambda: _supervisor(server), what="the supervisor")
    assert isinstance(supervisor, int)
    os.kill(supervisor, signal.SIGSTOP)
    try:
        holder = ("zato_lease_holder", (("server", "server1"),))
        wait_for(lambda: holder not in scrape(base), 20, what="the lease lapsed")
        for _ in range(4):  # whichever worker answers
            assert _connector_states(base, name) == {("zmq-channel", "NOT_RUNNING"): 1}
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_for(
        lambda: _connector_states(base, name) == {("zmq-channel", "RUNNING"): 1},
        60,
        what="the connector running again",
    )
