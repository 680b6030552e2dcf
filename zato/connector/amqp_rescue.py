"""Take a delivery pika cannot decode off its queue, so it stops holding the queue.

A delivery whose properties pika's decoder fails on (a header timestamp past the year 9999, as
a 64-bit client sends for "never"; a field type it does not know) ends every connection that
reads it, and the broker gives it back at the head of the queue each time: the channel would
stand still for good. This module reads the queue's head over a connection of its own, frame
by frame, with pika's own classes for the methods but without decoding any message's
properties. The first message whose properties pika cannot decode is published to the
parking queue with its properties as the broker sent them (bytes), plus the header
x-zato-parked-reason, confirmed by the broker, and only then acked. The good messages read
before it are not acked: closing the channel gives them back, in their order.

The AMQP channel connector uses it after pika lost its connection to such a failure
(amqp_common.serve); a replay of parked messages (amqp_replay) to move such a message from
the head of the parking queue to its tail, as sent, and go on with the others.
"""

from __future__ import annotations

import hashlib
import socket
import struct
from dataclasses import dataclass

import pika
import pika.credentials
import pika.data
import pika.frame
import pika.spec

from zato.common.errors import ConnectorError

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"
CHANNEL = 1
TIMEOUT = 10.0  # seconds for any one answer of the broker
# Property flags of Basic (AMQP 0-9-1): the three before and at the headers table.
CONTENT_TYPE, CONTENT_ENCODING, HEADERS, MORE_FLAGS = 0x8000, 0x4000, 0x2000, 0x0001


class RescueError(ConnectorError):
    """The broker did not do what the rescue needed (nothing was acked)."""


def park_undecodable(
    params: pika.ConnectionParameters, queue: str, parking: str, reason: str, look: int
) -> bool:
    """Park the first of the `look` messages at the head of `queue` whose properties pika cannot
    decode in `parking` (with x-zato-parked-reason: `reason` and the decoder's error), then ack
    it. True if one was parked; False if none of them was undecodable. RescueError or OSError
    when the broker or the network failed; then nothing was acked."""
    return _move_undecodable(params, queue, parking, reason, look) is not None


@dataclass(frozen=True)
class Undecodable:
    """A message moved because pika cannot decode its properties."""

    error: str  # the decoder's error
    digest: str  # of its properties as sent and its body: messages alike byte for byte share it


def skip_undecodable(params: pika.ConnectionParameters, queue: str) -> Undecodable | None:
    """Move the message at the head of `queue` to its tail, its properties byte for byte as the
    broker sent them, if pika cannot decode them (confirmed, then acked): a reader taking the
    queue's messages one by one (amqp_replay) gets past it, and it stays in the queue. What was
    moved, or None when the head decodes (it is given back, nothing was acked).
    RescueError or OSError when the broker or the network failed; then nothing was acked."""
    return _move_undecodable(params, queue, queue, None, 1)


def _move_undecodable(
    params: pika.ConnectionParameters, queue: str, target: str, reason: str | None, look: int
) -> Undecodable | None:
    """Publish the first of the `look` messages at the head of `queue` that pika cannot decode
    to `target` (with x-zato-parked-reason: `reason` and the error, unless `reason` is None),
    then ack it; what was moved, or None if none of them was undecodable."""
    with Link(params) as link:
        link.call(pika.spec.Queue.Declare(queue=target, passive=True), pika.spec.Queue.DeclareOk)
        link.call(pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
        for _ in range(look):
            got = link.call(
                pika.spec.Basic.Get(queue=queue, no_ack=False),
                (pika.spec.Basic.GetOk, pika.spec.Basic.GetEmpty),
            )
            if isinstance(got, pika.spec.Basic.GetEmpty):
                return None
            raw_props, body = link.content()
            try:
                pika.spec.BasicProperties().decode(raw_props)
            except Exception as e:  # noqa: BLE001 - whatever the decoder raises is what we look for
                error = f"{type(e).__name__}: {e}"
                digest = hashlib.sha256(struct.pack(">I", len(raw_props)) + raw_props + body).hexdigest()
                if reason is not None:
                    raw_props = with_header(raw_props, "x-zato-parked-reason", f"{reason}: {error}"[:500])
                link.publish(target, raw_props, body)
                link.send(pika.spec.Basic.Ack(delivery_tag=got.delivery_tag))
                return Undecodable(error[:300], digest)
        return None  # the good ones go back when the channel closes


def with_header(raw_props: bytes, name: str, value: str) -> bytes:
    """Basic's encoded properties with one more header, the rest of them byte for byte (the
    headers table is extended, never decoded)."""
    (flags,) = struct.unpack_from(">H", raw_props, 0)
    if flags & MORE_FLAGS:  # not sent by any broker for Basic: keep the properties as they are
        return raw_props
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, {name: value})
    entry = b"".join(pieces)[4:]  # the table's entries without its length
    offset = 2
    for flag in (CONTENT_TYPE, CONTENT_ENCODING):
        if flags & flag:
            offset += 1 + raw_props[offset]
    if flags & HEADERS:
        (size,) = struct.unpack_from(">I", raw_props, offset)
        start, end = offset + 4, offset + 4 + size
        return (
            raw_props[:offset]
            + struct.pack(">I", size + len(entry))
            + raw_props[start:end]
            + entry
            + raw_props[end:]
        )
    head = struct.pack(">H", flags | HEADERS) + raw_props[2:offset]
    return head + struct.pack(">I", len(entry)) + entry + raw_props[offset:]


class Link:
    """One channel over a plain (or TLS) socket, spoken frame by frame."""

    def __init__(self, params: pika.ConnectionParameters):
        self.params = params
        self.frame_max = pika.spec.FRAME_MAX_SIZE
        self.sock: socket.socket | None = None
        self.buffer = b""

    def __enter__(self) -> Link:
        p = self.params
        sock = socket.create_connection((p.host, p.port), timeout=TIMEOUT)
        if p.ssl_options is not None:
            sock = p.ssl_options.context.wrap_socket(sock, server_hostname=p.ssl_options.server_hostname)
        self.sock = sock
        sock.sendall(PROTOCOL_HEADER)
        start = self.expect(0, pika.spec.Connection.Start)
        mechanism, response = p.credentials.response_for(start)
        if mechanism is None:
            raise RescueError("the broker offers no login mechanism these credentials can use")
        self.send(
            pika.spec.Connection.StartOk(
                client_properties={"product": "zato-ha rescue"}, mechanism=mechanism, response=response
            ),
            channel=0,
        )
        tune = self.expect(0, pika.spec.Connection.Tune)
        self.frame_max = min(tune.frame_max or pika.spec.FRAME_MAX_SIZE, pika.spec.FRAME_MAX_SIZE)
        self.send(
            pika.spec.Connection.TuneOk(channel_max=1, frame_max=self.frame_max, heartbeat=0), channel=0
        )
        self.send(pika.spec.Connection.Open(virtual_host=p.virtual_host), channel=0)
        self.expect(0, pika.spec.Connection.OpenOk)
        self.call(pika.spec.Channel.Open(), pika.spec.Channel.OpenOk)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.send(pika.spec.Channel.Close(200, "done", 0, 0))
            self.send(pika.spec.Connection.Close(200, "done", 0, 0), channel=0)
        except OSError:
            pass
        finally:
            if self.sock is not None:
                self.sock.close()

    # frames

    def connected(self) -> socket.socket:
        if self.sock is None:
            raise RescueError("not connected")
        return self.sock

    def send(self, method: pika.spec.Method, channel: int = CHANNEL) -> None:
        self.connected().sendall(pika.frame.Method(channel, method).marshal())

    def call(self, method: pika.spec.Method, answer: type | tuple[type, ...]) -> pika.spec.Method:
        self.send(method)
        return self.expect(CHANNEL, answer)

    def expect(self, channel: int, answer: type | tuple[type, ...]) -> pika.spec.Method:
        kind, number, payload = self.frame()
        while kind == FRAME_HEARTBEAT:
            kind, number, payload = self.frame()
        if kind != FRAME_METHOD:
            raise RescueError(f"expected a method frame, got frame type {kind}")
        (index,) = struct.unpack_from(">I", payload, 0)
        method_class = pika.spec.methods.get(index)
        if method_class is None:
            raise RescueError(f"unknown method {index:#x}")
        method = method_class()
        method.decode(payload, 4)
        if isinstance(method, (pika.spec.Connection.Close, pika.spec.Channel.Close)):
            what = "connection" if number == 0 else "channel"
            raise RescueError(f"the broker closed the {what}: {method.reply_code} {method.reply_text}")
        if not isinstance(method, answer) or number != channel:
            raise RescueError(f"expected {answer}, got {method.NAME} on channel {number}")
        return method

    def content(self) -> tuple[bytes, bytes]:
        """The content header's properties (encoded, as sent) and the body of the message whose
        GetOk was just read."""
        kind, _, payload = self.frame()
        if kind != FRAME_HEADER:
            raise RescueError(f"expected a content header frame, got frame type {kind}")
        (size,) = struct.unpack_from(">Q", payload, 4)
        body = b""
        while len(body) < size:
            kind, _, chunk = self.frame()
            if kind != FRAME_BODY:
                raise RescueError(f"expected a content body frame, got frame type {kind}")
            body += chunk
        return payload[12:], body

    def publish(self, queue: str, raw_props: bytes, body: bytes) -> None:
        """Publish through the default exchange to `queue` and wait for the broker's confirm."""
        method = pika.spec.Basic.Publish(exchange="", routing_key=queue, mandatory=True)
        header = struct.pack(">HHQ", pika.spec.Basic.INDEX, 0, len(body)) + raw_props
        frames = [pika.frame.Method(CHANNEL, method).marshal(), _frame(FRAME_HEADER, header)]
        step = self.frame_max - 8
        frames += [_frame(FRAME_BODY, body[i : i + step]) for i in range(0, len(body), step)]
        self.connected().sendall(b"".join(frames))
        got = self.expect(CHANNEL, (pika.spec.Basic.Ack, pika.spec.Basic.Nack, pika.spec.Basic.Return))
        if not isinstance(got, pika.spec.Basic.Ack):
            raise RescueError(f"the broker did not take the parked copy ({got.NAME})")

    def frame(self) -> tuple[int, int, bytes]:
        head = self.read(7)
        kind, channel, size = struct.unpack(">BHI", head)
        payload = self.read(size)
        if self.read(1) != FRAME_END:
            raise RescueError("a frame without its end marker")
        return kind, channel, payload

    def read(self, n: int) -> bytes:
        sock = self.connected()
        while len(self.buffer) < n:
            data = sock.recv(max(65536, n - len(self.buffer)))
            if not data:
                raise RescueError("the broker closed the connection")
            self.buffer += data
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def _frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, CHANNEL, len(payload)) + payload + FRAME_END
