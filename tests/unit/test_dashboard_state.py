"""The dashboard's requests/s from successive /metrics answers, and JSON log records."""

from __future__ import annotations

import json
import logging
import sys

from zato.common.log import CID, JSONFormatter, RedactingFilter, TextFormatter, set_role
from zato.dashboard.state import Rates, requests_total

SCRAPE = """# HELP zato_server_requests_total HTTP requests served, every path
# TYPE zato_server_requests_total counter
zato_server_requests_total{kind="channel"} 40.0
zato_server_requests_total{kind="admin"} 2.0
zato_server_requests_created{kind="channel"} 1.7e9
zato_server_requests_in_flight 3.0
"""


def test_requests_total_sums_every_kind_and_nothing_else() -> None:
    assert requests_total(SCRAPE) == 42.0
    assert requests_total("") == 0.0


def test_rates_need_two_answers_and_survive_a_reset_or_a_failed_scrape() -> None:
    rates = Rates()
    assert rates.add("server1", 10.0, 100.0) is None  # one point is no rate yet
    assert rates.add("server1", 12.0, 150.0) == 25.0
    assert rates.add("server1", 13.0, None) is None  # scrape failed: a gap, not a zero
    assert rates.add("server1", 14.0, 5.0) is None  # the server restarted: its counter went down
    assert rates.add("server1", 15.0, 15.0) == 10.0
    assert list(rates.history["server1"]) == [None, 25.0, None, None, 10.0]


def test_json_records_carry_role_server_cid_and_no_secret() -> None:
    set_role("worker", "server7")
    message = "login with password=%s"
    record = logging.LogRecord("zato.http", logging.ERROR, __file__, 1, message, ("hunter2",), None)
    RedactingFilter().filter(record)
    token = CID.set("KABC")
    try:
        doc = json.loads(JSONFormatter().format(record))
    finally:
        CID.reset(token)
        set_role("", "")
    assert (doc["role"], doc["server"], doc["cid"], doc["level"]) == ("worker", "server7", "KABC", "ERROR")
    assert doc["message"] == "login with password=******" and "hunter2" not in json.dumps(doc)


def test_text_records_redact_secrets_in_tracebacks_too() -> None:
    try:
        raise ConnectionError("cannot reach postgresql://zato:hunter2@db:5432/zato (password=hunter3)")
    except ConnectionError:
        record = logging.LogRecord("zato.odb", logging.ERROR, __file__, 1, "ODB failed", (), sys.exc_info())
    RedactingFilter().filter(record)
    line = TextFormatter().format(record)
    assert "ConnectionError" in line and "zato:******@db" in line
    assert "hunter2" not in line and "hunter3" not in line
