"""ZeroMQ addresses in the CZMQ convention ("@tcp://..." binds, ">tcp://..." connects), read
without importing pyzmq: server workers use them for outgoing sockets they may never open."""

from __future__ import annotations

import re

from zato.coord import parse

IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # a network interface a bind may name (eth0, br_0)


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


def check(address: str, bind_by_default: bool) -> list[tuple[str, bool, int | None]]:
    """Every (endpoint, bind?, TCP port or None) of `address`, or ValueError with one line
    saying what is wrong: libzmq would refuse it only when the connector starts (a bind to
    tcp://999.1.1.1 fails "No such device" in the connector's log)."""
    found: list[tuple[str, bool, int | None]] = []
    for part in (a.strip() for a in address.split(",")):
        if not part:
            continue
        where, bind = endpoint(part, bind_by_default)
        transport, sep, rest = where.partition("://")
        if not sep or not rest:
            raise ValueError(f"{part!r} is not transport://address, e.g. tcp://127.0.0.1:5555")
        if transport != "tcp":
            found.append((where, bind, None))
            continue
        host, colon, port = rest.rpartition(":")
        if not colon or not host:
            raise ValueError(f"{part!r}: a tcp:// address is host:port, e.g. tcp://127.0.0.1:5555")
        if port == "*" and bind:
            found.append((where, bind, None))  # any free port
        elif not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{part!r}: port {port!r} is not in 1..65535")
        else:
            found.append((where, bind, int(port)))
        name = host.split(";")[-1].strip("[]")  # tcp://source;host:port, tcp://[::1]:port
        octets = name.split(".")
        if all(o.isdigit() for o in octets) and (len(octets) != 4 or any(int(o) > 255 for o in octets)):
            raise ValueError(f"{part!r}: {name} is not an IPv4 address (four numbers 0..255)")
        _check_host(part, name, bind)
    if not found:
        raise ValueError(f"{address!r} names no endpoint")
    return found


def _check_host(part: str, name: str, bind: bool) -> None:
    """The host of a tcp:// endpoint: an IP address or a host name, and for a bind also * (every
    interface) or an interface's name. Any other ('a b') was stored, and its connector failed to
    bind or connect at every start, for ever."""
    if bind and (name == "*" or IFNAME_RE.fullmatch(name)):
        return
    try:
        parse.host(name)
    except parse.BadEntry:
        what = (
            "an IP address, a host name, an interface name nor *" if bind else "an IP address nor a host name"
        )
        raise ValueError(
            f"{part!r}: {name[:80]!r} is neither {what}: give one such as tcp://127.0.0.1:5555"
        ) from None
