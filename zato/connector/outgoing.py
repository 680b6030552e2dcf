"""`self.outgoing` for services: AMQP (through Redis to the outgoing connector) and ZeroMQ
(sockets in the server itself, as the seed says).

STUB until issue #5. Contract: make_outgoing(settings, redis_client) is called once per
gunicorn worker and returns an object with `.amqp.send(data, name, exchange=None,
routing_key=None, properties=None)` and `.zmq.send(data, name)`.
"""

from __future__ import annotations

from zato.common.errors import ConnectorError


class _NotYet:
    def __init__(self, kind: str):
        self.kind = kind

    def send(self, *args, **kwargs) -> None:
        raise ConnectorError(f"outgoing {self.kind} connections are not available yet")


class Outgoing:
    def __init__(self) -> None:
        self.amqp = _NotYet("AMQP")
        self.zmq = _NotYet("ZeroMQ")


def make_outgoing(settings, redis_client) -> Outgoing:  # noqa: ANN001
    return Outgoing()
