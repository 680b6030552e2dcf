"""The tests' `zato` calls, each a process forked from one that has already imported what that
command imports, instead of a fresh `python -m zato`.

Why: `zato conn create` (or `channel`, `deploy`, `cluster status`...) spends about a second of
CPU importing SQLAlchemy, redis and the ODB's models before it does anything, and the suite makes
several hundred such calls: with process accounting on (`accton`, 12 of the heaviest files), the
CLI processes the tests started used 625 of the 1,083 CPU seconds that the whole machine spent.
On 2 cores that was the suite's time.

What stays as in a fresh process: the command's own code, in its own process (its own pid, its
stdin, stdout and stderr pipes, its cwd, the test's environment at the time of the call, its exit
status); the modules imported before it runs (a zygote per command imports `zato.cli.main` and
`zato.cli.COMMAND`, what `zato COMMAND` imports before parsing its arguments: see
zato.cli.main.build_parser), and nothing else of the zygote's (its socket is closed in the child).
What differs: the interpreter's start-up and those imports happened once, in the zygote; stdin is
an empty pipe (not the test process's) unless the call gives `input`. A call giving anything
else subprocess.run would take (env=, stdin=...) runs as a fresh process, as does every call
with ZATO_TEST_CLI_FORK=0. tests/integration/test_cli_fork.py holds the two ways side by side.

One zygote serves one call at a time; calls made at once (threads) get zygotes of their own. A
zygote exits when the test process's end of its socket closes (the test process exited).

    python -m tests.cli_fork COMMAND FD    the zygote: FD is its end of a SOCK_SEQPACKET pair
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

from zato.cli.main import COMMANDS  # what `zato COMMAND` imports first, and all a zygote imports besides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORKED_KWARGS = {"input", "cwd"}  # what a forked call takes besides timeout; anything else: a fresh process


def enabled() -> bool:
    return os.environ.get("ZATO_TEST_CLI_FORK", "1") != "0"


class ZygoteGone(RuntimeError):
    """The zygote exited (its imports failed, say) before it forked the call."""


class _Zygote:
    def __init__(self, command: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_fork", command, str(theirs.fileno())],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()

    def call(
        self, args: list[str], timeout: float, given: str | None, cwd: str
    ) -> subprocess.CompletedProcess:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"argv": args, "cwd": cwd, "env": dict(os.environ)}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [in_r, out_w, err_w])
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        deadline = time.monotonic() + timeout
        pid = self._answer(60)["pid"]  # at once, but for the zygote's own imports at its first call
        writer = threading.Thread(target=_write_all, args=(in_w, (given or "").encode()), daemon=True)
        writer.start()
        try:
            out, err = _read_both(out_r, err_r, deadline)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._answer(30)
            raise subprocess.TimeoutExpired(["zato", *args], timeout) from None
        rc = self._answer(max(1.0, deadline - time.monotonic()))["rc"]
        writer.join(5)
        return subprocess.CompletedProcess([sys.executable, "-m", "zato", *args], rc, out, err)

    def _answer(self, timeout: float) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        raw = self.sock.recv(65536)
        if not raw:
            raise ZygoteGone(f"the CLI zygote (pid {self.proc.pid}) exited {self.proc.wait(5)}")
        return json.loads(raw)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:  # the command exited without reading it all, as with subprocess.run
        pass
    finally:
        os.close(fd)


def _read_both(out_fd: int, err_fd: int, deadline: float) -> tuple[str, str]:
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired("zato", 0)
                for key, _ in sel.select(left):
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        sel.unregister(key.fd)
        finally:
            os.close(out_fd)
            os.close(err_fd)
    return tuple(b"".join(chunks[fd]).decode(errors="replace") for fd in (out_fd, err_fd))  # type: ignore[return-value]


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[str, list[_Zygote]] = {}

    def run(self, args: tuple[str, ...], timeout: float, **kw: Any) -> subprocess.CompletedProcess | None:
        if not enabled() or set(kw) - FORKED_KWARGS:
            return None
        command = args[0] if args and args[0] in COMMANDS else ""
        with self._lock:
            idle = self._idle.setdefault(command, [])
            zygote = idle.pop() if idle else None
        if zygote is None or zygote.proc.poll() is not None:
            zygote = _Zygote(command)
        try:
            done = zygote.call(list(args), timeout, kw.get("input"), str(kw.get("cwd") or os.getcwd()))
        except ZygoteGone:  # a fresh process says why (an import that fails, say) as a user sees it
            zygote.close()
            return None
        except BaseException:
            zygote.close()
            raise
        with self._lock:
            self._idle[command].append(zygote)
        return done


POOL = _Pool()


def run(args: tuple[str, ...], timeout: float, **kw: Any) -> subprocess.CompletedProcess | None:
    """`zato ARGS` forked from its command's zygote; None when the call needs a fresh process."""
    return POOL.run(args, timeout, **kw)


# The zygote and the forked command


def _child(request: dict[str, Any], fds: list[int], sock: socket.socket) -> int:
    sock.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # `python -m` puts the cwd first
    sys.argv = [os.path.join(ROOT, "zato", "__main__.py"), *request["argv"]]
    from zato.cli.main import main

    try:
        code: object = main(request["argv"])
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 - as Python's own top level: the traceback, exit 1
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    import logging

    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    return code & 0xFF


def zygote(command: str, fd: int) -> None:
    sock = socket.socket(fileno=fd)
    if command:
        importlib.import_module(f"zato.cli.{command}")
    while True:
        try:
            raw, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        except OSError:
            return
        if not raw:  # the test process closed its end, or exited
            return
        request = json.loads(raw)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request, fds, sock)
            finally:
                os._exit(code)
        for f in fds:
            os.close(f)
        with contextlib.suppress(OSError):  # the test process gone: the call ends as it would
            sock.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        try:
            sock.send(json.dumps({"rc": os.waitstatus_to_exitcode(status)}).encode())
        except OSError:
            return


if __name__ == "__main__":
    zygote(sys.argv[1], int(sys.argv[2]))
