"""Run a module's main() in a child forked from the arbiter, behind the subset of the Popen
API the sidecar uses (pid, poll, wait, send_signal, kill).

Why fork and not exec: the arbiter has imported SQLAlchemy, redis and most of zato already;
a forked connector supervisor shares those pages with it (copy-on-write) and starts at once,
instead of a fresh interpreter importing them again (tens of MB and a second or more of CPU
while the workers boot). The child drops what is the arbiter's (signal handlers, listening
sockets, the arbiter's wake-up pipe) before running main(), and leaves with os._exit so
nothing of the arbiter's exit path (atexit, pidfile) runs in it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from typing import Any

logger = logging.getLogger("zato.arbiter")

# Signals gunicorn's arbiter handles; the child starts from the defaults.
ARBITER_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGINT", "SIGTERM", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2",
                   "SIGWINCH", "SIGCHLD")  # fmt: skip


class ForkedProcess:
    """A forked child, seen as much like a subprocess.Popen as the sidecar needs."""

    def __init__(self, pid: int, args: list[str]):
        self.pid, self.args = pid, args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (gunicorn's waitpid(-1)): as Popen
            self.returncode = 0
            return 0
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_main(module: str, args: list[str], close: list[socket.socket | int], **given: Any) -> ForkedProcess:
    """Fork; the child runs `module`.main(args, **given) and exits with its code. `close`:
    sockets and file descriptors of the parent the child must not hold (listeners, pipes).
    `given`: objects of the parent the child takes as they are (its settings)."""
    pid = os.fork()
    if pid:
        return ForkedProcess(pid, [module, *args])
    code = 1
    try:
        for name in ARBITER_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for item in close:
            with contextlib.suppress(OSError):
                item.close() if isinstance(item, socket.socket) else os.close(item)
        code = importlib.import_module(module).main(args, **given)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never return into the arbiter
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
