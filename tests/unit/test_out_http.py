"""`response.data` of an outgoing HTTP call, as Zato 4.1 gives it: parsed JSON when the body is
JSON, else the body's text (logic only; tests/integration/test_zato_services.py calls a real
server through `self.out.rest`)."""

from __future__ import annotations

import pytest

from zato.common.errors import ConnectorError
from zato.service.out_http import HTTPConn, response_data


@pytest.mark.parametrize(
    ("body", "content_type", "json_connection", "data"),
    [
        ('{"a": [1, 2]}', "application/json", False, {"a": [1, 2]}),  # the body says JSON
        ('{"a": 1}', "application/problem+json; charset=utf-8", False, {"a": 1}),
        ("[1, 2]", None, True, [1, 2]),  # a JSON connection, no Content-Type: parsed if it parses
        ("[1, 2]", None, False, "[1, 2]"),  # a text connection: as it came
        ("42", "text/plain", True, "42"),  # the body says text
        ("<html>busy</html>", "text/html", True, "<html>busy</html>"),
        ("{not json", "application/json", True, "{not json"),  # mislabelled: its text, no error
        ("", "application/json", True, ""),  # a 204's empty body
        ("zażółć", "Text/Plain; charset=utf-8", False, "zażółć"),
    ],
)
def test_response_data(body: str, content_type: str | None, json_connection: bool, data: object) -> None:
    assert response_data(body, content_type, json_connection) == data


@pytest.mark.parametrize("value", [".", ".."])
def test_a_dot_segment_as_a_path_parameter_is_refused(value: str) -> None:
    """tests/integration/test_secrets_shown.py: on a real server, through a caller's input."""
    conn = HTTPConn("bank", {"address": "http://bank", "url_path": "/accounts/{acct}/statement"})
    with pytest.raises(ConnectorError, match=f"path parameter acct is '{value}'"):
        conn._url({"acct": value})
    assert conn._url({"acct": "..."}) == ("http://bank/accounts/.../statement", {})
    assert conn._url({"acct": "a/../b", "x": 1}) == ("http://bank/accounts/a%2F..%2Fb/statement", {"x": 1})
