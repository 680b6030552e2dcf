"""Flags a signal handler may set.

A Python signal handler runs in the main thread, between two bytecodes of whatever that thread
was doing. `threading.Event.set()` takes the event's lock; if the main thread held that lock
at that moment (inside its own `wait()` or `clear()` of the same event), the handler waits
forever for itself. Python's signal documentation warns against synchronization primitives in
handlers for this reason (gh-144706). A process whose stop request deadlocks never stops, and
what it started (HAProxy, connectors) outlives it.

These flags take no lock. Setting one writes a byte to a pipe, which `os.write` does without
a Python-level lock, and a waiter sleeps in `select()` on the pipe. A handler can set them at
any point, and waiters in any thread wake.
"""

from __future__ import annotations

import contextlib
import os
import select

PIPE_SIZE = 65536  # Linux's default pipe capacity: one read empties the pipe


class SignalFlag:
    """Set once, never cleared: a stop request. wait() wakes every waiter, in any thread."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._set = False

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(BlockingIOError):  # a full pipe already wakes every waiter
            os.write(self._w, b"!")

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or `timeout` seconds passed; True when set."""
        if not self._set:
            select.select([self._r], [], [], timeout)
        return self._set


class Wakeup(SignalFlag):
    """A flag the one thread that waits on it clears again after each wake-up."""

    def clear(self) -> None:
        self._set = False  # first: a set() from now on stays seen even if its byte is read below
        with contextlib.suppress(BlockingIOError):  # empty already
            os.read(self._r, PIPE_SIZE)  # one read: a loop could chase a handler's bytes forever
