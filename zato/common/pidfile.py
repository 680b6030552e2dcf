"""Pidfiles: read, check that the process they name is the component's, clean stale ones.
Writing is done by the process itself.

A pid is only a number: once its process is gone (after a reboot, or when the kernel hands
the pid to a new process) a pidfile left behind names some other process. So a reader that
knows which component the pidfile belongs to passes an `Owner`, and a live pid counts only
if that process is the component (its command line, from /proc); otherwise the pidfile is
stale, and nothing is ever signalled through it. The file itself stays one pid and a line
break (gunicorn writes the server's, and `kill $(cat pidfile)` keeps working)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from zato.common.errors import ComponentError
from zato.common.fs import atomic_write


@dataclass(frozen=True)
class Owner:
    """What the process a pidfile names must be to count as the component's: `python -m
    MODULE DIR [--flags]` with DIR (relative ones from the process's working directory) the
    component's directory, or one of `titles`, a process title it sets once started (the
    server's arbiter: gunicorn's "gunicorn: master [zato-CLUSTER-NAME]")."""

    module: str
    path: str
    titles: tuple[str, ...] = ()

    def matches(self, pid: int) -> bool | None:
        """True or False; None when this host cannot tell (no /proc, or hidden from us)."""
        argv = process_argv(pid)
        if argv is None:
            return None
        if argv and " ".join(argv).strip() in self.titles:
            return True
        try:
            at = argv.index("-m")
        except ValueError:
            return False
        if argv[at + 1 : at + 2] != [self.module]:
            return False
        given = next((a for a in argv[at + 2 :] if not a.startswith("-")), None)
        if given is None:
            return False
        if not os.path.isabs(given):
            cwd = process_cwd(pid)
            if cwd is None:
                return None
            given = os.path.join(cwd, given)
        return os.path.realpath(given) == os.path.realpath(self.path)


def process_argv(pid: int) -> list[str] | None:
    """The command line of `pid` (its title, if it set one); None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a for a in raw.decode("utf-8", "replace").split("\0") if a]


def process_cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


@dataclass(frozen=True)
class PidStatus:
    path: str
    pid: int | None  # None: no pidfile, or unreadable
    alive: bool  # the pid runs and (with an Owner) is the component
    other: str = ""  # the pid runs but is another process: its command line (shortened)

    @property
    def stale(self) -> bool:
        return self.pid is not None and not self.alive

    def why_stale(self) -> str:
        """'pid N is not running', 'pid N is another process now: CMDLINE', or 'it holds no
        pid' (empty, or not a number: before, 'pid -1 is not running')."""
        if self.pid is not None and self.pid <= 0:
            return "it holds no pid"
        if self.other:
            return f"pid {self.pid} is another process now: {self.other}"
        return f"pid {self.pid} is not running"


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not); it says nothing about which process it is."""
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


def read_pidfile(path: str, owner: Owner | None = None) -> PidStatus:
    """What `path` names; with `owner`, a live pid that is not that component is stale.
    ComponentError, one line saying what to do, when `path` cannot be read as a file (a
    directory there, no permission): it cannot tell whether the component runs."""
    try:
        with open(path, errors="replace") as f:  # bytes that are no text: no pid, as "abc"
            text = f.read().strip()
    except FileNotFoundError:
        return PidStatus(path, None, False)
    except IsADirectoryError:
        raise ComponentError(
            f"pidfile {path} is a directory, not a file: remove it (nothing writes a directory"
            " there), then try again"
        ) from None
    except OSError as e:
        raise ComponentError(
            f"pidfile {path} cannot be read ({e.strerror or e}): mend or remove it, then try again"
        ) from None
    try:
        pid = int(text)
    except ValueError:
        return PidStatus(path, -1, False)
    if not (pid > 0 and pid_alive(pid)):
        return PidStatus(path, pid, False)
    if owner is not None and owner.matches(pid) is False:
        shown = " ".join(process_argv(pid) or ["?"])
        return PidStatus(path, pid, False, shown if len(shown) <= 80 else shown[:77] + "...")
    return PidStatus(path, pid, True)


def write_pidfile(path: str, pid: int | None = None) -> None:
    atomic_write(path, f"{pid or os.getpid()}\n")


def remove_pidfile(path: str, pid: int | None = None) -> None:
    """Remove `path` if it still names `pid` (default: this process)."""
    status = read_pidfile(path)
    if status.pid in (pid or os.getpid(), -1):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
