"""The coalescing transport of zato.connector.amqp_io: frames written in one turn of the I/O
loop reach pika's transport joined, in order, in chunks of at most CHUNK bytes. Logic only:
a fake transport records writes and a fake loop holds the timers; the real broker (plain and
TLS) is in tests/integration/test_amqp_io.py."""

from __future__ import annotations

from zato.connector.amqp_io import CHUNK, Coalescing


class FakeTimer:
    def __init__(self, loop: FakeLoop, callback) -> None:  # noqa: ANN001
        self.loop, self.callback = loop, callback

    def cancel(self) -> None:
        self.loop.timers.remove(self)


class FakeLoop:
    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def call_later(self, delay: float, callback) -> FakeTimer:  # noqa: ANN001
        assert delay == 0
        timer = FakeTimer(self, callback)
        self.timers.append(timer)
        return timer

    def turn(self) -> None:
        """The end of a turn of the loop: the due timers run."""
        timers, self.timers = self.timers, []
        for timer in timers:
            timer.callback()


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.aborted = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        assert data, "pika's transports refuse empty writes"
        self.writes.append(data)

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.buffered


def coalescing() -> tuple[Coalescing, FakeTransport, FakeLoop]:
    inner, loop = FakeTransport(), FakeLoop()
    return Coalescing(inner, protocol=object(), nbio=loop), inner, loop  # type: ignore[arg-type]


def frames(n: int, size: int = 40) -> list[bytes]:
    return [f"{i:0{size}d}".encode() for i in range(n)]


def test_a_turn_of_small_frames_goes_out_in_one_write_in_order():
    t, inner, loop = coalescing()
    sent = frames(300)  # 100 publishes: method, header and body frames
    for data in sent:
        t.write(data)
    assert inner.writes == [] and len(loop.timers) == 1  # held until the turn ends, one timer
    loop.turn()
    assert inner.writes == [b"".join(sent)]


def test_many_frames_go_in_chunks_of_at_most_chunk_bytes_none_lost_or_reordered():
    t, inner, loop = coalescing()
    sent = frames(5000, size=100)  # 500 KB
    for data in sent:
        t.write(data)
    loop.turn()
    assert b"".join(inner.writes) == b"".join(sent)
    assert all(len(w) <= CHUNK for w in inner.writes)
    assert len(inner.writes) <= len(b"".join(sent)) // (CHUNK - 100) + 1  # ~8 writes, not 5,000


def test_a_frame_larger_than_a_chunk_goes_alone_and_is_not_copied():
    t, inner, loop = coalescing()
    big = b"x" * (3 * CHUNK)
    t.write(b"before")
    t.write(big)
    t.write(b"after")
    loop.turn()
    assert inner.writes == [b"before", big, b"after"]
    assert inner.writes[1] is big


def test_the_write_buffer_size_counts_what_is_held():
    t, inner, loop = coalescing()
    inner.buffered = 7
    t.write(b"12345")
    assert t.get_write_buffer_size() == 12
    loop.turn()
    inner.buffered += 5  # now pika's transport holds it
    assert t.get_write_buffer_size() == 12


def test_writes_after_a_turn_wait_for_the_next_one():
    t, inner, loop = coalescing()
    t.write(b"a")
    loop.turn()
    t.write(b"b")
    t.write(b"c")
    assert inner.writes == [b"a"] and len(loop.timers) == 1
    loop.turn()
    assert inner.writes == [b"a", b"bc"]


def test_abort_drops_what_is_held_as_pikas_transports_do():
    t, inner, loop = coalescing()
    t.write(b"never sent")
    t.abort()
    assert inner.aborted and loop.timers == [] and t.get_write_buffer_size() == 0
    loop.turn()
    assert inner.writes == []
