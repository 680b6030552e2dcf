"""/metrics as a scraper sees it on a real two-worker server: the format it asks for."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.support import cluster_name, wait_for

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
