"""The checks of tests/metrics_lint.py (promtool's naming rules, prometheus_client's parser)
catch what they are for, and the connector metrics a holder's children make pass them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics_lint import problems
from zato.server.cluster_metrics import ClusterCollector

GOOD = """# HELP zato_x_total Things
# TYPE zato_x_total counter
zato_x_total{service="a"} 1.0
# HELP zato_y_seconds Time
# TYPE zato_y_seconds histogram
zato_y_seconds_bucket{le="+Inf"} 1.0
zato_y_seconds_count 1.0
zato_y_seconds_sum 0.5
"""


def test_conventional_text_has_no_problem():
    assert problems(GOOD) == []


def _gauge(name: str) -> str:
    return f"# HELP {name} T\n# TYPE {name} gauge\n{name} 1\n"


def test_each_broken_convention_is_named():
    cases = {
        "# HELP zato_x Things\n# TYPE zato_x counter\nzato_x 1\n": "a counter's name ends in _total",
        "# HELP zato_x_total T\n# TYPE zato_x_total gauge\nzato_x_total 1\n": "_total on a gauge",
        _gauge("zato_t_milliseconds"): "not a base unit",
        _gauge("zato_t_ms"): "abbreviated unit",
        "# HELP zatoX T\n# TYPE zatoX gauge\nzatoX 1\n": "snake_case",
        '# HELP zato_g T\n# TYPE zato_g gauge\nzato_g{path="/a"} 1\n': "takes a value per request",
        '# HELP zato_g T\n# TYPE zato_g gauge\nzato_g{cid="K1"} 1\n': "takes a value per request",
        '# HELP zato_g T\n# TYPE zato_g gauge\nzato_g{le="1"} 1\n': "reserved for a histogram",
        "# HELP zato_g T\n# HELP zato_g T\n# TYPE zato_g gauge\nzato_g 1\n": "HELP given twice",
        '# HELP zato_g T\n# TYPE zato_g gauge\nzato_g{a="1"} 1\nzato_g{a="1"} 2\n': "the same series twice",
        "# TYPE zato_g gauge\nzato_g 1\n": "no HELP",
        "# HELP zato_counter_total T\n# TYPE zato_counter_total counter\nzato_counter_total 1\n": "the type",
        "zato_g{a=1} 1\n": "cannot parse",
    }
    for text, said in cases.items():
        found = problems(text)
        assert any(said in p for p in found), (text, found)
    assert problems("# TYPE haproxy_x counter\nhaproxy_x 1\n", allowed=frozenset({"haproxy_x"})) == []


class _NoOutgoingQueues:
    """Stands for Redis where no outgoing queue is listed (the children here have none)."""

    def smembers(self, key: str) -> set:
        return set()


class _Connectors:
    """The connector families ClusterCollector makes for a holder's children."""

    def __init__(self, children: list[dict]):
        self.children = children

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        return ClusterCollector(_NoOutgoingQueues(), "unit")._connectors(self.children)


def test_connector_metrics_follow_the_conventions_and_restart_counts_are_counters():
    """Before: zato_connector_restarts and zato_connector_parked were gauges counting since a
    process started (they fell to 0 at a restart or a takeover, which a gauge cannot say)."""
    child = {"name": "amqp-channel:in", "kind": "amqp-channel", "state": "RUNNING", "restarts": 2}
    child |= {"messages_in": 5, "messages_out": 4, "failures": 1, "parked": 1, "parking_queue": 3}
    child["activity"] = "running"
    registry = CollectorRegistry()
    registry.register(_Connectors([child]))
    text = generate_latest(registry).decode()
    assert problems(text) == []
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("restarts", "messages_in", "messages_out", "failures", "parked"):
        family = families[f"zato_connector_{name}"]
        assert family.type == "counter", (name, family.type)
        sample = family.samples[0]
        assert sample.name == f"zato_connector_{name}_total"
        assert sample.labels == {
            "connector": "amqp-channel:in",
            "kind": "amqp-channel",
        }  # no pid: kept across restarts
        assert sample.value == child[name]
