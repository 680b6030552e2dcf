"""Process helpers for `zato start/stop` and the load-balancer controller's CLI side:
spawn a detached process, wait until it is ready, stop it by its pidfile.

Only the process itself writes and removes its pidfile; these helpers read it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from zato.common.errors import AlreadyRunning, ComponentError
from zato.common.fs import free_bytes, readable_by_others
from zato.common.pidfile import Owner, pid_alive, read_pidfile
from zato.lifecycle.entry import GATE_CHECKED, GATE_ENV, GATE_ERROR, GATE_GO, GATE_SAY


def python_module_argv(module: str, *args: str) -> list[str]:
    """The command that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


class Gate:
    """`zato start`'s end of the socket a spawned component reports its checks on and then
    waits at (entry.pass_gate): wait_checked() relays its warnings and raises its error;
    open() lets it go on; shut() makes it exit without having touched anything."""

    def __init__(self) -> None:
        self._ours, self.theirs = socket.socketpair()
        self._lines = self._ours.makefile("rb")

    def spawned(self) -> None:
        self.theirs.close()  # the component has its own copy

    def wait_checked(
        self,
        say: Callable[[str], None],
        proc: subprocess.Popen | None,
        timeout: float,
        what: str,
        logfiles: tuple[str, ...] = (),
    ) -> None:
        """Relay what the component says until its checks are done; a ComponentError with its
        one line if one failed, or with its last log lines if it exited first."""
        self._ours.settimeout(timeout)
        try:
            for raw in self._lines:
                kind, _, text = raw.decode("utf-8", "replace").rstrip("\n").partition(" ")
                if kind == GATE_SAY:
                    say(text)
                elif kind == GATE_ERROR:
                    raise ComponentError(text)
                elif kind == GATE_CHECKED:
                    return
        except TimeoutError:
            raise ComponentError(f"{what} did not finish its checks within {timeout:g} s") from None
        # It went away before saying so: wait_ready reports how it ended, with its log.
        wait_ready(lambda: False, proc, GATE_EXIT_WAIT, what, logfiles)

    def open(self) -> None:
        self._close(GATE_GO)

    def shut(self) -> None:
        self._close(b"")

    def _close(self, word: bytes) -> None:
        if self._ours.fileno() < 0:
            return
        try:
            if word:
                self._ours.sendall(word + b"\n")
        except OSError:  # it has exited already: wait_ready reports it
            pass
        finally:
            self._lines.close()
            self._ours.close()


GATE_EXIT_WAIT = 10.0  # seconds a component that stopped at its gate (or was turned back) has to exit


def spawn_detached(
    argv: list[str], logfile: str, cwd: str | None = None, gate: Gate | None = None
) -> subprocess.Popen:
    """Start `argv` in its own session with stdout/stderr appended to `logfile`; with a
    `gate`, it reports its checks to it and waits for gate.open() before its work."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        open(logfile, "ab").close()
    except OSError as e:  # its logs/ a file or a dangling symlink: one line, not a traceback
        raise ComponentError(f"{logfile}: cannot write it: {e.strerror or e}") from None
    env: dict[str, str] | None = None
    fds: tuple[int, ...] = ()
    if gate is not None:
        env, fds = {**os.environ, GATE_ENV: str(gate.theirs.fileno())}, (gate.theirs.fileno(),)
    try:
        with open(logfile, "ab") as out, open(os.devnull, "rb") as devnull:
            return subprocess.Popen(
                argv,
                stdin=devnull,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                env=env,
                pass_fds=fds,
            )
    finally:
        if gate is not None:
            gate.spawned()


def tail(path: str, lines: int = 20) -> list[str]:
    """The last `lines` lines of a text file ([] if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return data.splitlines()[-lines:]


READY_POLL = 0.02  # seconds between readiness probes (a local HTTP GET each)


def wait_ready(
    ready: Callable[[], bool],
    proc: subprocess.Popen | None,
    timeout: float,
    what: str,
    logfiles: tuple[str, ...] = (),
) -> None:
    """Poll ready() until it is true. ComponentError (with the last log lines) if the
    process exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ComponentError(
                f"{what} exited with code {proc.returncode} while starting" + _log_tail(logfiles)
            )
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet, whatever the reason
            pass
        time.sleep(READY_POLL)
    raise ComponentError(f"{what} did not become ready within {timeout:g} s" + _log_tail(logfiles))


def _log_tail(logfiles: tuple[str, ...]) -> str:
    """The last 20 lines of the most recently written of `logfiles`."""
    written = [p for p in logfiles if os.path.isfile(p) and os.path.getsize(p)]
    if not written:
        return ""
    path = max(written, key=os.path.getmtime)
    return f"; last lines of {path}:\n" + "\n".join("    " + line for line in tail(path, 20))


def check_not_running(pidfile: str, what: str, owner: Owner | None = None) -> str | None:
    """AlreadyRunning if the pidfile names the live component (`owner`); a stale pidfile (its
    pid gone, or another process now) is removed and a message saying so is returned (None
    if there was none)."""
    status = read_pidfile(pidfile, owner)
    if status.alive:
        raise AlreadyRunning(f"{what} is already running (pid {status.pid}, pidfile {pidfile})")
    if status.pid is not None:
        _unlink(pidfile)
        return f"{what}: removed a stale pidfile {pidfile} ({status.why_stale()})"
    return None


MIN_FREE_BYTES = 1024 * 1024  # below it a component cannot write its pidfile, logs or SQLite ODB


def check_disk_room(path: str, what: str) -> None:
    """ComponentError if the filesystem of `path` is (nearly) full. Started anyway, a server
    failed on its pidfile (ENOSPC), and its log, on the same disk, could not say why."""
    free = free_bytes(path)
    if free is not None and free < MIN_FREE_BYTES:  # unknown: the folder's own checks say why
        raise ComponentError(
            f"{what}: the disk of {path} is full ({free} bytes free): it cannot write its "
            "pidfile or logs; free some space, then start it again"
        )


def check_port_free(  # noqa: PLR0913 - where, what for, and how long to wait
    host: str,
    port: int,
    what: str,
    config_file: str,
    wait: float = 0.0,
    say: Callable[[str], None] | None = None,
) -> None:
    """ComponentError if something already listens on host:port. The line says where the port
    is set: a second quickstart or cluster on the same host stopped here without saying how
    to give it other ports. `wait`: seconds to wait for it to be let go of, said once (a
    server killed with SIGKILL: its workers hold its port until they see their parent gone)."""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
                return
            except OSError as e:
                error = e
        if time.monotonic() >= deadline:
            waited = f"; waited {wait:g} s for it" if wait else ""
            raise ComponentError(
                f"{what}: port {host}:{port} is not free ({error.strerror}{waited}); stop what listens"
                f" there, or set another [main] port in {config_file}"
            ) from None
        if say is not None:
            say(
                f"{what}: port {host}:{port} is still held, by what the component that died left"
                f" (its workers let go once they see it gone); waiting up to {wait:g} s"
            )
            say = None
        time.sleep(0.1)


def warn_readable(say: Callable[[str], None], *paths: str) -> None:
    """A warning for each file of credentials or keys that other users of the host can read (a
    config copied in with `cp` under umask 022, a folder made by hand): the component starts."""
    for path in paths:
        if not path:
            continue
        for one in (path, path + ".key") if path.endswith(".pem") else (path,):
            who = readable_by_others(one)
            if who:
                say(
                    f"warning: {one} holds secrets, and {who} can read it: chmod 600 {one}"
                    " (and 700 its folder)"
                )


def check_folders(path: str, names: tuple[str, ...], what: str) -> None:
    """ComponentError if one of the folders `names` of the component at `path` (logs, work...)
    is there as something else: a file, or a symlink to a folder that is not (another disk not
    mounted). Before, `zato start` ended in a traceback (FileExistsError), or the component did
    at start (NotADirectoryError). A folder not there yet is made as it starts."""
    for name in names:
        folder = os.path.join(path, name)
        if os.path.isdir(folder) or not os.path.lexists(folder):
            continue
        if os.path.islink(folder):
            problem = f"a symlink to {os.readlink(folder)}, which is no directory (a disk not mounted?)"
        else:
            problem = "a file, not a directory"
        raise ComponentError(f"{what}: {folder} is {problem}: make it a directory, or remove it")


WILDCARDS = ("", "0.0.0.0", "::")  # a bind to every interface takes the port on each address too


def check_ports_distinct(listeners: list[tuple[str, str, int, str]]) -> None:
    """ComponentError if two of the components one `zato start` starts would listen on the same
    port of the same address: (what, host, port, config file) each. Each port was free when
    checked, so both would start and one fail half-way; said before anything starts (a
    quickstart created with --lb-port inside its servers' ports, or a port edited by hand)."""
    for i, (what, host, port, conf) in enumerate(listeners):
        for other, other_host, other_port, other_conf in listeners[:i]:
            if port == other_port and (host == other_host or host in WILDCARDS or other_host in WILDCARDS):
                where = f"{host}:{port}" if host == other_host else f"port {port} ({other_host} and {host})"
                raise ComponentError(
                    f"{other} and {what} would both listen on {where}: set another [main] port in"
                    f" {conf} (or in {other_conf}); nothing was started"
                )


@dataclass(frozen=True)
class StopResult:
    pid: int | None
    outcome: str  # stopped | killed | not-running | stale
    other: str = ""  # stale: the pid is this other process now (left alone)

    def describe(self, what: str) -> str:
        if self.outcome == "stale" and self.other:
            return (
                f"{what} is not running; removed a stale pidfile (pid {self.pid} is another process now,"
                f" not signalled: {self.other})"
            )
        return {
            "stopped": f"{what} stopped (pid {self.pid})",
            "killed": f"{what} did not stop in time and was killed (pid {self.pid})",
            "not-running": f"{what} is not running",
            "stale": f"{what} was not running; removed a stale pidfile ("
            + (f"pid {self.pid})" if self.pid and self.pid > 0 else "it held no pid)"),
        }[self.outcome]


def stop_by_pidfile(pidfile: str, timeout: float = 30.0, owner: Owner | None = None) -> StopResult:
    """SIGTERM the process named by `pidfile` and wait for it to exit (SIGKILL after
    `timeout`, with every process of its own, kill_group: a server's workers go too, which a
    hung worker would not otherwise, holding the server's port). The process
    removes its own pidfile; after a SIGKILL we remove it. With `owner`, a pid that is another
    process now is never signalled: the pidfile is stale."""
    return stop_side_by_side([(pidfile, owner)], timeout)[0]


def stop_side_by_side(targets: list[tuple[str, Owner | None]], timeout: float = 30.0) -> list[StopResult]:
    """stop_by_pidfile of each (pidfile, owner), all told at once and each given the same
    `timeout` from then: the servers of a quickstart drain side by side, not one after
    another. Results in the order given."""
    results: list[StopResult | None] = []
    told: list[tuple[int, int, str]] = []  # (index, pid, pidfile)
    for pidfile, owner in targets:
        status = read_pidfile(pidfile, owner)
        if status.pid is None:
            results.append(StopResult(None, "not-running"))
        elif not status.alive:
            _unlink(pidfile)
            results.append(StopResult(status.pid, "stale", status.other))
        else:
            send_signal(status.pid, signal.SIGTERM)
            told.append((len(results), status.pid, pidfile))
            results.append(None)
    deadline = time.monotonic() + timeout
    for i, pid, pidfile in told:
        if wait_gone(pid, max(0.0, deadline - time.monotonic())):
            results[i] = StopResult(pid, "stopped")
            continue
        kill_group(pid)
        wait_gone(pid, 5.0)
        _unlink(pidfile)
        results[i] = StopResult(pid, "killed")
    return [r for r in results if r is not None]


def kill_group(pid: int) -> None:
    """SIGKILL `pid` with every process of its own: its whole process group when it leads its
    own session (`zato start` spawns each component so: whatever is in that group is the
    component's, a worker orphaned by its arbiter too); otherwise (`zato start --fg`, in the
    session of the shell that ran it, maybe leading a pipeline's group with `tee` in it) it and
    its descendants in its session, and nothing else. HAProxy, in a session of its own, is
    left either way, for the next controller to adopt."""
    try:
        session = os.getsid(pid)
    except ProcessLookupError:
        return
    if session == pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return
    # Its descendants are stopped first, so that none forks a process missed here; `pid` itself
    # is not (a shell with job control would say its job stopped): told to stop `timeout`
    # seconds ago, a server's arbiter starts no new worker.
    descendants = freeze_descendants(pid, session)
    send_signal(pid, signal.SIGKILL)
    for one in descendants:
        send_signal(one, signal.SIGKILL)


def freeze_descendants(pid: int, session: int) -> set[int]:
    """SIGSTOP the descendants of `pid` in `session`, reading /proc until no new one appears (a
    stopped process forks no more): their pids."""
    frozen: set[int] = set()
    while True:
        new = {
            p for p, (parent, sid) in _process_table().items() if parent in frozen | {pid} and sid == session
        }
        new -= frozen
        if not new:
            return frozen
        for p in new:
            send_signal(p, signal.SIGSTOP)
        frozen |= new


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every process in /proc now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # after the command, which may hold anything
        except OSError:  # gone meanwhile
            continue
        table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def send_signal(pid: int, sig: int) -> None:
    """kill(pid, sig), ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
