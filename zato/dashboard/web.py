"""The dashboard's HTTP server: gevent's WSGI server (gevent.pywsgi) with what a public port
needs against slow and hostile clients, as the servers have from gunicorn and the LB from
HAProxy (docs/edge.md):

- a connection that sends no request within IDLE_TIMEOUT (new, or kept alive after an answer)
  is closed quietly;
- the request line and headers must all arrive within HEAD_TIMEOUT of their first byte, however
  slowly they trickle, else 408 and the connection is closed;
- a request body must arrive within BODY_TIMEOUT of the end of its headers, else 408 and close;
- at most `max_connections` connections are served at once (gevent's documented `spawn=N`, a
  pool of N greenlets); more wait in the listen backlog until one ends. N stays below the
  process's open-files limit, so a flood cannot run the dashboard out of descriptors;
- should accept() still fail for want of descriptors (EMFILE, ENFILE: other processes, a
  lower limit), one warning a minute says so and accepting pauses for FILES_PAUSE, instead of
  gevent's traceback per accept.

Connections cut for slowness are counted and logged once a minute at most (a flood would
otherwise write a line each).
"""

from __future__ import annotations

import errno
import logging
import resource
import time
from typing import Any

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

logger = logging.getLogger("zato.dashboard")

IDLE_TIMEOUT = 5.0  # seconds a connection may wait before it starts a request
HEAD_TIMEOUT = 5.0  # the request line and headers, from their first byte (HAProxy's timeout http-request)
BODY_TIMEOUT = 10.0  # the request body, from the end of the headers (the servers' [limits] body_timeout)
MAX_CONNECTIONS = 1000  # connections served at once, at most
RESERVED_FILES = 100  # descriptors kept for Redis, the ODB, logs, HAProxy's socket, /metrics calls
FILES_PAUSE = 0.5  # seconds accepting pauses after accept() failed for want of descriptors
SAY_EVERY = 60.0  # seconds between two log lines about slow clients, or about descriptors

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 36\r\n\r\nrequest headers not received in time"
)


# Every answer: no page of another origin may show the dashboard in a frame. Its session cookie
# is SameSite=Strict, but a browser sends it to frames of any page of the same site (any port
# of the host, any subdomain of its domain): such a page could lay the dashboard, logged in,
# under its own and have the operator click its buttons (clickjacking).
PAGE_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
)


def not_framed(app: Any) -> Any:
    """`app` (WSGI) with PAGE_HEADERS on every answer."""

    def wrapped(environ: dict, start_response: Any) -> Any:
        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *PAGE_HEADERS], exc_info)

        return app(environ, start)

    return wrapped


class SlowClient(BaseException):  # noqa: N818 - BaseException: bottle's catch-all must not make it a 500
    """The client did not send its request headers or body in time."""


def max_connections() -> int:
    """MAX_CONNECTIONS, or fewer so that they and RESERVED_FILES fit in the open-files limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(10, min(MAX_CONNECTIONS, soft - RESERVED_FILES))


class Throttled:
    """A warning at most once every SAY_EVERY seconds, with how many times it happened since."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock, self._said_at, self._since = clock, None, 0

    def __call__(self, message: str, *args: object) -> None:
        self._since += 1
        now = self._clock()
        if self._said_at is None or now - self._said_at >= SAY_EVERY:
            logger.warning(message + " (%d in all since the last such line)", *args, self._since)
            self._said_at, self._since = now, 0


class _DeadlineReader:
    """The request's input stream, every read of which must end before `deadline` (monotonic)."""

    def __init__(self, inner: Any, deadline: float) -> None:
        self._inner, self._deadline = inner, deadline

    def _timed(self, read: Any, *args: Any) -> Any:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise SlowClient("body")
        with gevent.Timeout(left, SlowClient("body")):
            return read(*args)

    def read(self, *args: Any) -> bytes:
        return self._timed(self._inner.read, *args)

    def readline(self, *args: Any) -> bytes:
        return self._timed(self._inner.readline, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Handler(WSGIHandler):
    """gevent's handler with the time limits above."""

    _head: gevent.Timeout | None = None
    server: DashboardServer

    def read_requestline(self) -> str:
        first = b""
        with gevent.Timeout(IDLE_TIMEOUT, False):  # False: the block just ends at the timeout
            first = self.rfile.peek(1)  # waits for a byte (or EOF), consumes nothing
        if not first:
            return ""  # idle too long, or closed: the connection ends quietly
        self._head = gevent.Timeout.start_new(HEAD_TIMEOUT, SlowClient("headers"))
        return super().read_requestline()

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            self._stop_head()

    def _stop_head(self) -> None:
        if self._head is not None:
            self._head.cancel()
            self._head = None

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()
        except SlowClient:
            self.server.slow(
                "dashboard: closed a connection from %s: its request headers did not arrive within %.0f s",
                self._peer(),
                HEAD_TIMEOUT,
            )
            return ("408", REQUEST_TIMEOUT)
        finally:
            self._stop_head()

    def get_environ(self) -> dict:
        env = super().get_environ()
        reader = _DeadlineReader(self.rfile, time.monotonic() + BODY_TIMEOUT)
        self.wsgi_input.rfile = reader  # what gevent's Input reads the body (and discards it) from
        if env.get("wsgi.input") is self.rfile:  # an Upgrade request gets the raw stream
            env["wsgi.input"] = reader
        return env

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        if not isinstance(v, SlowClient):
            super().handle_error(t, v, tb)
            return
        self.server.slow(
            "dashboard: closed a connection from %s: its request body did not arrive within %.0f s",
            self._peer(),
            BODY_TIMEOUT,
        )
        self.close_connection = True
        if self.response_length:  # the answer was on its way: closing is all that is left
            return
        try:
            headers = [("Content-Type", "text/plain"), ("Connection", "close")]
            self.start_response("408 Request Timeout", headers)
            self.write(b"request body not received in time")
        except OSError:
            pass

    def _peer(self) -> str:
        address = self.client_address
        return str(address[0] if isinstance(address, tuple) else address)


class DashboardServer(WSGIServer):
    """gevent's WSGIServer with the handler above, a bounded number of connections and one
    warning (not a traceback per accept) when descriptors run out."""

    handler_class = Handler

    def __init__(self, address: tuple[str, int], app: Any, connections: int, **kwargs: Any) -> None:
        super().__init__(address, app, spawn=connections, **kwargs)
        self.slow = Throttled()
        self._out_of_files = Throttled()

    def do_read(self) -> Any:
        try:
            return super().do_read()
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            self._out_of_files(
                "dashboard: cannot accept connections: %s (open-files limit %s); pausing accepts",
                e.strerror,
                soft,
            )
            self.stop_accepting()
            gevent.spawn_later(FILES_PAUSE, self._resume)
            return None

    def _resume(self) -> None:
        if self.started:
            self.start_accepting()
