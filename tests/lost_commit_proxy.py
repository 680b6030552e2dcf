"""A TCP forwarder to PostgreSQL that loses one commit's answer, for what the link to the ODB
breaking at the worst moment does: once armed, the COMMIT of the first transaction whose
statements hold `marker` is forwarded to PostgreSQL (`deliver`), which commits it, and the
connection is cut before its answer reaches the client; or, not delivered, cut before
PostgreSQL got it (nothing committed). Every other connection and transaction goes through."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.conn_support import TCPProxy

COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # psycopg commits with a simple query


class LostCommitProxy(TCPProxy):
    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 5432)):
        super().__init__(port, target)
        self.marker, self.deliver = b"", True
        self.cut = threading.Event()  # set once a commit's answer was lost (or the commit cut)
        self._armed = False

    def arm(self, marker: bytes, deliver: bool = True) -> None:
        self.marker, self.deliver = marker, deliver
        self.cut.clear()
        self._armed = True

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        upstream.settimeout(None)
        wrote, victim = threading.Event(), threading.Event()
        threading.Thread(target=self._to_pg, args=(client, upstream, wrote, victim), daemon=True).start()
        threading.Thread(target=self._to_client, args=(upstream, client, victim), daemon=True).start()

    def _to_pg(
        self, client: socket.socket, upstream: socket.socket, wrote: threading.Event, victim: threading.Event
    ) -> None:
        try:
            while data := client.recv(65536):
                if self._armed and self.marker in data:
                    wrote.set()
                if self._armed and wrote.is_set() and COMMIT in data:
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
                    self._lose(client, upstream)
                    return
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _lose(self, client: socket.socket, upstream: socket.socket) -> None:
        self.cut.set()
        _close(client, upstream)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
