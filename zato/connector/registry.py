"""Which connector processes the lease holder must run (the supervisor's desired state).

STUB until issue #5: no connectors yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from zato.config.settings import ServerSettings


@dataclass(frozen=True)
class ConnectorSpec:
    name: str  # unique in the cluster, e.g. "amqp-channel:orders"
    kind: str  # amqp-channel | amqp-outgoing | zmq-channel | ibm-mq-channel | ibm-mq-outgoing
    argv: tuple[str, ...]  # the command that runs it (python -m zato.connector.run ...)
    config_hash: str  # changes whenever its definition changes -> restart


def desired(settings: ServerSettings) -> dict[str, ConnectorSpec]:
    """Every active connector definition of the cluster, read from the ODB."""
    return {}
