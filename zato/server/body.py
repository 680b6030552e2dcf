"""Reading a request body within the server's limits ([limits] in server.conf).

- Over `max_body`: 413, decided from Content-Length before a byte of the body is read, and
  counted while reading a chunked body (reading stops at the limit).
- Slower than `body_timeout` for the whole body: 408.
- The client went away mid-body (connection reset, or fewer bytes than it announced):
  `ClientGone`, which the server logs as one warning line; no service sees a partial body.
- A body in a transfer coding other than chunked (gzip, deflate, compress, which gunicorn
  takes but does not undo): 501, nothing read.
- A body gunicorn cannot decode (a chunk size that is not hex, a chunk without its CRLF, bad
  trailers): `Malformed`, a 400 "malformed chunked body: ...", which the server logs as one
  warning line a minute at most (`Throttled`): any client can send it, before any credentials.
After a 413, 501 or 408 the connection is closed (`close_connection`). After a 413 or 501, once the
answer is sent, what the client still sends of its body is read and dropped (`Lingering`,
bounded in bytes and time, as nginx's lingering close): a socket closed with unread data is
reset by the kernel, and the reset can destroy the answer on its way (HAProxy in front, or a
client that sends its whole body before it reads, as Python's http.client does).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import gevent
from gunicorn.http.errors import ParseException

from zato.common.errors import ZatoError

CHUNK = 65536
# gunicorn decodes a chunked body in Python and waits on the socket only when the client falls
# behind, so a body of tiny chunks is CPU the worker spends with nothing else served (and
# body_timeout fires only when it waits). 2 MB sent as 1-byte chunks to a one-worker server
# made a ping wait 3.6 s, the whole upload. So a chunked body gives the worker's other requests
# a turn every TURN seconds, and once one read took that long (tiny chunks), it is read
# CHUNKED_READ bytes at a time with a turn after each read: the ping waited 0.22 s at most. A body
# of large chunks stays at CHUNK-sized reads (1 KiB reads made a 4 MB upload 3 times slower).
TURN = 0.005
CHUNKED_READ = 1024
LINGER_BYTES = 64 * 1024 * 1024  # the most of a refused body read and dropped after its 413
LINGER_IDLE = 1.0  # seconds without a byte from the client before lingering stops


class BodyError(ZatoError):
    """The body cannot be served: `status` and a one-line `detail` for Zato's envelope."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Malformed(BodyError):
    """A body that breaks HTTP's framing (gunicorn's InvalidChunkSize, ChunkMissingTerminator,
    InvalidChunkExtension, a bad trailer...): 400, and the connection cannot be used again."""

    def __init__(self, detail: str):
        super().__init__(400, detail)


class ClientGone(ZatoError):
    """The client disconnected before its whole body arrived."""


def declared_length(environ: dict) -> int | None:
    """Content-Length as a number, None when absent; BodyError(400) when malformed."""
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None
    raw = raw.strip()
    if not raw.isdigit():
        raise BodyError(400, "Content-Length is not a number")
    return int(raw)


def check_length(environ: dict, max_body: int) -> int | None:
    """The declared length, or BodyError(413) when it is over `max_body` (nothing read yet)."""
    size = declared_length(environ)
    if size is not None and size > max_body:
        raise BodyError(413, f"request body of {size} bytes is over the limit of {max_body} bytes")
    return size


# Transfer codings the server's reading undoes: gunicorn takes gzip, deflate and compress
# before chunked too, but undoes only the chunked framing (identity is no coding at all).
DECODED_CODINGS = frozenset({"chunked", "identity"})


def check_codings(environ: dict) -> None:
    """BodyError(501) for a body in a transfer coding the server does not decode (RFC 9112:
    501 for a transfer coding not understood): before, its service got it still compressed."""
    for coding in environ.get("HTTP_TRANSFER_ENCODING", "").lower().split(","):
        coding = coding.strip()
        if coding and coding not in DECODED_CODINGS:
            raise BodyError(
                501,
                f"transfer coding {one_line(coding, 40)!r} is not supported: send the body with"
                " Transfer-Encoding: chunked alone (a compressed body with Content-Encoding)",
            )


def read_body(environ: dict, max_body: int, timeout: float) -> bytes:
    """The whole body within the limits, or BodyError / ClientGone."""
    size = check_length(environ, max_body)
    check_codings(environ)
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if size is None and not chunked:
        return b""
    stream = environ["wsgi.input"]
    try:
        with gevent.Timeout(timeout, BodyError(408, f"the request body did not arrive within {timeout:g} s")):
            data = _read_counted(stream, size, max_body, chunked and size is None)
    except OSError as e:  # ECONNRESET, and gunicorn's NoMoreData (an IOError)
        raise ClientGone(f"connection lost while reading the body: {type(e).__name__}") from None
    except ParseException as e:  # gunicorn could not decode the body's framing
        what = "chunked body" if chunked else "request body"
        raise Malformed(f"malformed {what}: {one_line(str(e))}") from None
    if size is not None and len(data) < size:
        raise ClientGone(f"the body ended after {len(data)} of {size} bytes")
    return data


def one_line(text: str, limit: int = 200) -> str:
    """An error's text for a log line and the envelope: printable, bounded."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."


def peer(environ: dict) -> str:
    """Who sent a request, for a log line: the peer's address, and the X-Forwarded-For the
    request carried when it has one (the LB appends the client's address there, so a line about a
    request that came through the LB names the client, not only the LB). A client may write
    anything in that header: it is said as carried, printable and bounded, never trusted."""
    addr = environ.get("REMOTE_ADDR") or "-"
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    return f"{addr} (X-Forwarded-For: {one_line(forwarded, 100)})" if forwarded else addr


class Throttled:
    """Says something a client can make happen at will at most `burst` times per `every`
    seconds (per worker; in any window that long), with how many times it happened meanwhile,
    so a hostile client cannot fill the log."""

    def __init__(self, every: float = 60.0, clock: Any = time.monotonic, burst: int = 1):
        self.every, self._clock, self.burst = every, clock, burst
        self._said_at: deque[float] = deque(maxlen=burst)  # the last `burst` times it was said
        self.unsaid = 0

    def due(self) -> int | None:
        """None: stay quiet (counted); else say it now, with the number of times left unsaid."""
        now = self._clock()
        if len(self._said_at) == self.burst and now - self._said_at[0] < self.every:
            self.unsaid += 1
            return None
        self._said_at.append(now)
        unsaid, self.unsaid = self.unsaid, 0
        return unsaid

    @property
    def how_often(self) -> str:
        """How often it is said at most, for the line itself: 'once a minute' (the default),
        else 'once every 2 s' ([logging] client_warning_interval); '5 times a minute' for a
        burst of 5."""
        times = "once" if self.burst == 1 else f"{self.burst} times"
        return f"{times} a minute" if self.every == 60 else f"{times} every {self.every:g} s"


def _read_counted(stream: Any, size: int | None, max_body: int, chunked: bool = False) -> bytes:
    parts: list[bytes] = []
    total = 0
    block = CHUNK
    turn = time.monotonic()
    while size is None or total < size:
        want = block if size is None else min(block, size - total)
        started = time.monotonic()
        part = stream.read(want)
        if not part:
            break
        total += len(part)
        if total > max_body:
            raise BodyError(413, f"request body is over the limit of {max_body} bytes")
        parts.append(part)
        if chunked:
            now = time.monotonic()
            if now - started > TURN:
                block = CHUNKED_READ  # slow to decode: tiny chunks, a turn after each read
            if block == CHUNKED_READ or now - turn > TURN:
                gevent.sleep(0)  # the others' turn (and the body_timeout's)
                turn = time.monotonic()
    return b"".join(parts)


def close_connection(start_response: Any) -> None:
    """Have gunicorn close the connection after this response instead of reading on (the rest
    of an unwanted body). start_response is bound to gunicorn's Response, which offers
    force_close(); any other server simply keeps its own behaviour."""
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(force_close):
        force_close()


def without_body(answer: Iterable[bytes]) -> Iterable[bytes]:
    """The answer to a HEAD request: its headers as they are, no body bytes (gunicorn drops
    them anyway, logging a warning for each response that had some)."""
    if isinstance(answer, list):
        return []
    if isinstance(answer, Lingering):  # still reads and drops the refused body after the headers
        answer.answer = []
    return answer  # the admin API's (bottle sends no body for HEAD itself)


class Lingering:
    """The answer to a refused body (a WSGI response iterable). The server calls close() after
    sending it; close() then reads and drops what the client still sends, until the client
    stops (EOF, or LINGER_IDLE without a byte), LINGER_BYTES were read or `seconds` passed."""

    def __init__(self, answer: list[bytes], stream: Any, seconds: float):
        self.answer, self.stream, self.seconds = answer, stream, seconds

    def __iter__(self) -> Any:
        return iter(self.answer)

    def close(self) -> None:
        read = 0
        with gevent.Timeout(self.seconds, False):  # False: the time is up, silently
            while read < LINGER_BYTES:
                try:
                    with gevent.Timeout(LINGER_IDLE, False):
                        part = None
                        part = self.stream.read(CHUNK)
                except Exception:  # noqa: BLE001 - gone, or bytes gunicorn cannot parse: dropped anyway
                    return
                if not part:  # EOF, the end of the declared body, or idle: done
                    return
                read += len(part)
