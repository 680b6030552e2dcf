"""The holder's last confirmed lease renewal, shared with its connectors through a local file.

The supervisor writes `EPOCH STARTED` (STARTED: when the renewal Redis confirmed began, on
the monotonic clock, which every process of the host shares) after each confirmation; a
connector of that epoch reads it before it asks Redis for the cluster's epoch
(zato.connector.base.Context). While its own supervisor confirmed the lease less than
renew_deadline ago, the lease key is still its own (it lives a whole TTL past the start of
that renewal), so no newer epoch can exist and the Redis read is skipped: an idle holder's
connector no longer sends one GET a second. A file that is missing, garbled, of another epoch
or stale (its supervisor stopped or hung, or lost Redis) vouches for nothing: the connector
then reads the epoch from Redis every second, as it always did.

The file lives in the server's work directory and is replaced atomically (os.replace), so a
reader sees one whole record or the previous one; it is not fsynced: it means nothing after a
reboot (the monotonic clock restarts, and a record from the future vouches for nothing).
"""

from __future__ import annotations

import math
import os

NAME = "lease-confirmed"


def path(server_dir: str) -> str:
    return os.path.join(server_dir, "work", NAME)


def write(file: str, epoch: int, started: float) -> None:
    """Record that the renewal of `epoch` begun at `started` (monotonic) was confirmed."""
    tmp = f"{file}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{epoch} {started!r}\n")
    os.replace(tmp, file)


def read(file: str) -> tuple[int, float] | None:
    """(epoch, started) of the last record, None if there is none or it is not one."""
    try:
        with open(file) as f:
            text = f.read(64)
    except OSError:
        return None
    parts = text.split()
    if len(parts) != 2 or not text.endswith("\n") or not parts[0].isdigit():
        return None
    try:
        started = float(parts[1])
    except ValueError:
        return None
    return (int(parts[0]), started) if math.isfinite(started) else None


def vouches(file: str, epoch: int, now: float, within: float) -> bool:
    """True when the supervisor confirmed `epoch` less than `within` seconds before `now`."""
    return now < vouched_until(file, epoch, now, within)


def vouched_until(file: str, epoch: int, now: float, within: float) -> float:
    """The monotonic time until which the last record vouches for `epoch` (its renewal's start
    plus `within`); 0.0 when it vouches for nothing (missing, garbled, another epoch's, or from
    the future)."""
    record = read(file)
    if record is None or record[0] != epoch or now < record[1]:
        return 0.0
    return record[1] + within
