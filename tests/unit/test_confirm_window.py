"""Publisher-confirm bookkeeping of the AMQP outgoing connector: which message each ack,
nack or return is about (a wrong mapping removes or parks the wrong message)."""

from __future__ import annotations

from zato.connector.confirm_window import ConfirmWindow, Publish


def _window(*bodies: bytes, size: int = 10) -> ConfirmWindow:
    w = ConfirmWindow(size)
    for b in bodies:
        w.published(Publish(raw=b.decode(), exchange="", routing_key="q", body=b))
    return w


def test_acks_out_of_order_and_multiple_settle_their_own_messages():
    w = _window(b"m1", b"m2", b"m3", b"m4", size=6)
    assert w.room == 2
    assert w.confirmed(3, multiple=False, ack=True).done == ["m3"]
    assert w.confirmed(2, multiple=True, ack=True).done == ["m1", "m2"]
    assert w.raws() == {"m4"} and w.room == 5
    assert w.confirmed(9, multiple=False, ack=True).done == []  # unknown tag: nothing settles


def test_a_nack_parks_and_a_return_parks_its_own_message_at_its_ack():
    w = _window(b"same", b"other", b"same")
    assert w.returned("", "q", b"same", "unroutable") is True  # the oldest matching publish
    settled = w.confirmed(3, multiple=True, ack=True)
    assert settled.done == ["other", "same"] and settled.park == [("same", "unroutable")]
    w = _window(b"a", b"b")
    settled = w.confirmed(2, multiple=True, ack=False)
    assert settled.done == [] and [raw for raw, _ in settled.park] == ["a", "b"]
    assert "nack" in settled.park[0][1]
    assert w.returned("", "q", b"zzz", "unroutable") is False


def test_the_window_counts_the_size_of_what_awaits_a_confirm():
    w = _window(b"m1", b"m22", b"m333", b"m4444", size=10)
    assert w.bytes == 14
    assert w.confirmed(3, multiple=True, ack=True).done == ["m1", "m22", "m333"]
    assert w.bytes == 5 and w.raws() == {"m4444"}
    w.confirmed(4, multiple=False, ack=False)  # a nack settles it too (parked)
    assert w.bytes == 0 and len(w) == 0
