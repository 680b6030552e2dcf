"""Ctrl-C (SIGINT) in a command that must not stop half-way: `zato start` stopping what it
started, `zato conn` between its ODB write and its Redis step.

    with Interrupts(notice) as ctrl_c:
        ...                 # a Ctrl-C raises KeyboardInterrupt, as Python's own handler does,
                            # and from then on the stretch is held: the clean-up it starts goes on
        ctrl_c.hold()       # from here a Ctrl-C is only noted (and `notice` said on stderr)
        ...
        if ctrl_c.release():  # a Ctrl-C came while held; from here one raises again
            ...

SIGTERM and SIGHUP (`timeout 30 zato start DIR`, a CI job cancelled, the terminal closed) are
taken as a Ctrl-C while inside, where they are not ignored (nohup): before, they ended the
command at once, and a `zato start` killed so left the servers it had started running. The
command then exits 128 + that signal's number (last_signal()).

Only where a SIGINT raises KeyboardInterrupt (Python's own handler) or is ignored (a command a
script started in the background: SIGTERM and SIGHUP are still taken), in the main thread (the
`zato` command line). A server's worker, the dashboard and the like keep their own handlers,
and there this is a no-op (release() answers False). The notice is written straight to the
stderr descriptor: a handler that printed could find the main thread inside print() already.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType, TracebackType

# The signals taken as a Ctrl-C inside, and the last one that came (exit status 128 + it)
_ALSO = (signal.SIGTERM, signal.SIGHUP)
_last: list[int] = [int(signal.SIGINT)]


def last_signal() -> int:
    """The signal behind the last KeyboardInterrupt an Interrupts raised (SIGINT otherwise)."""
    return int(_last[0])


def _ours() -> bool:
    """The `zato` command line's main thread: SIGINT is Python's own handler, or ignored (a
    command started in the background by a script: SIGTERM must still stop it cleanly)."""
    return threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.default_int_handler,
        signal.SIG_IGN,
    )


class Interrupts:
    def __init__(self, notice: str):
        """`notice`: what a Ctrl-C that came while held is told (one line, without "zato: ")."""
        self.notice = notice
        self.holding = False
        self.came = False  # a Ctrl-C came while held, since the last release()
        self._installed = False
        self._before: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        if _ours():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # else ignored: left so
                self._before[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_sigint)
            for signum in _ALSO:
                if signal.getsignal(signum) == signal.SIG_DFL:
                    self._before[signum] = signal.signal(signum, self._on_sigint)
            self._installed = bool(self._before)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            for signum, before in self._before.items():
                signal.signal(signum, before)  # type: ignore[arg-type]
            self._before.clear()
            self._installed = False

    def hold(self) -> None:
        self.holding = True

    def release(self) -> bool:
        """Ctrl-C raises again from here; whether one came while held."""
        self.holding = False
        came, self.came = self.came, False
        return came

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.came = True
            with contextlib.suppress(OSError, ValueError):
                os.write(sys.stderr.fileno(), f"zato: {self.notice}\n".encode())
            return
        self.holding = True  # what this one interrupts cleans up, and that goes on
        _last[0] = signum
        raise KeyboardInterrupt
