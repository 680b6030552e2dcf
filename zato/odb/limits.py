"""Bounds of connection definitions that the connectors apply as well as the validation
(zato.odb.connectors). No SQLAlchemy here: connector processes import this module, and they
get their definitions from the supervisor, never from the ODB (see zato.connector.zygote).
"""

from __future__ import annotations

# Channels: invocations of the service running at once; 0 is the default (an AMQP channel's
# prefetch, ZMQ_IN_FLIGHT for ZeroMQ), never more than MAX_IN_FLIGHT.
MAX_IN_FLIGHT = 256
ZMQ_IN_FLIGHT = 16
# s a channel (AMQP, IBM MQ, ZeroMQ) waits for its service's answer by default (as before it was
# a setting), and at most
CHANNEL_TIMEOUT = 30
MAX_CHANNEL_TIMEOUT = 3600
AMQP_TIMEOUT, MAX_AMQP_TIMEOUT = CHANNEL_TIMEOUT, MAX_CHANNEL_TIMEOUT  # their names when only AMQP had it
MAX_AMQP_HEARTBEAT = 60  # s: a vanished holder's unacked AMQP messages come back within ~2x this
# s a connection to an AMQP broker has to get through TCP, TLS and the AMQP handshake (pika's
# stack_timeout): an amqp-def's handshake_timeout, this when it has none (a row from before)
AMQP_HANDSHAKE_TIMEOUT = 15
MAX_AMQP_HANDSHAKE_TIMEOUT = 300


def in_flight_limit(definition: dict) -> int:
    """How many invocations a channel runs at once: its max_in_flight, by default (0 or
    unset) its prefetch for AMQP and ZMQ_IN_FLIGHT for ZeroMQ; an AMQP channel never has more
    than its prefetch (the broker hands out no more unacked messages)."""
    prefetch = definition.get("prefetch")
    wanted = definition.get("max_in_flight") or prefetch or ZMQ_IN_FLIGHT
    if prefetch:
        wanted = min(wanted, prefetch)
    return max(1, min(wanted, MAX_IN_FLIGHT))


def answer_timeout(definition: dict) -> int:
    """Seconds a channel waits for its service's answer: its `timeout`, CHANNEL_TIMEOUT when
    unset (a row stored before the setting existed)."""
    value = definition.get("timeout")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else CHANNEL_TIMEOUT
