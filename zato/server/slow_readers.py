"""Clients that do not take their answers ([limits] send_timeout in server.conf).

gunicorn writes an answer with a blocking sendall and no timeout of its own. A client of a
server's own port that sends requests (pipelined, or one asking for a large answer) and never
reads the answers fills the socket's buffers, and the greenlet writing to it then waits for
ever: 40 such sockets, each sending 2,000 pipelined `GET /metrics` without reading, held a
worker with worker_connections = 20 for good, and /zato/ping (the load balancer's health
check) timed out for as long as they stayed (3 minutes, until the test stopped).

`guard(start_response, ...)` has gunicorn write the answer through `SendGuard`: each write
may wait at most `send_timeout` seconds for the client to take a byte (nginx's send_timeout:
the time between two writes that make progress, not the whole answer, so a slow but reading
client is served). Past it, the write raises `NotReading`, a BrokenPipeError, which gunicorn
takes for a client that went away: it closes the connection and logs at DEBUG. The server
logs one WARNING line a minute at most per worker (`Throttled`), with how many went unsaid.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from zato.common.errors import ZatoError
from zato.server.body import Throttled, one_line, peer

logger = logging.getLogger("zato.server")


class NotReading(ZatoError, BrokenPipeError):
    """The client took no byte of its answer for `send_timeout` seconds: the connection is
    closed (a BrokenPipeError with EPIPE, which gunicorn takes for a client that went away)."""


class SendGuard:
    """A client socket whose sendall waits at most `timeout` seconds for each bit of progress;
    everything else is the socket's own (gunicorn may use fileno() for sendfile)."""

    def __init__(self, sock: Any, timeout: float, on_timeout: Any):
        self._sock, self._timeout, self._on_timeout = sock, timeout, on_timeout

    def sendall(self, data: Any) -> None:
        sock = self._sock
        view = memoryview(data).cast("B")
        before = sock.gettimeout()
        sock.settimeout(self._timeout)  # for these sends only: gunicorn's reads keep their own
        try:
            while view:
                try:
                    sent = sock.send(view)
                except TimeoutError:
                    self._on_timeout()
                    what = f"the client took no byte of its answer in {self._timeout:g} s"
                    raise NotReading(errno.EPIPE, what) from None
                view = view[sent:]
        finally:
            sock.settimeout(before)

    def send(self, data: Any) -> int:
        """All of `data` (a short send is allowed to send more), within the same limit."""
        self.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class SlowReaders:
    """Guards the answers of one worker: `guard` per request, one warning line per `every`."""

    def __init__(self, timeout: float, every: float = 60.0):
        self.timeout = timeout
        self.said = Throttled(every)

    def guard(self, environ: dict, start_response: Any) -> None:
        """Have gunicorn's Response (start_response is bound to it) write through a
        SendGuard; any other server keeps its own behaviour."""
        response: Any = getattr(start_response, "__self__", None)
        sock = getattr(response, "sock", None)
        if sock is None or isinstance(sock, SendGuard):
            return
        response.sock = SendGuard(sock, self.timeout, lambda: self._say(environ))

    def _say(self, environ: dict) -> None:
        unsaid = self.said.due()
        if unsaid is None:
            return
        logger.warning(
            "%s %s from %s: the client took no byte of its answer in %g s ([limits] send_timeout); "
            "connection closed (said %s at most in each worker; %d more since the last time)",
            one_line(environ.get("REQUEST_METHOD", ""), 40),
            one_line(environ.get("PATH_INFO", "")),
            peer(environ),
            self.timeout,
            self.said.how_often,
            unsaid,
        )
