"""Refusals that only a change of configuration ends (an IBM MQ user without +connect or +get,
a queue that does not exist; an AMQP broker that refuses the definition's login or virtual
host): tried again less and less often, said once in full with what to do, then at most once a
minute with a count, and once more when it works again. Shared by the IBM MQ and AMQP
connectors (ibmmq_common, amqp_common)."""

from __future__ import annotations

import logging
import time

from zato.common.refusals import SAY_AGAIN_EVERY, Refusals
from zato.connector.base import Context, RetryPolicy

__all__ = ["REFUSED", "SAY_REFUSED_EVERY", "Refusals", "say_refused"]

# Tried again after 0.5, 1, 2, 4, 8, 16, then every 30 s, so a grant is taken up within 30 s.
REFUSED = RetryPolicy(start=0.5, step=0.0, max=30.0, factor=2.0)
SAY_REFUSED_EVERY = SAY_AGAIN_EVERY  # the same refusal is said again at most this often, with a count


def say_refused(
    ctx: Context, refusals: Refusals, key: object, what: str, delay: float, log: logging.Logger
) -> None:
    """A refusal only a configuration change ends: in status (state `refused`, last error with
    the count and the next try) and in the log once, then at most once every
    SAY_REFUSED_EVERY s with how many came since."""
    said = refusals.refused(time.monotonic(), key)
    ctx.stats.error(f"{what}; refused {refusals.count} time(s), next try in {delay:g} s")
    ctx.stats.state("refused")
    if said == 0:
        log.error(
            "%s: %s; trying again in %g s, less and less often (every %g s at most), taken up once "
            "it works (said again at most once every %g s)",
            ctx.label,
            what,
            delay,
            REFUSED.max,
            refusals.every,
        )
    elif said:
        log.error(
            "%s: still refused, %d more time(s) since said: %s; next try in %g s",
            ctx.label,
            said,
            what,
            delay,
        )
