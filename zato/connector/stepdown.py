"""The holder's step-down: how long its children get, and what it says it took.

A holder that cannot confirm a renewal steps down at its renew deadline; the lease key cannot
expire before ttl - renew_deadline after that (the room, 0.5 s by default). Its children get
SIGTERM, SIGKILL after the policy's stop_timeout (0.6 of the room, at most
0.3 s; zato.connector.supervisor.restart_policy), and the rest of the room is
the reserve for the SIGKILL and the reaping. The SIGKILL is timed from the renew deadline, not
from when the main loop began the step-down: on a loaded machine the main loop can begin late,
and the reserve must not shrink by that much (before, a step-down begun 0.2 s late killed its
children 0.2 s closer to the expiry). bench/stepdown measures the room a step-down leaves.
"""

from __future__ import annotations

import logging


def stop_grace(now: float, deadline: float, stop_timeout: float) -> float:
    """Seconds of SIGTERM grace for a step-down begun at `now` (monotonic), whose hold's renew
    deadline was `deadline`: SIGKILL at `deadline + stop_timeout`, or at once if that is past;
    never more than stop_timeout (a hand-over steps down before its deadline)."""
    return max(0.0, min(stop_timeout, deadline + stop_timeout - now))


def stepped_down(epoch: int, children: int, took: float, left: float, all_gone: bool) -> tuple[int, str]:
    """(log level, line) of a step-down that stopped `children` in `took` s and ended `left` s
    before the lease could expire after the last confirmed renewal (negative: after it)."""
    head = f"stepped down from lease epoch {epoch}: {children} children stopped in {took:.2f} s"
    gone = "" if all_gone else " (some children did not exit even after SIGKILL)"
    if left >= 0:
        return logging.WARNING, f"{head}, {left:.2f} s before its last renewal ran out{gone}"
    return logging.ERROR, (
        f"{head}, {-left:.2f} s after its last renewal ran out{gone}: another server may have"
        " started these connectors meanwhile (fencing refuses what they sent after it did); a"
        " loaded machine needs more room between [lease] renew_deadline and ttl"
    )
