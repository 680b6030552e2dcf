"""The framing of several internal invocations in one call (zato.common.batch): what goes in
comes out item for item, whatever the bytes; a malformed body or answer is a BatchError naming
what is wrong, never a wrong split; and a batch's signature never stands for one invocation."""

from __future__ import annotations

import random

import pytest

from zato.common import batch
from zato.common.signing import epoch_key, sign, verify


def test_items_come_back_as_they_went_whatever_their_bytes():
    rnd = random.Random(14)
    for _ in range(500):
        items = [rnd.randbytes(rnd.choice([0, 1, 5, 100, 3000])) for _ in range(rnd.randint(1, 20))]
        items.append(b"12:a,b:c,,")  # framing characters inside an item
        assert batch.decode_items(batch.encode_items(items)) == items


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "no items"),
        (b"3:abc", "do not follow"),  # no trailing comma
        (b"3:ab,", "do not follow"),  # shorter than it says
        (b"4:abc,", "do not follow"),
        (b"x:abc,", "no length"),
        (b"-1:,", "no length"),
        (b"3:abc,junk", "item 2: no length"),
        (b"99999999999999:", "no length"),  # more digits than any body can have
    ],
)
def test_a_malformed_batch_is_refused_and_says_where(body, says):
    with pytest.raises(batch.BatchError, match=says):
        batch.decode_items(body)


def test_too_many_items_are_refused():
    with pytest.raises(batch.BatchError, match="more than"):
        batch.decode_items(batch.encode_items([b"{}"] * (batch.MAX_ITEMS + 1)))


def test_results_must_be_one_per_item():
    body = batch.encode_results([(200, "", ""), (500, "boom", "")])
    assert body == b'{"results": [[200, ""], [500, "boom"]]}'  # as before, when no service settled
    assert batch.decode_results(body, 2) == [(200, "", ""), (500, "boom", "")]
    with pytest.raises(batch.BatchError, match="2 results for 3 items"):
        batch.decode_results(body, 3)
    bad_ones = (
        b"not json",
        b"{}",
        b'{"results": [[200]]}',
        b'{"results": [["x", ""]]}',
        b'{"results": [[200, "", "drop"]]}',  # no such settle
        b'{"results": [[200, "", "ack", "ack"]]}',
    )
    for bad in bad_ones:
        with pytest.raises(batch.BatchError, match="malformed"):
            batch.decode_results(bad, 1)


def test_a_result_says_what_the_service_asked_of_its_message():
    rows = [(200, "", "ack"), (500, "boom", "ack"), (200, "", "reject"), (200, "", "requeue"), (200, "", "")]
    assert batch.decode_results(batch.encode_results(rows), 5) == rows


def test_messages_come_back_as_metadata_and_body_pairs():
    pairs = [(b'{"kind": "amqp"}', b"body 1"), (b"{}", b""), (b"x", b"3:a,b,")]
    assert batch.decode_messages(batch.encode_messages(pairs)) == pairs
    with pytest.raises(batch.BatchError, match="3 items: not metadata and body"):
        batch.decode_messages(batch.encode_items([b"a", b"b", b"c"]))


def test_a_batch_signature_does_not_verify_as_one_invocation_nor_the_reverse():
    key, body = epoch_key("s" * 32, 7), batch.encode_items([b"{}"])
    as_batch = sign(key, 7, batch.batch_service("demo.echo"), "K1", "S", body)
    assert verify("s" * 32, as_batch, 7, batch.batch_service("demo.echo"), "K1", "S", body)
    assert not verify("s" * 32, as_batch, 7, "demo.echo", "K1", "S", body)
    single = sign(key, 7, "demo.echo", "K1", "S", body)
    assert not verify("s" * 32, single, 7, batch.batch_service("demo.echo"), "K1", "S", body)
    messages = sign(key, 7, batch.messages_service("demo.echo"), "K1", "S", body)
    assert not verify("s" * 32, messages, 7, batch.batch_service("demo.echo"), "K1", "S", body)
    assert not verify("s" * 32, as_batch, 7, batch.messages_service("demo.echo"), "K1", "S", body)
