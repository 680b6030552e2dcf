"""A TLS-terminating TCP forwarder for tests: RabbitMQ here listens without TLS, so a test puts
this in front of it to talk TLS to a real broker. Test-only; never used by zato/."""

from __future__ import annotations

import socket
import ssl

from tests.conn_support import TCPProxy


class TLSProxy(TCPProxy):
    """Accept TLS on 127.0.0.1:`port` with `cert_file`/`key_file`, forward plain to `target`."""

    def __init__(self, port: int, target: tuple[str, int], cert_file: str, key_file: str):
        super().__init__(port, target)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_file, key_file)

    def wrap(self, client: socket.socket) -> socket.socket:
        client.settimeout(10)
        return self.context.wrap_socket(client, server_side=True)
