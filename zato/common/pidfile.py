"""Pidfiles: read, check liveness, clean stale ones. Writing is done by the process itself."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from zato.common.fs import atomic_write


@dataclass(frozen=True)
class PidStatus:
    path: str
    pid: int | None  # None: no pidfile, or unreadable
    alive: bool

    @property
    def stale(self) -> bool:
        return self.pid is not None and not self.alive


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pidfile(path: str) -> PidStatus:
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return PidStatus(path, None, False)
    try:
        pid = int(text)
    except ValueError:
        return PidStatus(path, -1, False)
    return PidStatus(path, pid, pid > 0 and pid_alive(pid))


def write_pidfile(path: str, pid: int | None = None) -> None:
    atomic_write(path, f"{pid or os.getpid()}\n")


def remove_pidfile(path: str, pid: int | None = None) -> None:
    """Remove `path` if it still names `pid` (default: this process)."""
    status = read_pidfile(path)
    if status.pid in (pid or os.getpid(), -1):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
