"""The real OS seam: a connector process never outlives its supervisor (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support import wait_for
from zato.common.pidfile import pid_alive

SPAWN_AND_WAIT = (
    "import time, zato.connector.process as p\n"
    "h = p.RealOS().spawn(('sleep', '60'), {'ZATO_EPOCH': '3'})\n"
    "print(h.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_child_dies_with_its_supervisor_even_after_sigkill() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SPAWN_AND_WAIT], stdout=subprocess.PIPE, text=True)
    child = int(supervisor.stdout.readline())
    try:
        assert pid_alive(child)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(10)
        wait_for(lambda: not pid_alive(child), timeout=10, what="the orphaned child to be killed")
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)
