"""What a connector takes as the service's success: any 2xx; a 409 is a stale epoch; a body
over the servers' limit is never sent, and batches stay within it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zato.common import batch
from zato.connector.invoke import NOT_SENT, STALE_EPOCH, TOO_LARGE, Invoker, Result, within

CASES = [
    (200, "", True, False),
    (201, "", True, False),
    (204, "", True, False),
    (400, "", False, False),
    (409, STALE_EPOCH, False, True),  # the server refused the holder's epoch
    (409, "", False, False),  # the service's own 409 (Conflict): it ran and failed
    (500, "", False, False),
]


@pytest.mark.parametrize(("status", "refusal", "ok", "stale"), CASES)
def test_a_service_answering_any_2xx_succeeded(status: int, refusal: str, ok: bool, stale: bool) -> None:
    result = Result(status, b"", "server1", refusal=refusal)
    assert (result.ok, result.stale) == (ok, stale)


def test_a_body_over_the_servers_limit_is_answered_413_without_a_server() -> None:
    invoker = Invoker(None, "c", b"k", 1, members=b"m", max_body=100)  # type: ignore[arg-type]
    result = invoker.invoke("svc", b"x" * 101, "text/plain")  # no Redis, no server: never sent
    assert (result.status, result.server) == (TOO_LARGE, NOT_SENT)
    assert result.text == "the message of 101 bytes is over the servers' limit of 100 ([limits] max_body)"
    assert invoker.invoke_many("svc", [b"y" * 101], "text/plain") == [result]


@given(st.lists(st.binary(max_size=80), min_size=1, max_size=12), st.integers(1, 200))
def test_batches_keep_order_and_stay_within_the_limit(bodies: list[bytes], limit: int) -> None:
    parts = within(bodies, limit)
    assert [body for part in parts for body in part] == bodies
    for part in parts:
        assert len(part) == 1 or len(batch.encode_items(part)) <= limit
    for part, after in zip(parts, parts[1:], strict=False):  # each as large as the limit lets it be
        assert len(batch.encode_items([*part, after[0]])) > limit


def test_a_message_over_the_limit_with_its_metadata_goes_without_it() -> None:
    # Its body alone is within max_body: it is not refused for its metadata (the call without
    # it is then answered here, as the body is over the limit too, or sent alone).
    invoker = Invoker(None, "c", b"k", 1, members=b"m", max_body=100)  # type: ignore[arg-type]
    [result] = invoker.invoke_messages("svc", [(b"m" * 50, b"y" * 101)], "text/plain")
    assert (result.status, result.server) == (TOO_LARGE, NOT_SENT)
    assert invoker.invoke("svc", b"y" * 101, "text/plain", meta=b"{}").status == TOO_LARGE


@given(
    st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=80)), min_size=1, max_size=12),
    st.integers(1, 200),
)
def test_messages_with_metadata_keep_order_and_stay_within_the_limit(pairs: list, limit: int) -> None:
    def size(pair: tuple[bytes, bytes]) -> int:
        return len(batch.encode_items(list(pair)))

    parts = within(pairs, limit, size=size)
    assert [pair for part in parts for pair in part] == pairs
    for part in parts:
        assert len(part) == 1 or len(batch.encode_messages(part)) <= limit
