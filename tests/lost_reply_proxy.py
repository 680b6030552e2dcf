"""A TCP forwarder to Redis that loses one answer, for what a connection breaking at the worst
moment does: the first command whose bytes hold `marker` is forwarded to Redis (`deliver`) and
its connection cut once Redis answered it, the answer dropped (Redis ran it; the client cannot
know); or, not delivered, cut before Redis got it. Redis's NOSCRIPT answer (redis-py then loads
the script and sends it again) goes through: the command that counts is the one Redis runs.
After the cut, `away`: the forwarder stops listening (Redis unreachable until start() again);
otherwise it forwards every later connection as usual."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.conn_support import TCPProxy


class LostReplyProxy(TCPProxy):
    def __init__(  # noqa: PLR0913
        self,
        port: int,
        marker: bytes,
        deliver: bool = True,
        away: bool = False,
        target: tuple[str, int] = ("127.0.0.1", 6379),
    ):
        super().__init__(port, target)
        self.marker, self.deliver, self.away = marker, deliver, away
        self.cut = threading.Event()  # set once the answer was lost (or the command cut)
        self._armed = True

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        upstream.settimeout(None)
        victim = threading.Event()  # this connection carries the command whose answer goes
        threading.Thread(target=self._to_redis, args=(client, upstream, victim), daemon=True).start()
        threading.Thread(target=self._to_client, args=(upstream, client, victim), daemon=True).start()

    def _to_redis(self, client: socket.socket, upstream: socket.socket, victim: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self._armed and self.marker in data:
                    self._armed = False
                    if not self.deliver:
                        self._lose(client, upstream)
                        return
                    victim.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _to_client(self, upstream: socket.socket, client: socket.socket, victim: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if victim.is_set():
                    if data.startswith(b"-NOSCRIPT"):  # not run: the client sends it again
                        victim.clear()
                        self._armed = True
                    else:
                        self._lose(client, upstream)
                        return
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _lose(self, client: socket.socket, upstream: socket.socket) -> None:
        self.cut.set()  # first: once cut, the client may return and the test look at this at once
        if self.away:  # before the client, once cut, can connect again
            self.stop()
        _close(client, upstream)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
