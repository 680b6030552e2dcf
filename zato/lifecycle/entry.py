"""What every process entry point does before its own work (`python -m zato.server.main`,
`zato.lb.main`, `zato.dashboard.main`, `zato.connector.supervisor`, `zato.connector.zygote`,
`zato.connector.run`): read argv, load (or be handed) its settings, set up logging with its
role, name itself in `ps`, and, for a child that must not outlive its parent, arm the
kernel's parent-death signal.

An entry point declares itself once as an `Entry` and keeps only its own work in main():

    ENTRY = Entry("zato-supervisor", "python -m zato.connector.supervisor SERVER_DIR", "supervisor")

    def main(argv=None, settings=None) -> int:
        return ENTRY.main(argv, 1, lambda args: run(ENTRY.settings(settings, load_server_settings, args[0])))

Anything that ends an entry point before it runs (bad arguments, a bad config file) is an
`EntryExit`: one line `PROG: error: ...` on stderr and the exit code, never a traceback.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from zato.common.errors import EXIT_CONFIG, ComponentError, ZatoError
from zato.common.log import setup_component_logging
from zato.common.said import say

S = TypeVar("S")
P = TypeVar("P")

USAGE_EXIT = 2  # a wrong command line, as argparse exits

# `zato start` spawns a component at once; the component imports, checks what it shares (ODB,
# Redis, the cluster's member names) and reports on a socket this names, one line a message,
# then waits for the word to go on (pass_gate).
GATE_ENV = "ZATO_START_GATE"
GATE_SAY = "say"  # a line for `zato start` to print (a warning)
GATE_ERROR = "error"  # a check failed: the line to print; then the component exits
GATE_CHECKED = "checked"  # all checks passed; waiting for GATE_GO
GATE_GO = b"go"

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:  # looked up once here: no dlopen between fork and exec in a threaded process
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when the thread that forked it ends. Safe between
    fork and exec (a Popen preexec_fn) and right after a fork without exec."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def parent_gone(parent: int) -> bool:
    """Arm the parent-death signal, then tell whether `parent` already went away (before the
    signal was armed: then it will never come, and the caller must exit by itself)."""
    die_with_parent()
    return os.getppid() != parent


def set_title(title: str) -> None:
    """The process's name in `ps` and top."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # pragma: no cover - setproctitle is a dependency
        return
    setproctitle(title)


def pass_gate(check: Callable[[Callable[[str], None]], None] | None = None) -> bool:
    """In a process `zato start` spawned: run check(say), the checks of what it shares, telling
    `zato start` what they say and whether they passed, then wait for its word. True to go
    on; False to exit quietly, having touched nothing: a check failed (here or in another
    component it started) or `zato start` went away. At once True when started otherwise:
    the checks are then the caller's (`zato start --fg` runs them before it execs)."""
    fd = os.environ.pop(GATE_ENV, None)
    if fd is None:
        return True
    try:
        sock = socket.socket(fileno=int(fd))
    except (ValueError, OSError) as e:  # set by hand, or its socket is gone: no `zato start` waits
        logging.getLogger("zato").warning("ignoring %s=%r: %s", GATE_ENV, fd, e)
        return True
    with sock, sock.makefile("rwb") as f:

        def tell(kind: str, text: str = "") -> None:
            f.write(f"{kind} {text}".rstrip().replace("\n", " ").encode() + b"\n")
            f.flush()

        try:
            try:
                if check is not None:
                    check(lambda line: tell(GATE_SAY, line))
            except ZatoError as e:
                logging.getLogger("zato").error("not started: %s", e)
                tell(GATE_ERROR, say(e, "its server.conf or lb.conf"))  # what to do too, as the CLI says
                return False
            tell(GATE_CHECKED)
            if f.readline().strip() == GATE_GO:
                return True
        except OSError:  # `zato start` went away
            pass
        logging.getLogger("zato").info(
            "not started: `zato start` did not let it go on (another component's check failed,"
            " or the command was interrupted)"
        )
        return False


class EntryExit(ComponentError):
    """Ends an entry point before its work: `line` (if any) goes to stderr as PROG: error: LINE."""

    def __init__(self, code: int, line: str = ""):
        super().__init__(line)
        self.code, self.line = code, line


@dataclass(frozen=True)
class Entry:
    """One process entry point: its name in error lines, its usage and its logging role."""

    prog: str  # "zato-supervisor": the prefix of its error lines on stderr
    usage: str  # "python -m zato.connector.supervisor SERVER_DIR"
    role: str  # the logging role (zato.common.log.set_role)
    usage_exit: int = USAGE_EXIT  # the exit code of a wrong command line
    flags: tuple[str, ...] = ()  # switches allowed anywhere in argv ("--fg")

    def main(
        self,
        argv: Sequence[str] | None,
        count: int,
        body: Callable[[list[str], frozenset[str]], int],
        valid: Callable[[list[str]], bool] = lambda _args: True,
    ) -> int:
        """Run body(args, flags) with `count` positional args (sys.argv by default); the exit
        code of a wrong command line or of an EntryExit raised by body otherwise."""
        given = list(sys.argv[1:] if argv is None else argv)
        flags = frozenset(a for a in given if a in self.flags)
        args = [a for a in given if a not in self.flags]
        if len(args) != count or not valid(args):
            print(f"usage: {self.usage}", file=sys.stderr)
            return self.usage_exit
        try:
            return body(args, flags)
        except EntryExit as e:
            if e.line:
                self.error(e.line)
            return e.code

    def error(self, line: object) -> None:
        print(f"{self.prog}: error: {line}", file=sys.stderr)

    def settings(
        self,
        given: S | None,
        load: Callable[[P], S],
        source: P,
        errors: tuple[type[ZatoError], ...] = (ZatoError,),
        code: int = EXIT_CONFIG,
    ) -> S:
        """`given` (the parent's settings, already parsed), else load(source) (a directory,
        or what the parent sent); EntryExit(code) on one of `errors`."""
        if given is not None:
            return given
        try:
            return load(source)
        except errors as e:
            raise EntryExit(code, str(e)) from None

    def start(self, settings: Any, title: str = "", stream: bool = False) -> None:
        """Logging with this role (settings' [logging], to its log file; `stream`: stderr too)
        and the process title."""
        setup_component_logging(settings, self.role, stream=stream)
        if title:
            set_title(title)
