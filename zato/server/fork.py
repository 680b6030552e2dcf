"""Run a module's main() in a child forked from the arbiter, behind the subset of the Popen
API the sidecar uses (pid, poll, wait, send_signal, kill).

Why fork and not exec: the arbiter has imported SQLAlchemy, redis and most of zato already;
a forked connector supervisor shares those pages with it (copy-on-write) and starts at once,
instead of a fresh interpreter importing them again (tens of MB and a second or more of CPU
while the workers boot). The child drops what is the arbiter's (signal handlers, listening
sockets, the arbiter's wake-up pipe) before running main(), and leaves with os._exit so
nothing of the arbiter's exit path (atexit, pidfile) runs in it.

start_child(work).result() runs one function in such a child and hands back its result: the arbiter's
work with a networked ODB runs there (odb_work), so that no database driver is imported into
the arbiter and from it into the workers before their gevent monkey-patching.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from zato.common.errors import ZatoError

logger = logging.getLogger("zato.arbiter")

T = TypeVar("T")
ANSWER_HEAD = 8  # bytes of the length before a forked child's answer (start_child)

# Signals gunicorn's arbiter handles; the child starts from the defaults.
ARBITER_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGINT", "SIGTERM", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2",
                   "SIGWINCH", "SIGCHLD")  # fmt: skip


class ForkedProcess:
    """A forked child, seen as much like a subprocess.Popen as the sidecar needs."""

    def __init__(self, pid: int, args: list[str]):
        self.pid, self.args = pid, args
        self.returncode: int | None = None
        self.status_lost = False  # reaped by someone else: how it ended is not known here

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (gunicorn's waitpid(-1)): 0, as Popen
            self.returncode, self.status_lost = 0, True
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


def odb_work(url: str, work: Callable[[], T], what: str) -> T:
    """work(), which uses the ODB at `url`, for the arbiter. The arbiter must not import a
    network database driver: its gevent workers are forked from it, and psycopg imported
    before a worker's monkey-patching waits on the network without letting the worker's other
    requests run (with the ODB's host cut off, a whole worker, /zato/ping included, stalls for
    PostgreSQL's connect_timeout at every read). So the work runs in a child forked for it;
    SQLite, a local file, is used here."""
    return start_odb_work(url, work, what).result()


def start_odb_work(url: str, work: Callable[[], T], what: str) -> Pending[T]:
    """odb_work started (in a child), so that the arbiter can do something else meanwhile;
    .result() waits for it. With SQLite the work runs in .result()."""
    from zato.odb.engine import is_sqlite, load_dialect

    if is_sqlite(url):
        return Pending(work, what)
    load_dialect(url)  # SQLAlchemy's side, which imports no driver, is shared with the workers
    return start_child(work, what)


class Pending(Generic[T]):
    """Work started in a child (pid and the read end of its answer pipe), or, without a pid,
    work to run when its result is asked for."""

    def __init__(self, work: Callable[[], T] | None, what: str, pid: int = 0, answer: int = -1):
        self._work, self.what, self.pid, self._answer = work, what, pid, answer

    def result(self) -> T:
        if self._work is not None:
            return self._work()
        try:
            data = self._read_answer()
        finally:
            os.close(self._answer)
        if data is None:
            raise ZatoError(f"{self.what}: the process forked for it ended without an answer")
        ok, value = pickle.loads(data)  # noqa: S301 - from our own child, through our own pipe
        if not ok:
            raise value
        return value

    def _read_answer(self) -> bytes | None:
        """The child's answer (its length first), or None if it ended without one. Not read
        until EOF: a worker gunicorn forked meanwhile (from another thread) holds a copy of
        the pipe's write end, so EOF may not come while that worker lives."""
        data, gone = b"", False
        poller = select.poll()  # not select.select: the arbiter may hold more than 1,024 fds
        poller.register(self._answer, select.POLLIN)
        while True:
            if len(data) >= ANSWER_HEAD:
                size = int.from_bytes(data[:ANSWER_HEAD], "big")
                if len(data) >= ANSWER_HEAD + size:
                    self._reap()
                    return data[ANSWER_HEAD : ANSWER_HEAD + size]
            if poller.poll(0 if gone else 100):  # ms
                chunk = os.read(self._answer, 65536)
                if chunk:
                    data += chunk
                    continue
                gone = True  # EOF: every write end is closed
            if gone:
                self._reap()
                return None
            gone = self._ended()  # read once more what it may have written just before

    def _ended(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by gunicorn's waitpid(-1)
            return True
        return pid != 0

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):  # gunicorn's waitpid(-1) may have reaped it
            os.waitpid(self.pid, 0)


def start_child(work: Callable[[], T], what: str) -> Pending[T]:
    """work() in a child forked for it; .result() hands back its result (or raises the
    exception it raised), ZatoError if it died without an answer. For what must not load a
    module into the arbiter, whose workers inherit it (odb_work). The child leaves with
    os._exit, so nothing of the arbiter's exit path runs in it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(r)
            for name in ARBITER_SIGNALS:
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            try:
                answer: tuple = (True, work())
            except BaseException as e:  # noqa: BLE001 - handed back to the arbiter, raised there
                answer = (False, e)
            try:
                data = pickle.dumps(answer)
                pickle.loads(data)  # noqa: S301 - what the arbiter will do with it
            except Exception:  # noqa: BLE001 - what cannot travel goes as its text
                data = pickle.dumps((False, ZatoError(f"{what}: {answer[1]}")))
            with os.fdopen(w, "wb") as out:
                out.write(len(data).to_bytes(ANSWER_HEAD, "big") + data)
        finally:
            os._exit(0)
    os.close(w)
    return Pending(None, what, pid, r)
