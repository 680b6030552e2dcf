"""ZeroMQ addresses in the CZMQ convention ("@tcp://..." binds, ">tcp://..." connects), read
without importing pyzmq: server workers use them for outgoing sockets they may never open."""

from __future__ import annotations


def endpoint(address: str, bind_by_default: bool) -> tuple[str, bool]:
    """(address without prefix, bind?) for a CZMQ-style address."""
    if address.startswith("@"):
        return address[1:], True
    if address.startswith(">"):
        return address[1:], False
    return address, bind_by_default


def endpoints(address: str) -> list[tuple[str, bool]]:
    """Every (address, bind?) of a comma-separated channel address."""
    return [endpoint(a.strip(), bind_by_default=True) for a in address.split(",") if a.strip()]
