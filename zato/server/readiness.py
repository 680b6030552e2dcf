"""Readiness of a server, as `/zato/ready` reports it and the LB's health check reads it.

Liveness (`/zato/ping`) says the process answers; readiness says it can serve: the worker
has loaded every deployed service and HTTP channel from the ODB, and the server is not
draining on its way down. The draining flag is one byte of anonymous shared memory that the
arbiter creates before it forks the workers, so a SIGTERM seen by the arbiter is seen at
once by every worker without a syscall per request.
"""

from __future__ import annotations

import mmap

READY_PATH = "/zato/ready"

STARTING = "starting: the services are not loaded yet"
DRAINING = "draining: the server is stopping"


class DrainFlag:
    """A flag set by the arbiter and read by its forked workers."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS: inherited across fork()

    def set(self) -> None:
        self._mem[0] = 1

    def clear(self) -> None:
        self._mem[0] = 0

    def is_set(self) -> bool:
        return self._mem[0] == 1


def not_ready_reason(loaded: bool, draining: bool) -> str:
    """Why this worker must not take traffic, or "" if it may."""
    if draining:
        return DRAINING
    if not loaded:
        return STARTING
    return ""


READY_HEAD = b'{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "'
READY_TAIL = b'"}, "zato_ready_response": {"ready": true}}'


def ready_body(cid: str) -> bytes:
    return READY_HEAD + cid.encode() + READY_TAIL
