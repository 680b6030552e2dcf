"""A TLS-terminating TCP forwarder for tests: RabbitMQ here listens without TLS, so a test puts
this in front of it to talk TLS to a real broker. Test-only; never used by zato/."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections.abc import Iterator

from tests.conn_support import TCPProxy
from tests.support import free_port
from zato.common import tls


class TLSProxy(TCPProxy):
    """Accept TLS on 127.0.0.1:`port` with `cert_file`/`key_file` (None: the key is in
    `cert_file`), forward plain to `target`."""

    def __init__(self, port: int, target: tuple[str, int], cert_file: str, key_file: str | None = None):
        super().__init__(port, target)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_file, key_file)

    def wrap(self, client: socket.socket) -> socket.socket:
        client.settimeout(10)
        return self.context.wrap_socket(client, server_side=True)


@contextlib.contextmanager
def tls_broker(folder: str, target: tuple[str, int] = ("127.0.0.1", 5672)) -> Iterator[tuple[int, str]]:
    """The local RabbitMQ behind TLS: yields (port, CA file) of a TLSProxy whose certificate
    for localhost comes from a new private CA in `folder`; the proxy stops on exit."""
    ca = tls.new_ca("test broker CA")
    ca_file, _ = tls.write_ca(os.path.join(folder, "ca"), ca)
    cert, key = tls.issue(ca, "localhost", ["localhost"])
    bundle = tls.write_bundle(os.path.join(folder, "broker.pem"), cert, key, [])
    port = free_port()
    proxy = TLSProxy(port, target, bundle)
    proxy.start()
    try:
        yield port, ca_file
    finally:
        proxy.stop()
