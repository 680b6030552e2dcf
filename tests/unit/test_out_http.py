"""`response.data` of an outgoing HTTP call, as Zato 4.1 gives it: parsed JSON when the body is
JSON, else the body's text (logic only; tests/integration/test_zato_services.py calls a real
server through `self.out.rest`)."""

from __future__ import annotations

import pytest

from zato.service.out_http import response_data


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
