"""Run, adopt, validate, reload and stop the system `haproxy` in master-worker mode.

HAProxy runs in its own session with its output appended to logs/haproxy.log, so it keeps
serving when the controller dies; a controller that starts again adopts it through its
pidfile (work/haproxy.pid, the master's pid) and its stats socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from zato.common.errors import ConfigError, LBError
from zato.common.fs import atomic_write
from zato.common.pidfile import pid_alive, read_pidfile
from zato.config.settings import LBSettings
from zato.lb.runtime import RuntimeAPI
from zato.lifecycle.process import wait_gone

logger = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
CHECK_PREFIX = "zato-haproxy-check-"  # + the controller's pid: the temporary folders of `haproxy -c`
CHECK_TIMEOUT = 30.0
LEGACY_CHECK_AGE = 600.0  # seconds after which a check folder without a pid is surely abandoned
ADOPT_WAIT = 5.0  # seconds a running HAProxy of ours gets to answer on its runtime socket


def find_binary(settings: LBSettings) -> str:
    path = shutil.which(settings.haproxy_binary)
    if not path:
        raise ConfigError(f"{settings.config_file}: [haproxy] binary: {settings.haproxy_binary!r} not found")
    return path


def validate(binary: str, text: str, settings: LBSettings) -> None:
    """LBError with HAProxy's own alert lines unless `haproxy -c` accepts `text`. When we
    are root the check runs as [haproxy] user (unless a TLS file is set), on a copy only that
    user and root can read (in a private temporary folder, removed at once): whatever a config
    could make HAProxy do while parsing it is done without privileges. The stats password never
    appears in the message."""
    drop: dict = {}
    # A TLS key is root's to read (HAProxy loads it before dropping privileges), and so may the
    # servers' CA file be, so a config with either is checked as we run; its other values are
    # still proved safe by the renderer.
    if settings.haproxy_user and not settings.edge.tls_cert and not settings.tls_ca_file:
        user = pwd.getpwnam(settings.haproxy_user)
        drop = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with tempfile.TemporaryDirectory(prefix=f"{CHECK_PREFIX}{os.getpid()}-") as folder:
        path = os.path.join(folder, "haproxy.cfg")
        atomic_write(path, text, mode=0o600)
        if drop:
            os.chown(folder, drop["user"], drop["group"])
            os.chown(path, drop["user"], drop["group"])
        argv = [binary, "-c", "-f", path]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT, cwd=folder, **drop)
    if proc.returncode != 0:
        alerts = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ALERT" in ln]
        message = " | ".join(alerts[:3] or ["(no output)"]).replace(settings.stats_password, "******")
        raise LBError("HAProxy rejected the rendered config: " + message)


def remove_stale_checks(where: str | None = None) -> list[str]:
    """Remove the check folders (see validate) a killed controller left behind: each holds a
    copy of haproxy.cfg, stats password included. A folder is stale when the pid in its name
    is gone (a live controller's, on this host or another cluster's, is never touched), or
    when it has no pid (an older version's) and is older than LEGACY_CHECK_AGE. Returns the
    folders removed."""
    where = where or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(where) if n.startswith(CHECK_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(where, name)
        pid, dash, _ = name[len(CHECK_PREFIX) :].partition("-")
        try:
            if dash and pid.isdigit():
                stale = not pid_alive(int(pid))
            else:
                stale = time.time() - os.lstat(path).st_mtime > LEGACY_CHECK_AGE
            if stale and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
                removed.append(path)
        except OSError as e:
            logger.warning("cannot remove the stale HAProxy config check folder %s: %s", path, e)
    return removed


def write_config(binary: str, settings: LBSettings, text: str) -> None:
    """Validate with `haproxy -c`, then atomically replace haproxy.cfg (mode 600: it holds
    the stats password)."""
    validate(binary, text, settings)
    atomic_write(settings.haproxy_cfg, text, mode=0o600)


class HAProxy:
    """The HAProxy master process, started by us or adopted."""

    def __init__(self, settings: LBSettings, binary: str):
        self.settings = settings
        self.binary = binary
        self.pidfile = os.path.join(settings.work_dir, "haproxy.pid")
        self.logfile = os.path.join(settings.path, "logs", "haproxy.log")
        self.runtime = RuntimeAPI(settings.stats_socket)
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self._unmanaged: int | None = None  # a HAProxy of ours that adopt() found not answering

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def adopt(self) -> bool:
        """Take over a HAProxy left running by an earlier controller; False if there is none.

        One that runs but does not answer on its runtime socket within ADOPT_WAIT s (hung,
        stopped, its socket file removed: a reload would not bind it again, the master hands
        the same socket to the new workers) cannot be managed: the next start() starts a new
        one beside it (both bind the port), then stops it. Before, it was left running,
        unmanaged, and took part of the connections."""
        status = read_pidfile(self.pidfile)
        if status.pid is None or not status.alive or not self._is_ours(status.pid):
            return False
        if not self._answers(ADOPT_WAIT):
            logger.error("the running HAProxy (master pid %s) does not answer on its runtime socket %s "
                         "within %g s (hung, stopped by SIGSTOP, or the socket file removed?); starting a "
                         "new one and then stopping it",
                         status.pid, self.runtime.path, ADOPT_WAIT)  # fmt: skip
            self._unmanaged = status.pid
            return False
        self.proc, self.pid = None, status.pid
        logger.info("adopted the running HAProxy (master pid %s)", self.pid)
        return True

    def _answers(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.runtime.ping():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def _stop_unmanaged(self, pid: int) -> None:
        """Stop a HAProxy we did not start, workers too: its own session (start), so its
        process group; SIGCONT after each signal, so a stopped one acts on it."""
        try:
            group = os.getpgid(pid) == pid
        except ProcessLookupError:
            return
        send = os.killpg if group else os.kill
        for sig, wait in ((signal.SIGUSR1, STOP_TIMEOUT), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                send(pid, sig)
                send(pid, signal.SIGCONT)
            except ProcessLookupError:
                break
            if wait_gone(pid, wait):
                break
        if group:  # a worker left behind by its master would hold the port
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        logger.info("stopped the HAProxy that did not answer (master pid %s)", pid)

    def _is_ours(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            return False
        return "haproxy" in os.path.basename(argv[0]) and self.settings.haproxy_cfg in argv

    def start(self) -> None:
        os.makedirs(self.settings.work_dir, exist_ok=True)
        argv = [self.binary, "-W", "-db", "-f", self.settings.haproxy_cfg, "-p", self.pidfile]
        with open(self.logfile, "ab") as out, open(os.devnull, "rb") as devnull:
            self.proc = subprocess.Popen(
                argv,
                stdin=devnull,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.settings.path,  # the stats socket path is relative to it
                start_new_session=True,
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LBError(
                    f"HAProxy exited with code {self.proc.returncode} at start; see {self.logfile}"
                    f"{self._still_running()}"
                )
            if self.runtime.ping():
                logger.info("HAProxy started (master pid %s)", self.pid)
                if self._unmanaged is not None:
                    self._stop_unmanaged(self._unmanaged)
                    self._unmanaged = None
                return
            time.sleep(0.05)
        raise LBError(
            f"HAProxy did not answer on {self.runtime.path} within {START_TIMEOUT:g} s{self._still_running()}"
        )

    def _still_running(self) -> str:
        if self._unmanaged is None or not pid_alive(self._unmanaged):
            return ""
        pid = self._unmanaged
        return f"; the HAProxy that did not answer (master pid {pid}) is left running: stop it by its pid"

    def reload(self) -> None:
        """Master-worker reload: new workers read the file, old ones finish their requests."""
        if self.pid and self.alive():
            os.kill(self.pid, signal.SIGUSR2)
            logger.info("HAProxy reload requested (SIGUSR2 to master pid %s)", self.pid)

    def reap(self) -> int | None:
        """The exit code if our child HAProxy ended (None while it runs or if adopted)."""
        return self.proc.poll() if self.proc is not None else None

    def stop(self) -> None:
        """Soft stop (SIGUSR1: finish requests in flight), then SIGTERM, then SIGKILL."""
        if not self.pid or not self.alive():
            return
        for sig, wait in ((signal.SIGUSR1, STOP_TIMEOUT), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            if self._wait_gone(wait):
                break
        logger.info("HAProxy stopped (master pid %s)", self.pid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pidfile)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False
