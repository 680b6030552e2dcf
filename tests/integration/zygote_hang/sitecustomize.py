"""Test-only: on the PYTHONPATH of the servers of
tests/integration/test_zygote_stall.py::test_a_zygote_that_never_says_ready_is_replaced.

Python imports this module at every start-up. In a connector zygote (`python -m
zato.connector.zygote ...`), when the file named by ZATO_TEST_HANG_ZYGOTE exists, it removes the
file and hangs: that zygote never says ready, a later one (the file gone) starts as usual."""

import os
import time

marker = os.environ.get("ZATO_TEST_HANG_ZYGOTE")
if marker:
    with open("/proc/self/cmdline", "rb") as f:
        zygote = b"zato.connector.zygote" in f.read().split(b"\0")
    if zygote:
        try:
            os.remove(marker)  # only the one that removes it hangs
        except FileNotFoundError:
            pass
        else:
            time.sleep(3600)  # killed by the supervisor (or with it: PR_SET_PDEATHSIG)
