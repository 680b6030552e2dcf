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
                           {"op": "ping"}             when it has said nothing for PING_EVERY
                                                      (once it is ready)
    zygote -> supervisor   {"ready": PID}                          once, after the imports
                                            (within READY_TIMEOUT of its start)
                           {"spawned": P} or {"error": TEXT, "errno": N}   answers a spawn
                           {"pong": PID}                           answers a ping
                           {"exit": P, "code": C}                  C as Popen.returncode

The zygote is the children's parent and reaps them. Death chain: the zygote has
PR_SET_PDEATHSIG on the supervisor's main thread and exits when the socket closes or its
parent changes; every child has PR_SET_PDEATHSIG on the zygote and checks os.getppid().

ZygoteOS is the supervisor side: the process.OS seam, with plain Popen (RealOS) as the
fallback while the zygote is starting, restarting, or cannot be used.

The supervisor's main loop never waits on the zygote for longer than it can afford: it must step
down within the room between the renew deadline and the lease's expiry, whatever the zygote
does. A spawn waits SPAWN_WAIT for its answer at most (none while an earlier one is still
unanswered); a later answer is read on a later tick, the child STARTING meanwhile without a pid.
Requests go out without blocking (queued while the socket is full). A zygote that does not
answer (stuck, SIGSTOPped, starved) is lost (killed, so its connectors die with it, and
restarted after a delay): one that has not said ready within READY_TIMEOUT of its start (else it
would never be replaced, and every connector would start as a plain process for good), a spawn
unanswered for REPLY_TIMEOUT (its connector then starts as a plain process), a ping unanswered
for REPLY_TIMEOUT (a zygote that cannot report its children's exits: a connector killed
meanwhile would never be started again), or a SIGKILL not reported done within REPLY_TIMEOUT, or
within `kill_answer` while the supervisor stops them all (`stopping_all`: its lease is gone, or
it stops), so the step-down's SIGKILL still ends its connectors before the lease can expire.
Before, the main loop waited up to REPLY_TIMEOUT for each spawn's answer: a holder whose
renewals stopped meanwhile stepped down late, its connectors still running when another server
had taken the lease (tests/integration/test_zygote_stall.py).
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
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

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
# Its imports take about 0.3 s, a few seconds on a loaded host (CI, every server of a box
# starting at once); a zygote lost by mistake only costs a restart (connectors start as plain
# processes meanwhile), one that never says ready costs every connector's start for good.
READY_TIMEOUT = 5.0  # a zygote not ready this long after its start: give up on it
# ... doubled after each zygote lost so, up to this: a host too slow for READY_TIMEOUT (each
# zygote would be killed just before it gets ready) gets its zygote after a few tries.
READY_TIMEOUT_MAX = 60.0
PING_EVERY = 1.0  # a ready zygote silent this long is asked whether it still answers (REPLY_TIMEOUT)
SPAWN_WAIT = 0.05  # what the main loop waits for a spawn's answer at most (later: read on a later tick)
KILL_ANSWER = 0.1  # a SIGKILL not reported done this long after: the zygote is lost (supervisor: its room)
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
        if request.get("op") == "ping":
            self._send({"pong": os.getpid()})
            return
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

    pid: int  # 0 until the zygote answered the spawn
    returncode: int | None = None
    orphaned_at: float | None = None  # the zygote died: the kernel SIGKILLed this child
    asked_at: float = 0.0
    # (argv, env, definition) until answered: started as a plain process if the zygote is lost
    request: tuple | None = field(default=None, repr=False)
    error: OSError | None = None  # the zygote could not fork it (raised once by poll)
    signal_asked: int | None = None  # a signal asked for before the answer: sent with it
    kill_asked_at: float | None = None  # when SIGKILL was asked for
    plain: subprocess.Popen | None = None  # started as a plain process instead (zygote lost)


class ZygoteOS:
    """The OS seam through the zygote; RealOS (plain Popen) whenever the zygote is not ready.
    Main thread only (spawn, poll, signal and tick), like RealOS."""

    def __init__(
        self, settings: ServerSettings, fallback: RealOS | None = None, kill_answer: float = KILL_ANSWER
    ):
        self.server_dir = settings.path
        self.kill_answer = kill_answer
        self._stopping_all = False
        given = transfer.to_dict(transfer.without_secrets(settings))
        self.settings_message = {"op": "settings", "settings": given}
        self.fallback = fallback or RealOS()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.ready = False
        self.next_start = 0.0
        self.started_at = 0.0  # when the running zygote was started: it has ready_limit to say ready
        self.ready_limit = READY_TIMEOUT  # doubled by each zygote lost before it said ready
        self.backoff = Backoff(RESTART_DELAY, RESTART_DELAY_MAX)
        self.starts = 0
        self.children: dict[int, ZygoteChild] = {}
        self.pending: deque[ZygoteChild] = deque()  # spawns asked for, in the order it answers them
        self.outbox: deque[bytes] = deque()  # requests its full socket did not take yet
        self.heard_at = 0.0  # when it last said anything
        self.pinged_at: float | None = None  # a ping it has not answered yet

    # -- the OS seam ---------------------------------------------------------------------------
    def spawn(
        self, argv: tuple[str, ...], env: dict[str, str], definition: dict | None = None
    ) -> ZygoteChild | subprocess.Popen:
        args = run_args(argv)
        if args is None or not self._usable():
            return self.fallback.spawn(argv, env, definition)
        waits = not self.pending  # an earlier spawn unanswered: the zygote is slow, do not wait
        child = ZygoteChild(0, asked_at=self.now(), request=(argv, env, definition))
        try:
            self._send({"op": "spawn", "argv": args, "env": env, "definition": definition})
        except ConnectorError as e:
            self._lost(str(e))
            return self.fallback.spawn(argv, env, definition)
        self.pending.append(child)
        deadline = child.asked_at + SPAWN_WAIT
        while waits and child.pid == 0 and child.request is not None and self.sock is not None:
            left = deadline - self.now()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                break
            self._pump()
        if child.error is not None and child.plain is None:
            error, child.error = child.error, None
            raise error
        return child

    def poll(self, handle: ZygoteChild | subprocess.Popen) -> int | None:
        if not isinstance(handle, ZygoteChild):
            return self.fallback.poll(handle)
        if handle.plain is not None:
            handle.returncode = self.fallback.poll(handle.plain)
            return handle.returncode
        if handle.returncode is None:
            self._pump()
            self._check()
        if handle.error is not None:  # the zygote could not fork it
            error, handle.error = handle.error, None
            raise error
        if handle.plain is not None:  # the zygote was lost before it answered
            return self.poll(handle)
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
        elif handle.plain is not None:
            self.fallback.signal(handle.plain, sig)
        elif handle.returncode is None and handle.orphaned_at is None:
            if sig == signal.SIGKILL and handle.kill_asked_at is None:
                handle.kill_asked_at = self.now()
            if handle.pid == 0:  # not answered yet: sent with the answer
                if handle.signal_asked != signal.SIGKILL:
                    handle.signal_asked = int(sig)
                if sig == signal.SIGKILL and self._silent_for() >= self._kill_limit():
                    self._lost(f"it has not answered a spawn request for {self._silent_for():.2f} s,"
                               " and a connector it may be forking is to be killed")  # fmt: skip
                return
            try:
                self._send({"op": "signal", "pid": handle.pid, "sig": int(sig)})
            except ConnectorError as e:
                self._lost(str(e))

    def now(self) -> float:
        return time.monotonic()

    @contextlib.contextmanager
    def stopping_all(self) -> Iterator[None]:
        """While the supervisor stops every child (a step-down, its own stop): a SIGKILL the
        zygote has not reported done within kill_answer loses it (its connectors die with it),
        so they are gone before the lease can expire. Else it has REPLY_TIMEOUT: losing it ends
        every connector it forked, not only the one being killed."""
        self._stopping_all = True
        try:
            yield
        finally:
            self._stopping_all = False

    def _kill_limit(self) -> float:
        return self.kill_answer if self._stopping_all else REPLY_TIMEOUT

    # -- the zygote's life ---------------------------------------------------------------------
    def tick(self) -> None:
        """Call often from the supervisor's main loop: notices a dead zygote, starts one when
        due, reads its news (ready, exits)."""
        if self.proc is not None and self.proc.poll() is not None:
            self._lost(describe_exit(self.proc.returncode))
        if self.proc is None and self.now() >= self.next_start:
            self._start()
        self._pump()
        self._check()
        if self.ready and self.pinged_at is None and self.now() - self.heard_at >= PING_EVERY:
            self.pinged_at = self.now()
            try:
                self._send({"op": "ping"})
            except ConnectorError as e:
                self._lost(str(e))

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
            self._pump()
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
        self.started_at = self.heard_at = self.now()
        self.starts += 1
        logger.info(
            "connector zygote %s (pid %d)", "restarted" if self.starts > 1 else "started", self.proc.pid
        )

    def _lost(self, why: str) -> None:
        """The zygote is unusable: kill it, orphan its children, restart it after a delay; the
        spawns it did not answer start as plain processes (but those already to be stopped)."""
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
        pending, self.pending = list(self.pending), deque()
        self.outbox.clear()
        delay = self.backoff.next()
        plain = sum(1 for child in pending if child.signal_asked is None)
        instead = f"; {plain} connector(s) it did not fork start as plain processes" if plain else ""
        logger.warning(
            "connector zygote (pid %d) lost: %s; %d connector(s) died with it%s; restarting it in %.1f s",
            pid,
            why,
            len(live),
            instead,
            delay,
        )
        self.proc, self.sock, self.ready, self.pinged_at = None, None, False, None
        self.next_start = now + delay
        for child in pending:
            request, child.request = child.request, None
            if child.signal_asked is not None or request is None:  # stopped before it started
                child.returncode = -(child.signal_asked or int(signal.SIGKILL))
                continue
            try:
                child.plain = self.fallback.spawn(*request)
            except OSError as e:
                child.error = e
            else:
                child.pid = child.plain.pid

    def _silent_for(self) -> float:
        """How long the oldest unanswered spawn has waited since the zygote last said anything."""
        if not self.pending:
            return 0.0
        return self.now() - max(self.pending[0].asked_at, self.heard_at)

    def _check(self) -> None:
        """A zygote that does not answer is lost: not ready READY_TIMEOUT after its start, a spawn
        unanswered for REPLY_TIMEOUT, or a SIGKILL not reported done within _kill_limit()."""
        if self.proc is None:
            return
        if not self.ready and self.now() - self.started_at >= self.ready_limit:
            limit, self.ready_limit = self.ready_limit, min(self.ready_limit * 2, READY_TIMEOUT_MAX)
            self._lost(
                f"it did not say ready within {limit:g} s of its start (the next gets {self.ready_limit:g} s)"
            )
            return
        if self._silent_for() >= REPLY_TIMEOUT:
            self._lost(f"it did not answer a spawn request within {REPLY_TIMEOUT:g} s")
            return
        if self.pinged_at is not None and self.now() - max(self.pinged_at, self.heard_at) >= REPLY_TIMEOUT:
            self._lost(f"it did not answer a ping within {REPLY_TIMEOUT:g} s")
            return
        now, limit = self.now(), self._kill_limit()
        for child in (*self.children.values(), *self.pending):
            asked = child.kill_asked_at
            if asked is not None and child.returncode is None and now - asked >= limit:
                which = f"connector pid {child.pid}" if child.pid else "a connector it had not forked yet"
                self._lost(f"it did not report {which} killed within {limit:.2f} s of its SIGKILL")
                return

    def _send(self, message: dict) -> None:
        """Queued, and sent as far as its socket takes it (never blocking)."""
        if self.sock is None:
            raise ConnectorError("the zygote is not running")
        self.outbox.append(json.dumps(message).encode("utf-8"))
        self._flush()

    def _flush(self) -> None:
        while self.outbox and self.sock is not None:
            try:
                self.sock.send(self.outbox[0])
            except BlockingIOError:
                return
            except OSError as e:
                raise ConnectorError(f"cannot send to the zygote: {e}") from e
            self.outbox.popleft()

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

    def _pump(self) -> None:
        """Sends what waits to be sent, reads what the zygote said."""
        try:
            self._flush()
        except ConnectorError as e:
            self._lost(str(e))
            return
        while self.sock is not None:
            message = self._receive()
            if message is None:
                self._lost("it closed its socket")
                return
            if not message:
                return
            self.heard_at = self.now()
            self._on_news(message)

    def _on_news(self, message: dict) -> None:
        if "ready" in message:
            self.ready = True
            self.backoff.reset()
            self.ready_limit = READY_TIMEOUT
            logger.info("connector zygote ready (pid %d)", message["ready"])
        elif "pong" in message:
            self.pinged_at = None
        elif "exit" in message:
            child = self.children.get(message["exit"])
            if child is not None:
                child.returncode = message["code"]
        elif ("spawned" in message or "error" in message) and self.pending:
            self._answered(self.pending.popleft(), message)

    def _answered(self, child: ZygoteChild, message: dict) -> None:
        child.request = None
        if "error" in message:
            child.error = OSError(message.get("errno") or 0, message["error"])
            return
        child.pid = message["spawned"]
        self.children[child.pid] = child
        if child.signal_asked is not None:
            try:
                self._send({"op": "signal", "pid": child.pid, "sig": child.signal_asked})
            except ConnectorError as e:
                self._lost(str(e))


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
