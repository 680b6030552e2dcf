"""Stop flags that signal handlers set (zato.common.signalflag): a handler may run at any line of
the main thread's own wait() or clear() and still set the flag, where threading.Event would
wait forever for its own lock (the LB controller, the connector supervisor and every
connector stop through these on SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from zato.common.signalflag import SignalFlag, Wakeup

# The main thread waits on and clears a flag while a line tracer sends SIGUSR1 at every line it
# runs in the flag's own module, so the handler (flag.set()) runs in the middle of each of
# them. argv[1] "event" runs the same with threading.Event, which hangs (the mutation check).
INTERRUPTED_EVERYWHERE = r"""
import os, signal, sys, threading
from zato.common.signalflag import Wakeup

event = sys.argv[1] == "event"
flag = threading.Event() if event else Wakeup()
module = "threading.py" if event else "signalflag.py"
busy = False

def handler(*_):
    global busy
    busy = True
    try:
        flag.set()
    finally:
        busy = False

def each_line(frame, what, arg):
    if what == "line" and not busy:
        os.kill(os.getpid(), signal.SIGUSR1)
    return each_line

signal.signal(signal.SIGUSR1, handler)
sys.settrace(lambda frame, what, arg: each_line if frame.f_code.co_filename.endswith(module) else None)
woken = 0
for _ in range(50):
    woken += flag.wait(5)
    flag.clear()
sys.settrace(None)
print(f"woken {woken} of 50")
"""


def test_a_handler_sets_the_flag_in_the_middle_of_the_main_threads_wait_and_clear() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_EVERYWHERE, "ours"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "woken 50 of 50"  # every wait ended by a signal, none by its 5 s


def test_a_stop_flag_wakes_waiters_in_every_thread_and_stays_set() -> None:
    flag = SignalFlag()
    assert not flag.wait(0.01)  # not set: the wait times out
    woke: list[bool] = []
    waiters = [threading.Thread(target=lambda: woke.append(flag.wait(30))) for _ in range(3)]
    for t in waiters:
        t.start()
    flag.set()
    for t in waiters:
        t.join(30)
    assert woke == [True, True, True]
    assert flag.is_set() and flag.wait(0)  # never cleared


def test_a_cleared_wakeup_waits_again_and_a_set_after_the_clear_is_not_lost() -> None:
    wake = Wakeup()
    wake.set()
    wake.set()  # two wake-ups before the loop looks: one wait ends, the clear takes both
    assert wake.wait(0)
    wake.clear()
    assert not wake.is_set() and not wake.wait(0.01)
    threading.Thread(target=wake.set).start()
    assert wake.wait(30)
