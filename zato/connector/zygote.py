"""Connector fork server ("zygote"): connectors start in milliseconds after a takeover.

The supervisor starts one zygote at its own start-up, holder or standby: a single-threaded
`python -m zato.connector.zygote SERVER_DIR FD SUPERVISOR_PID` that imports the connector
modules and what they share (redis, pika) once, then waits on a unix socketpair (FD) for
requests. Each spawn forks a child that runs zato.connector.run.main() in-process with the
given environment and definition; only modules are pre-imported, so every child opens its own
Redis, AMQP and ZeroMQ connections. The definition (passwords included) comes from the
supervisor, which has just read it from the ODB: neither the zygote nor its children import
SQLAlchemy or the ODB's driver, nor reach the ODB at all.

The socketpair is anonymous (no path anyone could connect to), inherited by the zygote alone
and closed in every child, so what crosses it (definitions, the epoch's invoke key) stays
within the supervisor, the zygote and the one child it is for.

Wire protocol: one JSON object per SOCK_SEQPACKET message.

    supervisor -> zygote   {"op": "settings", "settings": {...}}   first, once: the server's
                                            settings without secrets (zato.config.transfer),
                                            so the zygote does not read server.conf again
                           {"op": "spawn", "argv": [SERVER_DIR, KIND, NAME], "env": {...},
                            "definition": {...}}      (never logged)
                           {"op": "signal", "pid": P, "sig": S}   (only while P is unreaped)
    zygote -> supervisor   {"ready": PID}                          once, after the imports
                           {"spawned": P} or {"error": TEXT, "errno": N}   answers a spawn
                           {"exit": P, "code": C}                  C as Popen.returncode

The zygote is the children's parent and reaps them. Death chain: the zygote has
PR_SET_PDEATHSIG on the supervisor's main thread and exits when the socket closes or its
parent changes; every child has PR_SET_PDEATHSIG on the zygote and checks os.getppid().

ZygoteOS is the supervisor side: the process.OS seam, with plain Popen (RealOS) as the
fallback while the zygote is starting, restarting, or cannot be used.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass

from zato.common.errors import ConnectorError
from zato.common.pidfile import pid_alive
from zato.common.retry import Backoff
from zato.config import transfer
from zato.config.settings import ServerSettings
from zato.connector.process import RealOS, describe_exit, die_with_parent
from zato.lifecycle.entry import Entry, parent_gone

logger = logging.getLogger("zato.supervisor.zygote")

RUN_MODULE = "zato.connector.run"
# What every connector needs, or nearly: the run module (settings, Redis, stats), the invoker
# of every channel and the AMQP connectors (the common kinds; pika is small). pyzmq and the
# IBM MQ client are left to the only connectors that use them: each costs every other process
# of the tree its pages. SQLAlchemy is nobody's here: definitions come in the spawn request.
PRELOAD = (
    RUN_MODULE,
    "zato.connector.invoke",
    "zato.connector.amqp_channel",
    "zato.connector.amqp_outgoing",
)
RESTART_DELAY, RESTART_DELAY_MAX = 1.0, 30.0  # doubling while it dies before it is ready
REPLY_TIMEOUT = 2.0  # a spawn answer later than this: give up on this zygote
ORPHAN_GRACE = 2.0  # children of a dead zygote (SIGKILLed by the kernel) are gone by then
MAX_MESSAGE = 1 << 20
SETTINGS_TIMEOUT = 10.0  # the supervisor sends them right after starting us


# -- the zygote process ----------------------------------------------------------------------
class Zygote:
    """Single-threaded fork loop. Never touches a network connection itself."""

    def __init__(self, sock: socket.socket, supervisor: int):
        self.sock = sock
        self.supervisor = supervisor
        self.children: set[int] = set()
        self.wakeup_r, self.wakeup_w = os.pipe()

    def serve(self) -> int:
        for fd in (self.wakeup_r, self.wakeup_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; Ctrl-C reaches it
        for module in PRELOAD:
            try:
                importlib.import_module(module)
            except ImportError as e:  # an optional driver; the child imports it if needed
                logger.debug("zygote: not preloading %s: %s", module, e)
        # Everything imported so far leaves the collector's view: no collection in a child
        # touches (and so copies) these pages; they stay shared with the zygote.
        gc.freeze()
        try:
            self._send({"ready": os.getpid()})
            self._loop()
        except OSError as e:  # the supervisor's end is gone
            logger.info("connector zygote (pid %d): socket closed (%s)", os.getpid(), e)
        logger.info("connector zygote (pid %d): supervisor gone, exiting", os.getpid())
        return 0

    def _loop(self) -> None:
        while os.getppid() == self.supervisor:
            watched: list[socket.socket | int] = [self.sock, self.wakeup_r]
            readable = select.select(watched, [], [], 0.5)[0]
            if self.wakeup_r in readable:
                while _read_some(self.wakeup_r):
                    pass
            self._reap()
            if self.sock in readable:
                data = self.sock.recv(MAX_MESSAGE)
                if not data:
                    break
                self._handle(json.loads(data))

    def _send(self, message: dict) -> None:
        self.sock.send(json.dumps(message).encode("utf-8"))

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self._send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def _handle(self, request: dict) -> None:
        if request.get("op") == "signal":
            if request["pid"] in self.children:  # unreaped: the pid is still our child
                os.kill(request["pid"], request["sig"])
            return
        zygote = os.getpid()
        try:
            pid = os.fork()
        except OSError as e:
            self._send({"error": e.strerror or str(e), "errno": e.errno or 0})
            return
        if pid == 0:
            self._child(zygote, request["argv"], request["env"], request.get("definition"))  # never returns
        self.children.add(pid)
        self._send({"spawned": pid})

    def _child(self, zygote: int, argv: list[str], env: dict[str, str], definition: dict | None) -> None:
        code = 1
        try:
            self.sock.close()  # the child must not hold the supervisor's socket
            signal.set_wakeup_fd(-1)
            os.close(self.wakeup_r)
            os.close(self.wakeup_w)
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            if parent_gone(zygote):  # the zygote died before the death signal was armed
                os._exit(1)
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
                handler.close()
            os.environ.update(env)
            sys.argv = [RUN_MODULE, *argv]
            code = sys.modules[RUN_MODULE].main(list(argv), definition)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - a forked child: report anything, then _exit
            traceback.print_exc()
        finally:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(code)


def _read_some(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


# -- the supervisor side ---------------------------------------------------------------------
@dataclass
class ZygoteChild:
    """Handle of a connector forked by the zygote (the Handle of the OS seam)."""

    pid: int
    returncode: int | None = None
    orphaned_at: float | None = None  # the zygote died: the kernel SIGKILLed this child


class ZygoteOS:
    """The OS seam through the zygote; RealOS (plain Popen) whenever the zygote is not ready.
    Main thread only (spawn, poll, signal and tick), like RealOS."""

    def __init__(self, settings: ServerSettings, fallback: RealOS | None = None):
        self.server_dir = settings.path
        given = transfer.to_dict(transfer.without_secrets(settings))
        self.settings_message = {"op": "settings", "settings": given}
        self.fallback = fallback or RealOS()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.ready = False
        self.next_start = 0.0
        self.backoff = Backoff(RESTART_DELAY, RESTART_DELAY_MAX)
        self.starts = 0
        self.children: dict[int, ZygoteChild] = {}

    # -- the OS seam ---------------------------------------------------------------------------
    def spawn(
        self, argv: tuple[str, ...], env: dict[str, str], definition: dict | None = None
    ) -> ZygoteChild | subprocess.Popen:
        args = run_args(argv)
        if args is None or not self._usable():
            return self.fallback.spawn(argv, env, definition)
        try:
            self._send({"op": "spawn", "argv": args, "env": env, "definition": definition})
            reply = self._await_reply()
        except ConnectorError as e:
            self._lost(str(e))
            return self.fallback.spawn(argv, env, definition)
        if "error" in reply:
            raise OSError(reply.get("errno") or 0, reply["error"])
        child = ZygoteChild(reply["spawned"])
        self.children[child.pid] = child
        return child

    def poll(self, handle: ZygoteChild | subprocess.Popen) -> int | None:
        if not isinstance(handle, ZygoteChild):
            return self.fallback.poll(handle)
        if handle.returncode is None:
            self._drain()
        if (handle.orphaned_at is not None and handle.returncode is None) and (
            not pid_alive(handle.pid) or self.now() - handle.orphaned_at >= ORPHAN_GRACE
        ):
            handle.returncode = -int(signal.SIGKILL)
        if handle.returncode is not None:
            self.children.pop(handle.pid, None)
        return handle.returncode

    def signal(self, handle: ZygoteChild | subprocess.Popen, sig: int) -> None:
        if not isinstance(handle, ZygoteChild):
            self.fallback.signal(handle, sig)
        elif handle.returncode is None and handle.orphaned_at is None:
            try:
                self._send({"op": "signal", "pid": handle.pid, "sig": int(sig)})
            except ConnectorError as e:
                self._lost(str(e))

    def now(self) -> float:
        return time.monotonic()

    # -- the zygote's life ---------------------------------------------------------------------
    def tick(self) -> None:
        """Call often from the supervisor's main loop: notices a dead zygote, starts one when
        due, reads its news (ready, exits)."""
        if self.proc is not None and self.proc.poll() is not None:
            self._lost(describe_exit(self.proc.returncode))
        if self.proc is None and self.now() >= self.next_start:
            self._start()
        self._drain()

    def close(self) -> None:
        """Supervisor shutdown: the zygote exits on EOF (any child left gets SIGKILL)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(2.0)
            self.proc = None

    def _usable(self) -> bool:
        if self.sock is not None and not self.ready:
            self._drain()
        return self.sock is not None and self.ready

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-m", __name__, self.server_dir, str(theirs.fileno()), str(os.getpid())]
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), preexec_fn=die_with_parent
            )
        except OSError as e:
            logger.error("cannot start the connector zygote (using plain processes): %s", e)
            ours.close()
            self.next_start = self.now() + self.backoff.delay  # the next delay, not doubled
            return
        finally:
            theirs.close()
        try:
            ours.send(json.dumps(self.settings_message).encode("utf-8"))  # buffered: it has not read yet
        except OSError as e:
            logger.error("cannot send the settings to the connector zygote: %s", e)
        ours.setblocking(False)
        self.sock, self.ready = ours, False
        self.starts += 1
        logger.info(
            "connector zygote %s (pid %d)", "restarted" if self.starts > 1 else "started", self.proc.pid
        )

    def _lost(self, why: str) -> None:
        """The zygote is unusable: kill it, orphan its children, restart it after a delay."""
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)
        now = self.now()
        live = [c for c in self.children.values() if c.returncode is None]
        for child in live:
            child.orphaned_at = now
        delay = self.backoff.next()
        logger.warning(
            "connector zygote (pid %d) lost: %s; %d connector(s) died with it; restarting it in %.1f s",
            pid,
            why,
            len(live),
            delay,
        )
        self.proc, self.sock, self.ready = None, None, False
        self.next_start = now + delay

    def _send(self, message: dict) -> None:
        if self.sock is None:
            raise ConnectorError("the zygote is not running")
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(REPLY_TIMEOUT)
            self.sock.send(json.dumps(message).encode("utf-8"))
        except OSError as e:
            raise ConnectorError(f"cannot send to the zygote: {e}") from e
        finally:
            if self.sock is not None and self.sock.fileno() >= 0:
                self.sock.setblocking(False)

    def _await_reply(self) -> dict:
        deadline = self.now() + REPLY_TIMEOUT
        while True:
            left = deadline - self.now()
            if self.sock is None:
                raise ConnectorError("the zygote closed its socket")
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise ConnectorError(f"the zygote did not answer a spawn request within {REPLY_TIMEOUT:g} s")
            message = self._receive()
            if message is None:
                raise ConnectorError("the zygote closed its socket")
            if "spawned" in message or "error" in message:
                return message
            self._on_news(message)

    def _receive(self) -> dict | None:
        """One message; None at EOF (or no socket); {} if nothing is waiting."""
        if self.sock is None:
            return None
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except BlockingIOError:
            return {}
        except OSError:
            return None
        return json.loads(data) if data else None

    def _drain(self) -> None:
        while self.sock is not None:
            message = self._receive()
            if message is None:
                self._lost("it closed its socket")
                return
            if not message:
                return
            self._on_news(message)

    def _on_news(self, message: dict) -> None:
        if "ready" in message:
            self.ready = True
            self.backoff.reset()
            logger.info("connector zygote ready (pid %d)", message["ready"])
        elif "exit" in message:
            child = self.children.get(message["exit"])
            if child is not None:
                child.returncode = message["code"]


def run_args(argv: tuple[str, ...]) -> list[str] | None:
    """SERVER_DIR, KIND, NAME if argv is `python -m zato.connector.run ...` (this interpreter)."""
    if len(argv) == 6 and argv[0] == sys.executable and tuple(argv[1:3]) == ("-m", RUN_MODULE):
        return list(argv[3:])
    return None


ENTRY = Entry(
    "zato-connector-zygote", "python -m zato.connector.zygote SERVER_DIR FD SUPERVISOR_PID", "zygote"
)


def main(argv: list[str] | None = None) -> int:
    def valid(args: list[str]) -> bool:
        return args[1].isdigit() and args[2].isdigit()

    return ENTRY.main(argv, 3, lambda args, _flags: start(int(args[1]), int(args[2])), valid)


def start(fd: int, supervisor: int) -> int:
    sock = socket.socket(fileno=fd)
    if parent_gone(supervisor):
        return 0  # the supervisor is already gone
    settings = ENTRY.settings(None, receive_settings, sock)
    if settings is None:
        return 0  # the supervisor closed the socket before it sent them: it is going away
    ENTRY.start(settings, title=f"zato-connector-zygote: {settings.name}")
    code = Zygote(sock, supervisor).serve()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown of everything preloaded: the supervisor waits for us


def receive_settings(sock: socket.socket) -> ServerSettings | None:
    """The supervisor's first message: its settings; None if it closed the socket instead."""
    sock.settimeout(SETTINGS_TIMEOUT)
    try:
        data = sock.recv(MAX_MESSAGE)
    except OSError as e:
        raise ConnectorError(f"no settings from the supervisor: {e}") from None
    finally:
        sock.settimeout(None)
    if not data:
        return None
    try:
        message = json.loads(data)
    except ValueError as e:
        raise ConnectorError(f"the supervisor's first message is not JSON: {e}") from None
    if not isinstance(message, dict) or message.get("op") != "settings":
        raise ConnectorError("the supervisor's first message is not its settings")
    return transfer.from_dict(ServerSettings, message.get("settings"))


if __name__ == "__main__":
    sys.exit(main())
