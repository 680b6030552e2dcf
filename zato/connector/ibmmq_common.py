"""IBM MQ pieces shared by the channel and outgoing connectors: the optional driver, connecting
to a queue manager from a definition, reason codes, and the reconnect loop.

The driver is IBM's Python binding `ibmmq` (`pip install 'zato-ha[ibmmq]'`, which needs IBM's
MQ redistributable client libraries); `pymqi`, its predecessor with the same API, is used when
`ibmmq` is not installed. Without either, creating definitions still works: only starting an
IBM MQ connector fails, with one line naming what to install, and it goes to FATAL.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from zato.common import jsonenc
from zato.common.errors import EXIT_CONFIG, EXIT_OK, ConnectorError, CoordError, MissingDependency
from zato.connector.base import Context, RetryPolicy
from zato.connector.refusals import REFUSED, SAY_REFUSED_EVERY, RedisFailures, Refusals  # noqa: F401 - used as ibmmq_common.*
from zato.connector.refusals import say_refused as say_refused_to
from zato.coord.queues import StaleEpoch

logger = logging.getLogger("zato.connector.ibmmq")

DRIVERS = ("ibmmq", "pymqi")
INSTALL_HINT = (
    "the IBM MQ connectors need the Python package 'ibmmq' and IBM's MQ redistributable client "
    "libraries: pip install 'zato-ha[ibmmq]'"
)
RECONNECT = RetryPolicy(start=0.5, step=1.0, max=5.0)

# Reason codes that mean "the connection or the queue manager is gone": reconnect with back-off.
NO_MSG_AVAILABLE = 2033
BROKEN = {
    2009: "MQRC_CONNECTION_BROKEN",
    2018: "MQRC_HCONN_ERROR",
    2059: "MQRC_Q_MGR_NOT_AVAILABLE",
    2161: "MQRC_Q_MGR_QUIESCING",
    2162: "MQRC_Q_MGR_STOPPING",
    2202: "MQRC_CONNECTION_QUIESCING",
    2203: "MQRC_CONNECTION_STOPPING",
    2537: "MQRC_CHANNEL_NOT_AVAILABLE",
    2538: "MQRC_HOST_NOT_AVAILABLE",
    2539: "MQRC_CHANNEL_CONFIG_ERROR",
}
GET_INHIBITED = 2016  # GET(DISABLED): IBM says to retry later; a waiting MQGET ends with it too
# A handle the queue manager no longer takes: 2041 MQRC_OBJECT_CHANGED (its queue ALTERed with
# FORCE, REFRESH CLUSTER), 2052 MQRC_Q_DELETED (a dynamic queue deleted): close it, open again
STALE_HANDLE = (2041, 2052)
NOT_AUTHORIZED = 2035
OBJECT_IN_USE = 2042
# A put refused for now: 2051 MQRC_PUT_INHIBITED (PUT(DISABLED)), 2053 MQRC_Q_FULL (MAXDEPTH
# reached), 2192 MQRC_PAGESET_FULL: IBM's pages say "retry the operation later", and these are
# the reasons a channel's MCA retries a put for (MsgRetryCount)
PUT_LATER = (2051, 2053, 2192)
UNKNOWN_OBJECT_NAME = 2085
# MQRC_SYNCPOINT_LIMIT_REACHED: the unit of work holds the queue manager's MAXUMSGS already
SYNCPOINT_LIMIT = 2024
Q_MGR_NAME_ERROR = 2058
UNKNOWN_CHANNEL_NAME = 2540
# MQRC_TRUNCATED_MSG_ACCEPTED (the data got is cut), MQRC_TRUNCATED_MSG_FAILED (it did not fit)
TRUNCATED = (2079, 2080)
CONTEXT_REFUSED = (2093, 2097, 2098)  # NOT_OPEN_FOR_PASS_ALL, CONTEXT_HANDLE_ERROR, CONTEXT_NOT_AVAILABLE
OUTCOME_PENDING = 2124
OTHER = {
    2003: "MQRC_BACKED_OUT",
    2016: "MQRC_GET_INHIBITED",
    2024: "MQRC_SYNCPOINT_LIMIT_REACHED",
    2035: "MQRC_NOT_AUTHORIZED",
    2038: "MQRC_NOT_OPEN_FOR_INQUIRE",
    2041: "MQRC_OBJECT_CHANGED",
    2042: "MQRC_OBJECT_IN_USE",
    2049: "MQRC_PRIORITY_EXCEEDS_MAXIMUM",
    2051: "MQRC_PUT_INHIBITED",
    2052: "MQRC_Q_DELETED",
    2053: "MQRC_Q_FULL",
    2058: "MQRC_Q_MGR_NAME_ERROR",
    2079: "MQRC_TRUNCATED_MSG_ACCEPTED",
    2080: "MQRC_TRUNCATED_MSG_FAILED",
    2085: "MQRC_UNKNOWN_OBJECT_NAME",
    2093: "MQRC_NOT_OPEN_FOR_PASS_ALL",
    2097: "MQRC_CONTEXT_HANDLE_ERROR",
    2098: "MQRC_CONTEXT_NOT_AVAILABLE",
    2104: "MQRC_UNKNOWN_REPORT_OPTION",
    2110: "MQRC_FORMAT_ERROR",
    2111: "MQRC_SOURCE_CCSID_ERROR",
    2112: "MQRC_SOURCE_INTEGER_ENC_ERROR",
    2113: "MQRC_SOURCE_DECIMAL_ENC_ERROR",
    2114: "MQRC_SOURCE_FLOAT_ENC_ERROR",
    2115: "MQRC_TARGET_CCSID_ERROR",
    2116: "MQRC_TARGET_INTEGER_ENC_ERROR",
    2117: "MQRC_TARGET_DECIMAL_ENC_ERROR",
    2118: "MQRC_TARGET_FLOAT_ENC_ERROR",
    2119: "MQRC_NOT_CONVERTED",
    2120: "MQRC_CONVERTED_MSG_TOO_BIG",
    2123: "MQRC_OUTCOME_MIXED",
    2124: "MQRC_OUTCOME_PENDING",
    2150: "MQRC_DBCS_ERROR",
    2190: "MQRC_CONVERTED_STRING_TOO_BIG",
    2192: "MQRC_PAGESET_FULL",
    2540: "MQRC_UNKNOWN_CHANNEL_NAME",
}


class MissingDriver(MissingDependency):
    """Neither `ibmmq` nor `pymqi` can be imported here."""


def driver() -> ModuleType:
    """The IBM MQ binding, imported on first use; MissingDriver (one line) when absent."""
    errors = []
    for name in DRIVERS:
        try:
            return importlib.import_module(name)
        except ImportError as e:  # also raised when IBM's client libraries are missing
            errors.append(f"{name}: {e}")
    raise MissingDriver(f"{INSTALL_HINT} (import failed: {'; '.join(errors)})")


def reason_of(e: BaseException) -> int:
    return int(getattr(e, "reason", 0) or 0)


def is_broken(e: BaseException) -> bool:
    return reason_of(e) in BROKEN


def error_text(e: BaseException) -> str:
    """`reason 2009 (MQRC_CONNECTION_BROKEN)` for MQ errors, the exception otherwise."""
    reason = reason_of(e)
    if reason:
        name = BROKEN.get(reason) or OTHER.get(reason) or "see IBM MQ reason codes"
        return f"reason {reason} ({name})"
    return f"{type(e).__name__}: {e}"[:300]


def is_warning(m: ModuleType, e: BaseException) -> bool:
    """The call completed with MQCC_WARNING (the driver raises MQMIError for it all the same)."""
    return getattr(e, "comp", None) == m.CMQC.MQCC_WARNING


class Once:
    """Says each key once (per connector process) at `level`; later times stay quiet."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.said: set[object] = set()

    def __call__(self, key: object, level: int, text: str) -> None:
        if key not in self.said:
            self.said.add(key)
            logger.log(level, "%s: %s", self.ctx.label, text)


def commit(m: ModuleType, qm: Any, once: Once) -> None:
    """MQCMIT. A commit that completes with 2124 MQRC_OUTCOME_PENDING is committed: IBM's page
    for 2124 says the commit completes later (a mixed outcome needs other resource managers in
    the unit of work, which these connectors never have; on z/OS it completes once the queue
    manager reaches its coupling facility structure again): it counts as done, said once at
    WARNING. Any other outcome raises, as before: 2003 MQRC_BACKED_OUT (a failure, or a
    warning when the queue manager backed the unit of work out) and unknown warnings are handled
    as not committed, so the work is done again (at least once, never lost)."""
    try:
        qm.commit()
    except m.MQMIError as e:
        if is_warning(m, e) and reason_of(e) == OUTCOME_PENDING:
            once(
                ("commit", OUTCOME_PENDING),
                logging.WARNING,
                f"MQCMIT completed with a warning, {error_text(e)}: the queue manager completes the "
                "commit later; it counts as committed (said once)",
            )
            return
        raise


def describe(mq: dict) -> str:
    """Where a definition points, for logs: never the password."""
    user = f"{mq['username']}@" if mq["username"] else ""
    tls = ", TLS" if mq["cipher_spec"] else ""
    qmgr = mq["queue_manager"] or "(default)"
    return f"{user}{qmgr} via {mq['channel']} at {mq['conn_name']}{tls} (definition {mq['name']!r})"


def _text(value: str) -> bytes:
    return value.encode("utf-8")


# What the driver packs into fixed MQI fields, checked again as a connector starts (a row stored
# before zato.odb.connectors checked them, or written by other means)
_CHECKED = ("queue_manager", "channel", "conn_name", "cipher_spec", "key_repository")


def refuse_bad_definition(ctx: Context, mq: dict) -> int | None:
    """EXIT_CONFIG (FATAL: no restart helps, until the definition is edited) with one line when
    the definition `mq` holds what the driver would cut without a word or fail on (a channel
    name over 20, a non-ASCII queue manager name: UnicodeEncodeError at every start); None
    when it is fine."""
    from zato.odb import connectors  # noqa: PLC0415 - the check of create and edit

    values = {k: mq[k] for k in _CHECKED if mq.get(k) is not None}
    try:
        connectors.validate("ibm-mq-def", values, creating=False)
    except ConnectorError as e:
        text = (
            f"definition {mq.get('name')!r} cannot be used: {e} (zato conn edit ibm-mq-def DIR "
            f"--name {mq.get('name')} ...)"
        )
        ctx.stats.error(text)
        ctx.stats.state("fatal")
        logger.error("%s: %s", ctx.label, text)
        return EXIT_CONFIG
    return None


def connect_once(m: ModuleType, mq: dict) -> Any:
    """One MQCONNX as a client to the definition `mq` (the "ibm_mq" part of a loaded channel)."""
    cd = m.CD()
    cd.ChannelName = _text(mq["channel"])
    cd.ConnectionName = _text(mq["conn_name"])
    cd.ChannelType = m.CMQXC.MQCHT_CLNTCONN
    cd.TransportType = m.CMQXC.MQXPT_TCP
    cd.HeartbeatInterval = int(mq["heartbeat"])
    kwargs: dict[str, Any] = {"cd": cd, "opts": m.CMQC.MQCNO_CLIENT_BINDING}
    if mq["cipher_spec"]:
        cd.SSLCipherSpec = _text(mq["cipher_spec"])
        sco = m.SCO()
        sco.KeyRepository = _text(mq["key_repository"])
        kwargs["sco"] = sco
    if mq["username"]:
        kwargs["user"], kwargs["password"] = mq["username"], mq["password"]
    qm = m.QueueManager(None)
    qm.connect_with_options(mq["queue_manager"], **kwargs)
    return qm


def connect_refusal(mq: dict, e: BaseException) -> str | None:
    """What to do when MQCONNX was refused with what only a configuration change ends (2035:
    the user or password, or +connect; 2058: the queue manager's name; 2540: the channel's
    name); None for any other failure."""
    reason, why = reason_of(e), error_text(e)
    qmgr, channel, where = mq["queue_manager"] or "(default)", mq["channel"], mq["conn_name"]
    if reason == NOT_AUTHORIZED:
        user = mq["username"] or "USER"
        who = f"user {user!r}" if mq["username"] else f"the user channel {channel!r} runs as"
        return (
            f"queue manager {qmgr} refuses {who} on channel {channel!r} ({why}): check the "
            f"definition's username and password (zato conn edit ibm-mq-def DIR --name {mq['name']} "
            f"--password -), grant +connect to {user} (setmqaut -m {qmgr} -t qmgr -p {user} +connect "
            "+inq) and check the channel's CHLAUTH rules"
        )
    if reason == Q_MGR_NAME_ERROR:
        return (
            f"no queue manager named {qmgr!r} answers at {where} ({why}): fix the definition's "
            f"queue_manager (zato conn edit ibm-mq-def DIR --name {mq['name']} --queue-manager NAME)"
        )
    if reason == UNKNOWN_CHANNEL_NAME:
        return (
            f"the queue manager at {where} has no channel {channel!r} ({why}): fix the definition's "
            f"channel, or DEFINE CHANNEL({channel}) CHLTYPE(SVRCONN) there"
        )
    return None


def queue_refusal(mq: dict, queue: str, e: BaseException, needs: str, then: str) -> str:
    """What to do when MQOPEN of `queue` was refused with 2035 (the user lacks `needs`, e.g.
    "+get") or 2085 (no such queue; `then`: what else would mend it)."""
    qmgr, why = mq["queue_manager"] or "QMGR", error_text(e)
    if reason_of(e) == NOT_AUTHORIZED:
        user = mq["username"] or "USER"
        who = f"user {user!r}" if mq["username"] else f"the user channel {mq['channel']!r} runs as"
        return (
            f"{who} may not open queue {queue!r} ({why}): grant {needs} on {queue} to {user} "
            f"(setmqaut -m {qmgr} -n {queue} -t queue -p {user} {needs})"
        )
    return (
        f"queue {queue!r} does not exist on queue manager {qmgr} ({why}): "
        f"define it (DEFINE QLOCAL({queue})) or {then}"
    )


def say_refused(ctx: Context, refusals: Refusals, key: object, what: str, delay: float) -> None:
    """refusals.say_refused, in this module's log."""
    say_refused_to(ctx, refusals, key, what, delay, logger)


def connect(ctx: Context, m: ModuleType, mq: dict, refusals: Refusals, away: Refusals | None = None) -> Any:
    """A connected QueueManager, retrying with back-off (RECONNECT; REFUSED, said through
    `refusals`, for what connect_refusal names); None when the connector must stop. Other
    failures (the queue manager away: 2538, 2059...) are said through `away` (one for all of a
    connector's threads): once, then at most once a minute with a count, and once connected."""
    where = f"IBM MQ {describe(mq)}"
    away = away or Refusals()
    delays, refused = RECONNECT.delays(), REFUSED.delays()
    while not ctx.should_stop():
        try:
            qm = connect_once(m, mq)
        except m.MQMIError as e:
            what = connect_refusal(mq, e)
            if what is not None:
                delay = next(refused)
                say_refused(ctx, refusals, ("connect", reason_of(e)), what, delay)
            else:
                delay = next(delays)
                say_away(ctx, away, where, error_text(e), delay)
            if ctx.wait(delay):
                return None
            continue
        worked = refusals.worked(time.monotonic())
        back = away.worked(time.monotonic())
        if worked:
            logger.warning("%s: connected to %s after %d refusal(s) over %.0f s", ctx.label, where, *worked)
        elif back:
            logger.warning("%s: connected to %s after %d failed try(s) over %.0f s", ctx.label, where, *back)
        else:
            logger.info("%s: connected to %s", ctx.label, where)
        return qm
    return None


def say_away(ctx: Context, away: Refusals, where: str, why: str, delay: float) -> None:
    """A connect that failed for a reason no configuration change mends (the queue manager or
    its host away): in status each time (LAST ERROR, `reconnecting`); in the log once, then at
    most once a minute with how many came since. Before, each try (every 5 s, by each of a
    channel's max_in_flight connections) wrote a WARNING line for as long as it was away."""
    said = away.refused(time.monotonic(), "away")
    ctx.stats.error(f"cannot connect to {where}: {why}; next try in {delay:g} s")
    ctx.stats.state("reconnecting")
    if said == 0:
        logger.warning(
            "%s: cannot connect to %s: %s; trying again in %g s, then every %g s at most (said again"
            " at most once every %g s, with a count)",
            ctx.label,
            where,
            why,
            delay,
            RECONNECT.max,
            away.every,
        )
    elif said:
        logger.warning(
            "%s: still cannot connect to %s, %d more time(s) since said: %s; next try in %g s",
            ctx.label,
            where,
            said,
            why,
            delay,
        )


def close_quietly(m: ModuleType, qm: Any) -> None:
    """Back out what is not committed, then disconnect (MQDISC alone would commit it)."""
    if qm is None:
        return
    for call in (qm.backout, qm.disconnect):
        try:
            call()
        except mq_errors(m):
            pass


def mq_errors(m: ModuleType) -> tuple[type[BaseException], ...]:
    """What the driver raises for MQI failures and for calls on a closed connection."""
    return (m.MQMIError, OSError) + ((m.PYIFError,) if hasattr(m, "PYIFError") else ())


# A session that ran this long before an MQ call failed it had worked: the wait before the
# next connection starts again from RECONNECT.start, and its failure is said as a new one.
STEADY = RECONNECT.max


class SessionFailures:
    """MQ calls failing a session (a broken connection, any reason not handled where it
    happens): each ends the connection, and a new one is made after RECONNECT's waits (0.5 s,
    +1 s, 5 s at most), for as long as they fail one after the other. A failure other than a
    broken connection is said at ERROR once in full, then at most once a minute with how many
    came since (refusals.Refusals), and "work again" once a session lasts STEADY s; before,
    an error the queue manager kept giving made a new connection and an ERROR line twice a
    second. One object for all of a connector's threads, so N connections say it once."""

    def __init__(self) -> None:
        self.refusals = Refusals()
        self.away = Refusals()  # connects failing meanwhile (ibmmq_common.connect's `away`)

    def failed(self, ctx: Context, e: BaseException, delay: float) -> None:
        """An MQ call failed the session with `e`; the next connection comes in `delay` s."""
        ctx.stats.error(f"IBM MQ call failed: {error_text(e)}; next try in {delay:g} s")
        ctx.stats.state("reconnecting")
        if is_broken(e):
            ctx.stats.add("reconnects")
            logger.warning(
                "%s: connection to IBM MQ broken (%s); reconnecting in %g s, uncommitted messages come again",
                ctx.label,
                error_text(e),
                delay,
            )
            return
        said = self.refusals.refused(time.monotonic(), ("session", reason_of(e)))
        if said == 0:
            logger.error(
                "%s: IBM MQ call failed (%s); reconnecting in %g s, then after a growing wait (every %g s"
                " at most) while it fails again at once (said again at most once every %g s, with a count)",
                ctx.label,
                error_text(e),
                delay,
                RECONNECT.max,
                self.refusals.every,
            )
        elif said:
            logger.error(
                "%s: IBM MQ call still fails, %d more time(s) since said (%s); reconnecting in %g s",
                ctx.label,
                said,
                error_text(e),
                delay,
            )

    def worked(self, ctx: Context) -> None:
        """A session has run STEADY s: failures said before are over (said once)."""
        worked = self.refusals.worked(time.monotonic())
        if worked:
            # (the state is the session's own: "running", or "refused" while it waits on a refusal)
            logger.warning("%s: IBM MQ calls work again, after %d failure(s) over %.0f s", ctx.label, *worked)


class Steady:
    """Whether a session has run STEADY s: then its failures are over (SessionFailures.worked,
    said as it happens, from a timer thread) and the next failure waits RECONNECT.start again."""

    def __init__(self, ctx: Context, failures: SessionFailures):
        self.reached = threading.Event()
        self._timer = threading.Timer(STEADY, self._reach, (ctx, failures))
        self._timer.daemon = True
        self._timer.start()

    def _reach(self, ctx: Context, failures: SessionFailures) -> None:
        self.reached.set()
        failures.worked(ctx)

    def cancel(self) -> None:
        self._timer.cancel()


def serve(  # noqa: PLR0913
    ctx: Context,
    mq: dict,
    session: Callable[[ModuleType, Any], None],
    refusals: Refusals | None = None,
    redis: RedisFailures | None = None,
    failures: SessionFailures | None = None,
) -> int:
    """Connect, run `session(driver, queue_manager)`, and when the queue manager or the network
    fails say so (log, stats) and connect again; returns the process exit code. `refusals`
    says refused connects, `failures` MQ calls failing sessions (each one for all of a
    connector's threads). When only Redis fails the
    session (CoordError: unreachable, or WRONGTYPE, NOPERM, READONLY), its uncommitted work is
    backed out and the session runs again on the same connection after `redis`'s wait (said
    once, then once a minute; the session says `redis.worked()` once Redis answers again)."""
    m = driver()
    refusals = refusals or Refusals()
    redis = redis or RedisFailures(ctx, logger, "the queue manager connection")
    failures = failures or SessionFailures()
    qm: Any = None
    delay = 0.0  # the last wait after a failed session (0: none failed at once since)
    while not ctx.should_stop():
        qm = qm or connect(ctx, m, mq, refusals, failures.away)
        if qm is None:
            break
        failed: CoordError | None = None
        steady = Steady(ctx, failures)
        try:
            session(m, qm)
        except m.MQMIError as e:
            steady.cancel()
            # after a session that worked: a new failure, not one more of the last
            delay = RECONNECT.after(0.0 if steady.reached.is_set() else delay)
            failures.failed(ctx, e, delay)
            ctx.wait(delay)
        except StaleEpoch as e:  # paused past a takeover: Redis refused to hand over messages
            ctx.lease_lost(str(e))
        except CoordError as e:  # Redis (outgoing hand-off, epoch check): the connection is kept
            failed = e
        finally:
            steady.cancel()
            if failed is None or not backed_out(m, qm):  # what is not committed comes again
                close_quietly(m, qm)
                qm = None
        if failed is None:
            redis.worked()
            continue
        ctx.wait(redis.failed(failed))
    close_quietly(m, qm)
    return ctx.exit_code or EXIT_OK


def backed_out(m: ModuleType, qm: Any) -> bool:
    """MQBACK of what `qm` has not committed; False when the connection failed it (it is closed
    and a new one made)."""
    try:
        qm.backout()
    except mq_errors(m):
        return False
    return True


# The MQMD's fields a service reads in self.request.ibm_mq (zato.service.messages), by MQMD name.
_MD_IDS = {"msg_id": "MsgId", "correlation_id": "CorrelId"}  # binary: hex text
_MD_TEXT = {
    "reply_to": "ReplyToQ",
    "reply_to_qmgr": "ReplyToQMgr",
    "put_date": "PutDate",
    "put_time": "PutTime",
    "format": "Format",
}
_MD_NUMBERS = {
    "priority": "Priority",
    "expiry": "Expiry",
    "persistence": "Persistence",
    "backout_count": "BackoutCount",
}


def message_meta(md: Any, not_converted: str = "") -> bytes:
    """What the queue manager said of a message (its MQMD), as the service reads it: ids as
    hex text, text fields without their padding; fields the driver's MD lacks are left out.
    `not_converted`: why a get with MQGMO_CONVERT returned it as it was put (the reason)."""
    out: dict[str, Any] = {}
    for name, field in _MD_IDS.items():
        value = getattr(md, field, None)
        if value is not None:
            out[name] = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    for name, field in _MD_TEXT.items():
        value = getattr(md, field, None)
        if value is not None:
            text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
            out[name] = text.strip(" \x00")
    for name, field in _MD_NUMBERS.items():
        value = getattr(md, field, None)
        try:
            out[name] = None if value is None else int(value)
        except (TypeError, ValueError):  # a driver's oddity: never the message's failure
            out[name] = str(value)
    meta: dict[str, Any] = {"kind": "ibm-mq", "mqmd": out}
    if not_converted:
        meta["not_converted"] = not_converted
    return jsonenc.dumps_lenient(meta).encode()
