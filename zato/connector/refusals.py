"""Refusals that only a change of configuration ends (an IBM MQ user without +connect or +get,
a queue that does not exist; an AMQP broker that refuses the definition's login or virtual
host): tried again less and less often, said once in full with what to do, then at most once a
minute with a count, and once more when it works again. Shared by the IBM MQ and AMQP
connectors (ibmmq_common, amqp_common)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from zato.common import jsonenc
from zato.common.errors import CoordError
from zato.common.log import printable
from zato.common.refusals import SAY_AGAIN_EVERY, Refusals
from zato.connector.base import Context, RetryPolicy
from zato.coord import health

__all__ = [
    "REDIS_AWAY",
    "REFUSED",
    "SAY_REFUSED_EVERY",
    "NOT_SIGNED",
    "RedisFailures",
    "Refusals",
    "Unsigned",
    "say_refused",
]

# Tried again after 0.5, 1, 2, 4, 8, 16, then every 30 s, so a grant is taken up within 30 s.
REFUSED = RetryPolicy(start=0.5, step=0.0, max=30.0, factor=2.0)
SAY_REFUSED_EVERY = SAY_AGAIN_EVERY  # the same refusal is said again at most this often, with a count
# Redis unreachable (an outage, a restart): tried again after 0.5, 1, 2, 4, then every 5 s.
REDIS_AWAY = RetryPolicy(start=0.5, step=0.0, max=5.0, factor=2.0)


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


class RedisFailures:
    """Redis failing a connector's calls while its broker (or queue manager) is fine: the
    connector keeps that connection and tries the Redis call again, which is all that mends.
    An error Redis answered (health.answered: a key of another type, its ACL, a replica) is
    said as a refusal (say_refused) with the servers' hint and tried 0.5 s doubling to 30 s
    (REFUSED); an unreachable Redis is said at WARNING and tried 0.5 s doubling to 5 s
    (REDIS_AWAY). Each once in full, then at most once a minute with a count, and once when
    Redis answers again. One object for all of a connector's sessions, so a reconnect to the
    broker does not say it again."""

    def __init__(self, ctx: Context, log: logging.Logger, kept: str):
        """kept: the connection kept meanwhile, as the log names it ("the broker connection")."""
        self.ctx, self.log, self.kept = ctx, log, kept
        self.refusals = Refusals()
        self._delays: Iterator[float] | None = None
        self._kind = ""
        self._lock = threading.Lock()  # a connector's threads (an IBM MQ channel's) share it

    def failed(self, e: CoordError) -> float:
        """Redis failed a call with `e`: said (or counted), and the seconds to wait before the
        next try."""
        kind = health.kind(e)
        with self._lock:
            if self._delays is None or kind != self._kind:
                self._delays, self._kind = (REFUSED if health.answered(e) else REDIS_AWAY).delays(), kind
            delay = next(self._delays)
        if health.answered(e):
            hint = health.what_to_do(e, cluster=self.ctx.settings.cluster)
            say_refused(
                self.ctx, self.refusals, ("redis", kind), f"Redis refused it: {e}; {hint}", delay, self.log
            )
            return delay
        said = self.refusals.refused(time.monotonic(), ("redis", kind))
        self.ctx.stats.error(f"Redis failed: {e}; next try in {delay:g} s")
        self.ctx.stats.state("reconnecting")
        if said == 0:
            self.log.warning(
                "%s: Redis failed (%s); %s is kept, trying Redis again in %g s, less and less often "
                "(every %g s at most; said again at most once every %g s)",
                self.ctx.label,
                e,
                self.kept,
                delay,
                REDIS_AWAY.max,
                self.refusals.every,
            )
        elif said:
            self.log.warning(
                "%s: Redis still fails, %d more time(s) since said: %s; next try in %g s",
                self.ctx.label,
                said,
                e,
                delay,
            )
        return delay

    def worked(self) -> None:
        """A call Redis failed before went through: from the first wait again, said once."""
        with self._lock:
            self._delays, self._kind = None, ""
        done = self.refusals.worked(time.monotonic())
        if done is not None:
            self.ctx.stats.state("running")
            self.log.warning(
                "%s: Redis answers again after %d failed try(s) over %.0f s; %s was kept",
                self.ctx.label,
                *done,
                self.kept,
            )


NOT_SIGNED = "not signed with this cluster's key"  # a message's reason in status (LAST ERROR)


class Unsigned:
    """Messages in an outgoing connection's Redis queue that do not carry the signature of the
    cluster's key (zato.coord.signing.outgoing_signed): parked, never published. Said at ERROR
    with the connection, the message's id and its CID the first time, then at most once every
    SAY_REFUSED_EVERY s with how many came since (a Redis writer pushing thousands makes a
    few lines, not thousands); each is counted where parked messages are."""

    def __init__(self, ctx: Context, log: logging.Logger):
        self.ctx, self.log = ctx, log
        self.refusals = Refusals()

    def refused(self, raw: str) -> str:
        """Say (or count) the unsigned message `raw`; its reason, to park it with."""
        said = self.refusals.refused(time.monotonic(), NOT_SIGNED)
        if said is None:
            return NOT_SIGNED
        ident, cid = _named(raw)
        if said == 0:
            self.log.error(
                "%s: message %s (CID %s) %s: parked in Redis, not published (written to Redis by "
                "something other than a server of this cluster, one with another [auth] cluster_secret, "
                "or one of a version before outgoing messages were signed: docs/trust.md); more such "
                "messages are parked too, said at most once every %g s with their count",
                self.ctx.label,
                ident,
                cid,
                NOT_SIGNED,
                self.refusals.every,
            )
        else:
            self.log.error(
                "%s: %d more message(s) %s parked in Redis, not published, since said; the last: %s (CID %s)",
                self.ctx.label,
                said,
                NOT_SIGNED,
                ident,
                cid,
            )
        return NOT_SIGNED


def _named(raw: str) -> tuple[str, str]:
    """The id and CID a stored message gives itself, as a log line may show them ("?": none)."""
    try:
        doc = jsonenc.loads(raw)
    except ValueError:
        return "?", "?"
    if not isinstance(doc, dict):
        return "?", "?"
    ident, cid = doc.get("id"), doc.get("cid")
    return (
        printable(ident, 60) if isinstance(ident, str) and ident else "?",
        printable(cid, 60) if isinstance(cid, str) and cid else "?",
    )
