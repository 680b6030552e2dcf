"""zato.server.access_log's lines: one request stays one line whatever its headers hold, and the
JSON format is one object a line (tests/integration/test_access_logs.py runs it in a server)."""

from __future__ import annotations

import json
import os
import time

import pytest

from zato.server import access_log


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "logs" / "http_access.log"
    yield path
    os.close(access_log._file.fd)  # this process's: no other test writes an access log
    access_log._file = None


ENVIRON = {
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/crm/clients",
    "QUERY_STRING": "a=1&secret=s3",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "10.0.0.5",
    "HTTP_USER_AGENT": 'bad\x01agent\n"x"\\ ż',
    "zato.user": "crm",
}


def test_text_lines_escape_what_could_break_a_line(log_file):
    access_log.setup(str(log_file), "text")
    access_log.write(ENVIRON, "201 Created", [("Content-Length", "57")], "KCID", time.perf_counter())
    (line,) = log_file.read_text().splitlines()
    assert line.startswith("10.0.0.5 - crm [")
    assert '"POST /crm/clients?a=1&secret=****** HTTP/1.1" 201 57 "-" ' in line
    assert '"bad\\x01agent\\x0a\\"x\\"\\\\ ż"' in line and line.endswith(' KCID "-"')


def test_json_lines_are_one_object_each(log_file):
    access_log.setup(str(log_file), "json")
    access_log.write(ENVIRON, "500 Internal Server Error", [], "KCID", time.perf_counter())
    (record,) = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert record["status"] == 500 and record["bytes"] is None and record["user"] == "crm"
    assert record["target"] == "/crm/clients?a=1&secret=******"
    assert record["user_agent"] == ENVIRON["HTTP_USER_AGENT"]


def test_a_moved_log_is_followed_within_a_second_and_nothing_is_lost(log_file, monkeypatch):
    access_log.setup(str(log_file), "text")
    access_log.write(ENVIRON, "200 OK", [], "K1", time.perf_counter())
    os.rename(log_file, str(log_file) + ".1")  # logrotate
    access_log.write(ENVIRON, "200 OK", [], "K2", time.perf_counter())  # within the second: the moved file
    monkeypatch.setattr(access_log, "REOPEN_CHECK", 0.0)
    access_log.write(ENVIRON, "200 OK", [], "K3", time.perf_counter())
    moved = open(str(log_file) + ".1").read()
    assert " K1 " in moved and " K2 " in moved and " K3 " not in moved
    assert " K3 " in log_file.read_text() and oct(os.stat(log_file).st_mode & 0o777) == "0o600"


def test_a_log_whose_folder_is_renamed_or_deleted_never_raises(log_file, monkeypatch, caplog):
    """Before, the OSError of opening it again ended the request (connection closed unanswered)."""
    access_log.setup(str(log_file), "text")
    monkeypatch.setattr(access_log, "REOPEN_CHECK", 0.0)
    moved = log_file.parent.parent / "moved"
    os.rename(log_file.parent, moved)
    for cid in ("K1", "K2"):
        access_log.write(ENVIRON, "200 OK", [], cid, time.perf_counter())
    text = (moved / "http_access.log").read_text()
    assert " K1 " in text and " K2 " in text and not log_file.parent.exists()
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"cannot open the access log {log_file} again (No such file or directory): writing on"
        " to the file it had open (moved or deleted) until it can"
    ]
