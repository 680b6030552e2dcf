"""The pure rules behind a service's answer (zato.server.service_response), a client's JSON
(zato.common.jsonenc.loads_strict) and Zato's Unauthorized challenge; the real server's
behaviour is in tests/integration/test_service_response.py."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from zato.common.exception import BadRequest, Reportable, Unauthorized, ZatoException
from zato.common.jsonenc import loads_strict
from zato.server.service_response import service_headers, status_of


@pytest.mark.parametrize(
    ("given", "status"),
    [
        (200, 200),
        ("202", 202),
        (" 204 ", 204),
        (HTTPStatus.CREATED, 201),
        (599, 599),
        (100, None),  # interim statuses: HTTP sends them ahead of an answer, never as one
        (101, None),
        (199, None),
        (42, None),
        (600, None),
        ("2O2", None),
        ("٢٠٢", None),  # Arabic-Indic digits: isdigit() says yes, HTTP says no
        ("-200", None),
        (200.5, None),
        (200.0, None),
        (True, None),
        (None, None),
        (b"200", None),
    ],
)
def test_a_status_is_a_whole_number_from_200_to_599_or_its_digits(given, status):
    assert status_of(given) == status


def test_framing_headers_are_dropped_and_content_type_taken_whatever_the_case():
    got = service_headers(
        {"content-length": "3", "Transfer-Encoding": "chunked", "CONTENT-TYPE": "text/csv", "X-A": 1}
    )
    assert got.send == [("X-A", "1")]
    assert got.content_type == "text/csv"
    assert got.dropped == ["content-length", "Transfer-Encoding"]
    assert got.problem is None


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"X-A": "żółw"}, "response header X-A: its value is not latin-1 text"),
        ({"X-A": "a\r\nX: y"}, "response header X-A: its value contains a line break"),
        ({"X-A": "a\nb"}, "response header X-A: its value contains a line break"),
        ({"X-A": "a\x00b"}, "response header X-A: its value contains a control character"),
        ({"X A": "1"}, "response header 'X A': the name is not an HTTP header name"),
        ({"": "1"}, "response header '': the name is not an HTTP header name"),
        ({1: "1"}, "response header 1: the name is not an HTTP header name"),
    ],
)
def test_a_header_http_cannot_carry_is_named_with_why(headers, problem):
    got = service_headers(headers)
    assert got.problem is not None and got.problem.startswith(problem)
    assert got.send == []


def test_latin1_tabs_and_punctuation_are_sent_as_they_are():
    value = 'café\tnaïve; q="1"'
    assert service_headers({"X-A": value}).send == [("X-A", value)]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_client_json_with_nan_or_infinity_is_malformed(constant):
    with pytest.raises(ValueError, match=constant):
        loads_strict(f'{{"a": [1, {constant}]}}'.encode())


@pytest.mark.parametrize("number", ["1e400", "-1E+999", "1" + "0" * 400 + ".0"])
def test_a_client_json_number_a_double_cannot_hold_is_malformed(number):
    with pytest.raises(ValueError, match="is out of range"):
        loads_strict(f'{{"a": [1, {number}]}}'.encode())


def test_strict_json_reads_what_json_loads_reads():
    assert loads_strict(b'{"a": 1.5e308, "b": "\\u017c"}') == {"a": 1.5e308, "b": "ż"}
    assert loads_strict('{"a": "NaN"}'.encode("utf-16")) == {"a": "NaN"}
    with pytest.raises(ValueError, match="BOM"):
        loads_strict("\ufeff{}")  # as json.loads: text must not start with one, bytes may


def test_unauthorized_carries_zato_challenge_as_www_authenticate():
    e = Unauthorized("CID", "who are you", 'Basic realm="x"')
    assert (e.status, e.msg, e.headers) == (401, "who are you", [("WWW-Authenticate", 'Basic realm="x"')])
    assert Unauthorized("CID", "who are you").headers == []
    assert BadRequest("CID", "why").headers == []


def test_zatos_reportable_takes_the_status_as_its_third_argument():
    """Zato's Reportable(cid, msg, status); before, the third argument was dropped (a 500)."""
    e = Reportable("CID", "I am a teapot", 418)
    assert (e.cid, e.msg, e.status) == ("CID", "I am a teapot", 418)
    assert Reportable("CID", "no status").status == 500
    assert ZatoException("CID", "Zato's own: cid and msg only").status == 500
    assert BadRequest("CID", "why").status == 400  # the fixed-status ones keep theirs


def test_a_service_x_zato_cid_header_is_the_servers_own():
    """Every answer carries the request's CID once; a service's is dropped, like Content-Length."""
    checked = service_headers({"X-Zato-CID": "MINE", "x-zato-cid": "MINE2", "X-Other": "1"})
    assert checked.send == [("X-Other", "1")]
    assert checked.dropped == ["X-Zato-CID", "x-zato-cid"]
