"""IBM MQ outgoing connector: move messages from the Redis hand-off to a queue manager (flow 6).

A service's `self.outgoing.ibm_mq.send(...)` pushes the message to Redis (encode below). This
connector moves a batch to the processing list, MQPUTs each under syncpoint, checks that the
cluster's epoch is still its own, MQCMITs, and only then removes the batch from Redis. A crash
before the commit backs the puts out and leaves the batch in the processing list, published
again by the next run (leftovers): at-least-once, nothing lost. A connector that finds its epoch
replaced backs out instead of committing, so the new holder is the only one to put them.
A put that completes with a warning (MQCC_WARNING, e.g. reason 2104 MQRC_UNKNOWN_REPORT_OPTION:
the driver raises MQMIError with comp 1) put the message all the same: it counts as sent, and
each such reason is logged once at WARNING; only a failure (MQCC_FAILED) parks it in Redis.
An MQCMIT that completes with 2124 MQRC_OUTCOME_PENDING committed the batch (the queue manager
completes it later): it counts as sent and leaves Redis (before, the connector reconnected and
put the batch again, a duplicate of every message); 2003 MQRC_BACKED_OUT, as a failure or a
warning, and unknown warnings leave the batch in Redis to be put again (ibmmq_common.commit).
A message not signed with the cluster's key (zato.coord.signing.outgoing_signed: Redis is no
proof of who wrote it) is parked, never put; said at ERROR once, then with a count at most once
a minute (refusals.Unsigned).
A put refused for now (ibmmq_common.PUT_LATER: 2053 MQRC_Q_FULL, 2051 MQRC_PUT_INHIBITED, 2192
MQRC_PAGESET_FULL) is not parked: the puts before it are committed, and it and the messages
after it stay in the processing list, put again after a growing wait (Later), nothing new taken
meanwhile (before, each was parked, to be re-sent by hand once the queue took messages again).
Output handles are kept per queue for the connection's life; one the queue manager invalidated
(ibmmq_common.STALE_HANDLE: 2041 MQRC_OBJECT_CHANGED after an ALTER ... FORCE or REFRESH
CLUSTER, 2052 MQRC_Q_DELETED) is closed and the queue opened again for the put.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from zato.common import jsonenc
from zato.common.errors import ConnectorError
from zato.connector import ibmmq_common
from zato.connector.base import Context, list_queue
from zato.connector.refusals import Unsigned
from zato.coord import lease
from zato.coord.queues import OutQueue, body_of, envelope
from zato.coord.signing import OutgoingCheck, sign_outgoing

logger = logging.getLogger("zato.connector.ibmmq_outgoing")

KIND = "ibm-mq"  # Redis queue kind (Keys.out_queue)
BATCH = 100
TAKE_TIMEOUT = 0.5
LEFTOVER_SCAN = 5.0
PERSISTENCE = ("persistent", "non-persistent", "queue")


# Zato's send(..., delivery_mode=...) takes JMS delivery modes.
DELIVERY_MODES = {1: "non-persistent", 2: "persistent"}
MQ_ID_PREFIX = "ID:"  # how JMS and IBM MQ tools print a MsgId/CorrelId: ID: and 48 hex digits
UTF8_CCSID = 1208  # the MQMD CodedCharSetId of UTF-8 text (what ibmmq itself sets for str bodies)
# IBM MQ object names: at most 48 of A-Z a-z 0-9 . / _ %. The driver encodes names as ASCII
# (UnicodeEncodeError otherwise) and cuts longer ones to 48 without a word.
MQ_NAME_RE = re.compile(r"[A-Za-z0-9._/%]{1,48}")


def check_mq_name(where: str, value: object) -> str:
    """`value` as an IBM MQ queue name; ConnectorError naming `where` when MQ would not take it."""
    if not isinstance(value, str) or not MQ_NAME_RE.fullmatch(value):
        raise ConnectorError(
            f"{where}: {value!r} is not an IBM MQ queue name (at most 48 of A-Z a-z 0-9 . / _ %)"
        )
    return value


# A channel name (MQCD ChannelName): at most 20 of the same characters. The driver packs the
# MQCD with a 20-byte field, cutting a longer name without a word: a connection to another
# channel, or a refusal (2540) naming one the user never gave.
MQ_CHANNEL_RE = re.compile(r"[A-Za-z0-9._/%]{1,20}")


def check_channel_name(where: str, value: object) -> str:
    """`value` as an IBM MQ channel name (the SVRCONN channel a client connects through)."""
    if not isinstance(value, str) or not MQ_CHANNEL_RE.fullmatch(value):
        raise ConnectorError(
            f"{where}: {value!r} is not an IBM MQ channel name (1 to 20 of A-Z a-z 0-9 . / _ %): give"
            " the server-connection channel's, e.g. DEV.APP.SVRCONN"
        )
    return value


def check_qmgr_name(where: str, value: object) -> str:
    """`value` as the queue manager name of MQCONNX: at most 48 of A-Z a-z 0-9 . / _ %, or ""
    (whichever answers at conn_name), an optional leading * (the name is not checked, IBM's
    "queue manager name includes an asterisk"). The driver encodes it as ASCII: any other
    character raised UnicodeEncodeError in the connector, which crashed at every start."""
    text = value if isinstance(value, str) else ""
    name = text[1:] if text.startswith("*") else text
    if text is not value or (name and not MQ_NAME_RE.fullmatch(name)) or len(text) > 48:
        raise ConnectorError(
            f"{where}: {value!r} is not an IBM MQ queue manager name (at most 48 of A-Z a-z 0-9 . / _ %,"
            " after an optional *): give the queue manager's name, or none for whichever answers at conn_name"
        )
    return text


@dataclass(frozen=True)
class MQMessage:
    body: bytes
    id: str
    queue: str | None = None  # None: the connection's default queue
    priority: int | None = None
    expiry: float | None = None  # seconds (MQ keeps tenths)
    persistence: str | None = None
    correlation_id: bytes | None = None
    reply_to: str | None = None
    msg_id: bytes | None = None  # None: the queue manager makes a new one
    text: bool = True  # UTF-8 text (MQFMT_STRING, CCSID 1208); False: bytes as sent (MQFMT_NONE)


def expiry_of_expiration(expiration: object) -> float | None:
    """Zato's `expiration` (a JMS time-to-live in milliseconds; 0 or None: the connection's
    default) as our expiry in seconds, rounded up to MQ's tenths so that 1 ms is not unlimited."""
    if expiration is None or expiration == 0:
        return None
    if isinstance(expiration, bool) or not isinstance(expiration, int) or expiration < 0:
        raise ConnectorError(f"IBM MQ expiration must be whole milliseconds >= 0, not {expiration!r}")
    return -(-expiration // 100) / 10


def persistence_of_delivery_mode(delivery_mode: object) -> str | None:
    """Zato's `delivery_mode` (JMS: 1 non-persistent, 2 persistent; 0 or None: the connection's
    default) as our persistence."""
    if delivery_mode is None or delivery_mode == 0:
        return None
    if type(delivery_mode) is not int or delivery_mode not in DELIVERY_MODES:  # bool is no mode
        raise ConnectorError(
            f"IBM MQ delivery_mode must be 1 (non-persistent) or 2 (persistent), not {delivery_mode!r}"
        )
    return DELIVERY_MODES[delivery_mode]


def mq_id(field: str, value: str | bytes | None) -> bytes | None:
    """A MsgId or CorrelId as bytes: bytes as they are, "ID:" + hex digits decoded, other text
    as UTF-8; at most 24 bytes (MQ pads shorter ones with zero bytes). "" or None: not set."""
    if value is None or value in ("", b""):
        return None
    if isinstance(value, str):
        if value.startswith(MQ_ID_PREFIX):
            try:
                value = bytes.fromhex(value[len(MQ_ID_PREFIX) :])
            except ValueError:
                raise ConnectorError(f"IBM MQ {field} {value!r}: hex digits must follow ID:") from None
        else:
            value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise ConnectorError(f"IBM MQ {field} must be text or bytes, not {type(value).__name__}")
    if len(value) > 24:
        raise ConnectorError(f"IBM MQ {field} is longer than 24 bytes")
    return value


def check_fields(
    queue: object, priority: object, expiry: object, persistence: object, reply_to: object
) -> None:
    """ConnectorError naming the first field the queue manager (or the driver) would not take:
    checked as a service sends, and again as the connector reads the message back from Redis,
    which holds plain JSON (a Redis writer's, or another version's): a put that raised anything
    but MQMIError ended the connector, and every restart took the same message again."""
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9
    ):
        raise ConnectorError(f"IBM MQ priority must be a whole number 0..9, not {priority!r}")
    if expiry is not None and (
        isinstance(expiry, bool) or not isinstance(expiry, (int, float)) or not 0 <= expiry < 2**31 / 10
    ):
        raise ConnectorError(f"IBM MQ expiry must be seconds >= 0, not {expiry!r}")
    if persistence is not None and (not isinstance(persistence, str) or persistence not in PERSISTENCE):
        raise ConnectorError(
            f"IBM MQ persistence must be one of {', '.join(PERSISTENCE)}, not {persistence!r}"
        )
    if queue:
        check_mq_name("IBM MQ queue_name", queue)
    if reply_to:
        check_mq_name("IBM MQ reply_to", reply_to)


def encode(
    data: object,
    queue: str | None = None,
    priority: int | None = None,
    expiry: float | None = None,
    persistence: str | None = None,
    correlation_id: str | bytes | None = None,
    reply_to: str | None = None,
    msg_id: str | bytes | None = None,
    *,
    key: bytes,
) -> str:
    """One outgoing IBM MQ message as stored in Redis, signed with `key`
    (zato.coord.signing.outgoing_key); ConnectorError naming a bad argument."""
    check_fields(queue, priority, expiry, persistence, reply_to)
    corr, mid = mq_id("correlation_id", correlation_id), mq_id("msg_id", msg_id)
    msg = envelope(
        data,
        queue=queue,
        priority=priority,
        expiry=expiry,
        persistence=persistence,
        correlation_id=corr.hex() if corr is not None else None,
        reply_to=reply_to or None,
        msg_id=mid.hex() if mid is not None else None,
    )
    return sign_outgoing(key, KIND, json.dumps(msg))


def decode(raw: str) -> MQMessage:
    try:
        msg = jsonenc.loads(raw)
        corr, mid = msg.get("correlation_id"), msg.get("msg_id")
        check_fields(
            msg.get("queue"),
            msg.get("priority"),
            msg.get("expiry"),
            msg.get("persistence"),
            msg.get("reply_to"),
        )
        for field, value in (("correlation_id", corr), ("msg_id", mid)):
            if value and (not isinstance(value, str) or len(value) > 48):
                raise ConnectorError(f"IBM MQ {field} must be at most 24 bytes as hex digits, not {value!r}")
        return MQMessage(
            body_of(msg),
            msg.get("id", ""),
            msg.get("queue"),
            msg.get("priority"),
            msg.get("expiry"),
            msg.get("persistence"),
            bytes.fromhex(corr) if corr else None,
            msg.get("reply_to"),
            bytes.fromhex(mid) if mid else None,
            "b64" not in msg,
        )
    except ConnectorError as e:
        raise ConnectorError(f"malformed outgoing message ({e})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConnectorError(f"malformed outgoing message ({type(e).__name__}: {e})") from None


class IBMMQOutgoingConnector:
    def __init__(self, ctx: Context, definition: dict, queue: OutQueue):
        self.ctx, self.d, self.queue = ctx, definition, queue
        self._queues: dict[str, Any] = {}
        self._warned: set[int] = set()  # reasons of puts that completed with a warning, logged once
        self.once = ibmmq_common.Once(ctx)
        self._qm: Any = None  # the connection self._queues were opened on
        # Redis failing a take or a hand-off: the connection is kept and _pump runs again on it
        self.redis = ibmmq_common.RedisFailures(ctx, logger, "the queue manager connection")
        self._later = Later(ctx)
        self.signed = OutgoingCheck(ctx.outgoing_key(), KIND)  # a message that does not verify is parked
        self.unsigned = Unsigned(ctx, logger)

    def run(self) -> int:
        refused = ibmmq_common.refuse_bad_definition(self.ctx, self.d["ibm_mq"])
        if refused is not None:
            return refused
        return ibmmq_common.serve(self.ctx, self.d["ibm_mq"], self._pump, redis=self.redis)

    def _pump(self, m: ModuleType, qm: Any) -> None:
        if qm is not self._qm:  # a new connection: the handles of the last one ended with it
            self._queues, self._qm = {}, qm
        waits = self._put_all(m, qm, self.queue.leftovers())
        self.ctx.stats.state("running")
        next_scan = time.monotonic() + LEFTOVER_SCAN
        while not self.ctx.should_stop():
            if waits:  # a put refused for now: nothing new is taken until what waits goes
                if self.ctx.wait(self._later.wait()):
                    break
                waits = self._put_all(m, qm, self.queue.leftovers())
                next_scan = time.monotonic() + LEFTOVER_SCAN
                continue
            if time.monotonic() >= next_scan:
                waits = self._put_all(m, qm, self.queue.leftovers())
                next_scan = time.monotonic() + LEFTOVER_SCAN
                continue
            first = self.queue.take(TAKE_TIMEOUT)
            self.redis.worked()
            if first is not None:
                waits = self._put_all(m, qm, [first] + self.queue.take_many(BATCH - 1))
        self.ctx.stats.state("stopping")

    def _put_all(self, m: ModuleType, qm: Any, raws: list[str]) -> bool:
        """MQPUT each under syncpoint, commit if the epoch is still ours, then drop them from
        the processing list in one round trip. True: a put was refused for now (PUT_LATER):
        that message and those after it stay in the processing list, put again after a wait."""
        if not raws:
            self._later.worked()  # what waited went meanwhile (moved, or put by another run)
            return False
        sent = []
        waits = False
        for i, raw in enumerate(raws):
            self.ctx.stats.add("messages_in")  # those parked too: IN = OUT + PARKED + in flight
            if not self.signed(raw):  # Redis is no proof of who wrote it
                self._park(raw, self.unsigned.refused(raw), said=True)
                continue
            try:
                msg = decode(raw)
            except ConnectorError as e:
                self._park(raw, str(e))
                continue
            try:
                self._put(m, qm, msg)
            except m.MQMIError as e:
                if getattr(e, "comp", None) == m.CMQC.MQCC_WARNING:  # put all the same
                    self._warning(msg, e)
                    sent.append(raw)
                    continue
                if ibmmq_common.is_broken(e):
                    raise
                where = f"queue {msg.queue or self.d['queue']!r}"
                if ibmmq_common.reason_of(e) in ibmmq_common.PUT_LATER:
                    self.ctx.stats.add("messages_in", -1)  # counted when it is put (or parked)
                    self._later.refused(where, e, len(raws) - i)
                    waits = True
                    break
                if ibmmq_common.reason_of(e) == ibmmq_common.SYNCPOINT_LIMIT and sent:
                    # the queue manager's MAXUMSGS: what is put so far is committed, and the
                    # rest goes in units of work of their own (before, each was parked)
                    self.ctx.stats.add("messages_in", -1)  # counted again in the next unit of work
                    self._limited(e, len(sent))
                    if not self._commit(m, qm, sent):
                        return False
                    return self._put_all(m, qm, raws[i:])
                self._park(raw, f"{where}: {ibmmq_common.error_text(e)}")
                continue
            sent.append(raw)
        if not self._commit(m, qm, sent):
            return False
        if not waits:
            self._later.worked()
        return waits

    def _commit(self, m: ModuleType, qm: Any, sent: list[str]) -> bool:
        """MQCMIT of the puts of `sent` if the cluster's epoch is still this connector's, then
        drop them from the processing list; False: the epoch is not (backed out instead)."""
        newest = lease.current_epoch(self.ctx.client, self.ctx.settings.cluster)
        if newest > self.ctx.epoch:
            qm.backout()
            self.ctx.lease_lost(
                f"the cluster epoch is {newest} before a commit, this connector runs with {self.ctx.epoch}"
            )
            return False
        ibmmq_common.commit(m, qm, self.once)
        self.queue.done(sent)
        self.ctx.stats.add("messages_out", len(sent))
        return True

    def _limited(self, e: BaseException, put: int) -> None:
        self.once(
            ("limit", ibmmq_common.SYNCPOINT_LIMIT),
            logging.WARNING,
            f"the queue manager's limit of uncommitted messages in a unit of work (MAXUMSGS) was "
            f"reached after {put} put(s) ({ibmmq_common.error_text(e)}): they are committed and the "
            f"rest of the batch of up to {BATCH} goes in units of work of their own; ALTER QMGR "
            f"MAXUMSGS({BATCH}) or more saves the extra commits (said once)",
        )

    def _put(self, m: ModuleType, qm: Any, msg: MQMessage) -> None:
        c = m.CMQC
        md = m.MD()
        persistence = msg.persistence or self.d["persistence"]
        md.Persistence = {
            "persistent": c.MQPER_PERSISTENT,
            "non-persistent": c.MQPER_NOT_PERSISTENT,
        }.get(persistence, c.MQPER_PERSISTENCE_AS_Q_DEF)
        expiry = self.d["expiry"] if msg.expiry is None else msg.expiry
        md.Expiry = math.ceil(round(expiry * 10, 6)) if expiry else c.MQEI_UNLIMITED  # MQ counts tenths
        md.Priority = self.d["priority"] if msg.priority is None else msg.priority
        if msg.text:  # declare the body's CCSID: MQCCSI_Q_MGR would be the client locale's
            md.Format, md.CodedCharSetId = c.MQFMT_STRING, UTF8_CCSID
        else:
            md.Format = c.MQFMT_NONE
        if msg.correlation_id:
            md.CorrelId = msg.correlation_id.ljust(24, b"\x00")
        if msg.reply_to:
            md.ReplyToQ = msg.reply_to.encode("utf-8")
        pmo = m.PMO()
        pmo.Options = c.MQPMO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING
        if msg.msg_id:
            md.MsgId = msg.msg_id.ljust(24, b"\x00")
        else:
            pmo.Options |= c.MQPMO_NEW_MSG_ID
        name = msg.queue or self.d["queue"]
        try:
            self._open(m, qm, name).put(msg.body, md, pmo)
        except m.MQMIError as e:
            if ibmmq_common.reason_of(e) not in ibmmq_common.STALE_HANDLE:
                raise
            # IBM: close the handle, open the queue again, put again. Before, the handle stayed
            # cached for the connection's life and every message for that queue was parked.
            self._forget(m, name)
            logger.info(
                "%s: queue %r: its handle is no longer valid (%s): opened again",
                self.ctx.label,
                name,
                ibmmq_common.error_text(e),
            )
            self._open(m, qm, name).put(msg.body, md, pmo)

    def _open(self, m: ModuleType, qm: Any, name: str) -> Any:
        queue = self._queues.get(name)
        if queue is None:
            c = m.CMQC
            queue = m.Queue(qm, name, c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING)
            self._queues[name] = queue
        return queue

    def _forget(self, m: ModuleType, name: str) -> None:
        """MQCLOSE of the cached handle of `name` (the queue manager invalidated it)."""
        queue = self._queues.pop(name, None)
        if queue is not None:
            with contextlib.suppress(*ibmmq_common.mq_errors(m)):
                queue.close()

    def _warning(self, msg: MQMessage, e: BaseException) -> None:
        reason = ibmmq_common.reason_of(e)
        if reason in self._warned:
            return
        self._warned.add(reason)
        logger.warning(
            "%s: queue %r: the queue manager took a message with a warning, %s; it counts as sent"
            " (said once for each reason)",
            self.ctx.label,
            msg.queue or self.d["queue"],
            ibmmq_common.error_text(e),
        )

    def _park(self, raw: str, reason: str, said: bool = False) -> None:
        """said: the reason was logged already."""
        self.queue.park(raw)
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"parked a message in Redis: {reason}")
        if not said:
            logger.error("%s: %s; message parked in Redis for inspection", self.ctx.label, reason)


class Later:
    """Puts a queue refused for now (ibmmq_common.PUT_LATER: full, PUT(DISABLED)): the message
    and those after it wait in Redis, in order, and are put again after waits growing to
    RECONNECT.max (parking them meant re-sending them by hand once the queue took messages
    again). Said at the first refusal and once it takes them again, at WARNING; in status
    (LAST ERROR) meanwhile."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.delay = 0.0  # the last wait (0: no put refused since the last that went)
        self.tries, self.since = 0, 0.0

    def refused(self, where: str, e: BaseException, waiting: int) -> None:
        why = ibmmq_common.error_text(e)
        self.ctx.stats.error(f"{where} refused a message for now ({why}): {waiting} wait in Redis")
        if not self.tries:
            self.since = time.monotonic()
            logger.warning(
                "%s: %s refused a message for now (%s): it and the %d after it wait in Redis, in order,"
                " and are put again every %g s at most, until it takes them",
                self.ctx.label,
                where,
                why,
                waiting - 1,
                ibmmq_common.RECONNECT.max,
            )
        self.tries += 1

    def wait(self) -> float:
        self.delay = ibmmq_common.RECONNECT.after(self.delay)
        return self.delay

    def worked(self) -> None:
        if self.tries:
            logger.warning(
                "%s: the queue took the messages that waited, after %d refused put(s) over %.0f s",
                self.ctx.label,
                self.tries,
                time.monotonic() - self.since,
            )
        self.delay, self.tries = 0.0, 0


def run(ctx: Context, definition: dict) -> int:
    queue = OutQueue(ctx.client, ctx.settings.cluster, KIND, definition["name"], ctx.epoch)
    list_queue(ctx, queue)
    return IBMMQOutgoingConnector(ctx, definition, queue).run()
