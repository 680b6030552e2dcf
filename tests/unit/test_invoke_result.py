"""What a connector takes as the service's success: any 2xx; a 409 is a stale epoch."""

from __future__ import annotations

import pytest

from zato.connector.invoke import Result

CASES = [
    (200, True, False),
    (201, True, False),
    (204, True, False),
    (400, False, False),
    (409, False, True),
    (500, False, False),
]


@pytest.mark.parametrize(("status", "ok", "stale"), CASES)
def test_a_service_answering_any_2xx_succeeded(status: int, ok: bool, stale: bool) -> None:
    result = Result(status, b"", "server1")
    assert (result.ok, result.stale) == (ok, stale)
