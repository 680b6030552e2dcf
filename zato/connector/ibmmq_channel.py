"""IBM MQ channel connector: get under syncpoint, invoke the channel's service, commit after it.

- MQGET with MQGMO_SYNCPOINT | MQGMO_WAIT (WAIT_MS, so a stop request is seen promptly): the
  message stays the queue manager's until MQCMIT; a crash or a broken connection backs it out
  and it is delivered again (Zato 4.1 reads with NO_SYNCPOINT and loses it instead); with
  MQGMO_NO_PROPERTIES, so a JMS sender's message is its body alone, not an MQRFH2 before it;
- the service is invoked on a live server through the fenced internal endpoint with this
  holder's epoch; 200: MQCMIT; 409 (stale epoch): MQBACK and exit with EXIT_LEASE_LOST, so a
  stale holder's get is never committed; any other answer: MQBACK (the backout count rises),
  as for a service that did not answer within the channel's `timeout` (seconds, default 30);
- no server answers (or 503): the message is kept under syncpoint and offered again after a
  pause, without counting as a backout;
- a message whose BackoutCount reached the threshold (the channel's, else the queue's
  BOTHRESH, else DEFAULT_THRESHOLD), or that is not JSON for data format json, is put to the
  backout queue (the queue's BOQNAME, else the channel's) and the get committed in the same unit
  of work; without a backout queue it stays where it is and the error is shown in status;
- each message goes with its MQMD's fields (ibmmq_common.message_meta), which the service
  reads as self.request.ibm_mq (Zato's name; also .wmq);
- connection-broken reason codes (2009, 2059, 2161, 2162, 2538...): reconnect with back-off;
- a get refused with 2016 MQRC_GET_INHIBITED (GET(DISABLED)) keeps the connection: said once
  with what ends it (state `refused`), got again after RECONNECT's waits (5 s at most);
- max_in_flight N (default 1, which keeps the queue's order): N connections, each in its own
  thread with its own unit of work, get and invoke at once; with N > 1 the queue is opened
  MQOO_INPUT_SHARED (MQOO_INPUT_AS_Q_DEF would be exclusive on a DEFSOPT(EXCL) queue and
  refuse the second handle with 2042); 2042 MQRC_OBJECT_IN_USE (a NOSHARE queue, another
  application's exclusive handle) is said once with what to change and the open retried;
- an input open refused with what only a configuration change ends (2035 MQRC_NOT_AUTHORIZED:
  no +get; 2085 MQRC_UNKNOWN_OBJECT_NAME: no such queue) is tried again on the same connection
  after ibmmq_common.REFUSED's growing waits (0.5 s... 30 s), said once with what to do, then
  at most once a minute with a count (ibmmq_common.Refusals), the stats state `refused`; so is
  a backout queue that refuses a message so (2035: no +put; 2085), the message backed out;
- the queue is opened with MQOO_INQUIRE to read BOQNAME/BOTHRESH; a user without +inq gets
  2035 for that open, so it is opened again without it (said once: the channel's own backout
  queue and threshold apply);
- a get that completes with a warning (MQCC_WARNING; the driver raises MQMIError with the data
  attached) is never committed unsaid: data not whole (2079 MQRC_TRUNCATED_MSG_ACCEPTED, 2080,
  shorter than the driver's original_length, or none): backed out, counted and said; with
  `convert`, a conversion warning with the whole message (2110..2120, 2150, 2190: returned as
  it was put) passes it on so, its metadata saying why (not_converted), said once per reason
  and CCSID; any other warning with the whole message: to the backout queue, with the reason;
- MQGET's buffer is given (FIRST_BUFFER at first): a message longer than it stays on the queue
  with 2080, and the buffer grows to its length (CONVERT_GROWTH times it with `convert`) for
  the next get, which takes it. (Without a length, ibmmq gets again itself and a warning on
  that second get raises without the data: such a message was backed out for ever);
- MQCMIT that completes with 2124 MQRC_OUTCOME_PENDING counts as committed
  (ibmmq_common.commit);
- `convert` (off by default): each get says MQGMO_CONVERT with MQMD CodedCharSetId 1208, so the
  queue manager converts text (MQFMT_STRING) to UTF-8; a binary message (MQFMT_NONE) comes as
  it was put with 2110 MQRC_FORMAT_ERROR and is passed on; a conversion that fails returns
  the message unconverted with a warning, and it is passed on as put (above);
- the input handle saves context (MQOO_SAVE_ALL_CONTEXT) and a message moved to the backout
  queue is put with MQPMO_PASS_ALL_CONTEXT, so it keeps its sender's put date and time, user
  and application; without +passall on the backout queue (2035) it is put with this
  connector's context instead (said once).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from zato.connector import ibmmq_common
from zato.connector.base import Context, not_json
from zato.connector.invoke import TOO_LARGE, Invoker, NoServer, Result
from zato.odb.limits import answer_timeout

logger = logging.getLogger("zato.connector.ibmmq_channel")

WAIT_MS = 500  # MQGET wait interval
DEFAULT_THRESHOLD = 5
UNAVAILABLE = 503
NO_SERVER_PAUSE = 1.0
IN_USE_PAUSE = 2.0  # between opens refused with 2042 MQRC_OBJECT_IN_USE
UTF8_CCSID = 1208  # what a channel with `convert` asks the queue manager for
FORMAT_ERROR = 2110  # MQRC_FORMAT_ERROR: with MQGMO_CONVERT, an MQFMT_NONE message comes as put
TRUNCATED_MSG_FAILED = 2080  # the message did not fit the buffer and stays on the queue
FIRST_BUFFER = 4096  # MQGET's first buffer (ibmmq's own default), grown to the longest message
# UTF-8 takes at most 3 bytes for a character that any single- or double-byte CCSID holds in
# 1 or 2 (4 for 4 in UTF-16 or GB18030): a buffer 3 times the message's length before
# conversion holds it after, so no message is got unconverted for its buffer (2120)
CONVERT_GROWTH = 3
# MQGMO_CONVERT warnings that return the whole message as it was put ("Conversion processing",
# each reason's page): 2110 MQRC_FORMAT_ERROR ... 2119 MQRC_NOT_CONVERTED, 2120
# MQRC_CONVERTED_MSG_TOO_BIG, 2150 MQRC_DBCS_ERROR, 2190 MQRC_CONVERTED_STRING_TOO_BIG
NOT_CONVERTED = frozenset((*range(2110, 2121), 2150, 2190))


def _strip(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value or "").strip().strip("\x00").strip()


class IBMMQChannelConnector:
    def __init__(self, ctx: Context, definition: dict, invoker: Invoker):
        self.ctx, self.d, self.invoker = ctx, definition, invoker
        self.content_type = "application/json" if definition["data_format"] == "json" else "text/plain"
        self.threshold = DEFAULT_THRESHOLD
        self.backout_queue = ""
        self.in_flight = max(1, definition.get("max_in_flight") or 1)
        self.inquire = True  # MQOO_INQUIRE until the queue manager refuses it (no +inq)
        self.pass_context = True  # MQOO_PASS_ALL_CONTEXT on the backout queue until refused
        self.once = ibmmq_common.Once(ctx)
        self.refusals = ibmmq_common.Refusals()  # the input open's 2035/2085, said for all threads
        self.connect_refusals = ibmmq_common.Refusals()  # MQCONNX's (ibmmq_common.connect_refusal)
        self.session_failures = ibmmq_common.SessionFailures()  # MQ calls failing a session, all threads
        self.backout_refusals = ibmmq_common.Refusals()  # the backout queue's 2035/2085
        self.backout_wait = 0.0  # the wait after its last refusal (0: none since it took one)
        self.local = threading.local()  # this thread's input handle: `inquire`, open for MQINQ
        self.inhibited = ibmmq_common.Refusals()  # gets refused with 2016 (GET(DISABLED)), all threads
        self.convert = bool(definition.get("convert"))

    def run(self) -> int:
        """Consume with max_in_flight connections until told to stop; the process exit code."""
        ibmmq_common.driver()  # MissingDriver here, once, rather than in every thread
        mq = self.d["ibm_mq"]
        refused = ibmmq_common.refuse_bad_definition(self.ctx, mq)
        if refused is not None:
            self.invoker.close()
            return refused
        extra = [
            threading.Thread(
                target=ibmmq_common.serve,
                args=(self.ctx, mq, self._consume, self.connect_refusals, None, self.session_failures),
                daemon=True,
            )
            for _ in range(self.in_flight - 1)
        ]
        try:
            for t in extra:
                t.start()
            # in the main thread, which signals reach
            code = ibmmq_common.serve(
                self.ctx, mq, self._consume, self.connect_refusals, failures=self.session_failures
            )
            self.ctx.stop_event.set()
            for t in extra:
                t.join()
            return self.ctx.exit_code or code
        finally:
            self.invoker.close()

    def _open_input(self, m: ModuleType, qm: Any) -> tuple[Any, bool] | None:
        """The input queue (and whether it is open for inquire); None when told to stop."""
        c = m.CMQC
        name = self.d["queue"]
        # More than one handle: shared, whatever the queue's DEFSOPT (AS_Q_DEF can be exclusive).
        mode = c.MQOO_INPUT_SHARED if self.in_flight > 1 else c.MQOO_INPUT_AS_Q_DEF
        base = mode | c.MQOO_SAVE_ALL_CONTEXT | c.MQOO_FAIL_IF_QUIESCING
        fell_back = False  # this call opened again without MQOO_INQUIRE after a 2035
        delays: Iterator[float] | None = None  # the waits after refusals (2035, 2085) in this call
        while not self.ctx.should_stop():
            inquire = self.inquire
            try:
                queue = m.Queue(qm, name, base | (c.MQOO_INQUIRE if inquire else 0))
            except m.MQMIError as e:
                reason = ibmmq_common.reason_of(e)
                if reason == ibmmq_common.NOT_AUTHORIZED and inquire:
                    self.inquire, fell_back = False, True  # for this connector's life, once it works
                    continue
                if reason in (ibmmq_common.NOT_AUTHORIZED, ibmmq_common.UNKNOWN_OBJECT_NAME):
                    if fell_back:  # refused without it too (no +get): nothing learnt about +inq
                        self.inquire, fell_back = True, False
                    delays = delays or ibmmq_common.REFUSED.delays()
                    if self._refused(e, next(delays)):
                        return None
                    continue
                if reason != ibmmq_common.OBJECT_IN_USE:
                    raise
                if self.in_flight > 1:
                    what = (
                        "the queue is NOSHARE (every input handle exclusive) or another application "
                        f"has it open for exclusive input: ALTER QLOCAL({name}) SHARE, or set the "
                        "channel's max_in_flight to 1"
                    )
                else:
                    what = (
                        "another application has it open for input, and this open (MQOO_INPUT_AS_Q_DEF) "
                        "or that one is exclusive (the queue's DEFSOPT(EXCL) or NOSHARE): "
                        f"DISPLAY QSTATUS({name}) TYPE(HANDLE) shows who"
                    )
                text = f"queue {name!r} refused an input handle ({ibmmq_common.error_text(e)}): {what}"
                self.ctx.stats.error(text)
                self.once("in-use", logging.ERROR, text + f"; trying again every {IN_USE_PAUSE:g} s")
                if self.ctx.wait(IN_USE_PAUSE):
                    return None
                continue
            if delays is not None:
                self._works_again()
            if fell_back:
                self.once(
                    "inquire",
                    logging.WARNING,
                    f"queue {name!r}: not authorized to inquire (reason 2035 (MQRC_NOT_AUTHORIZED) "
                    "for MQOO_INQUIRE): opened for input without it, so the queue's BOQNAME and "
                    "BOTHRESH are not read and the channel's backout queue and threshold apply "
                    "(grant the user +inq on the queue, then edit the channel, to use them)",
                )
            return queue, inquire
        return None

    def _refused(self, e: BaseException, delay: float) -> bool:
        """The queue manager refused the input open with what only a configuration change ends
        (2035: no +get; 2085: no such queue): say what to do (once, then at most once a minute
        with a count), show it in status (`refused`, LAST ERROR), wait `delay`; True: stop."""
        reason, name = ibmmq_common.reason_of(e), self.d["queue"]
        what = ibmmq_common.queue_refusal(self.d["ibm_mq"], name, e, "+get", "edit the channel's queue")
        if reason == ibmmq_common.NOT_AUTHORIZED:
            what += " (+inq too, to use the queue's BOQNAME and BOTHRESH)"
        ibmmq_common.say_refused(self.ctx, self.refusals, (reason, name), what, delay)
        return self.ctx.wait(delay)

    def _works_again(self) -> None:
        worked = self.refusals.worked(time.monotonic())
        if worked:
            logger.warning(
                "%s: queue %r opened for input after %d refusal(s) over %.0f s",
                self.ctx.label,
                self.d["queue"],
                *worked,
            )

    def _consume(self, m: ModuleType, qm: Any) -> None:
        c = m.CMQC
        opened = self._open_input(m, qm)
        if opened is None:
            return
        queue, inquire = opened
        self.local.inquire = inquire
        self._backout_settings(m, queue, inquire)
        self.ctx.stats.state("running")
        logger.info(
            "%s: getting from queue %r under syncpoint, service %r, backout threshold %d, backout queue %r",
            self.ctx.label,
            self.d["queue"],
            self.d["service"],
            self.threshold,
            self.backout_queue,
        )
        # MQGET's buffer: given, so that a warning always comes with the data (ibmmq's own
        # second get, after 2080 with no length given, raises a warning without it: a message
        # got under syncpoint whose data never came); grown to fit a longer message
        buffer = FIRST_BUFFER
        inhibited = 0.0  # the wait after the last get refused with 2016 (0: gets work)
        try:
            while not self.ctx.should_stop():
                md = m.MD()
                gmo = m.GMO()
                # NO_PROPERTIES: a JMS sender's properties would come as an MQRFH2 header
                # in front of the body (the queue's default PROPCTL(COMPAT))
                gmo.Options = (
                    c.MQGMO_SYNCPOINT | c.MQGMO_WAIT | c.MQGMO_FAIL_IF_QUIESCING | c.MQGMO_NO_PROPERTIES
                )
                gmo.WaitInterval = WAIT_MS
                if self.convert:  # the queue manager converts MQFMT_STRING data to UTF-8
                    gmo.Options |= c.MQGMO_CONVERT
                    md.CodedCharSetId, md.Encoding = UTF8_CCSID, c.MQENC_NATIVE
                try:
                    body = queue.get(buffer, md, gmo)
                except m.MQMIError as e:
                    if ibmmq_common.reason_of(e) == ibmmq_common.GET_INHIBITED:
                        inhibited = ibmmq_common.RECONNECT.after(inhibited)
                        self._get_inhibited(e, inhibited)
                        self.ctx.wait(inhibited)
                        continue
                    inhibited = self._gets_work(inhibited)
                    if ibmmq_common.reason_of(e) == ibmmq_common.NO_MSG_AVAILABLE:
                        continue
                    grown = self._grown(qm, buffer, e)
                    if grown:
                        buffer = grown
                        continue
                    if not ibmmq_common.is_warning(m, e):
                        raise
                    self._get_warning(m, qm, queue, md, e)
                    continue
                inhibited = self._gets_work(inhibited)
                self._handle(m, qm, queue, body, md)
        finally:
            self.ctx.stats.state("stopping")
            try:
                queue.close()
            except ibmmq_common.mq_errors(m):
                pass

    def _get_inhibited(self, e: BaseException, delay: float) -> None:
        """A get refused with 2016 MQRC_GET_INHIBITED (GET(DISABLED)): the connection is kept
        and the get made again after `delay` (RECONNECT: every 5 s at most); said once with what
        ends it, then at most once a minute with a count; status `refused` meanwhile. Before,
        it was an MQ error like any other: a new connection twice a second, an ERROR each."""
        name = self.d["queue"]
        text = (
            f"queue {name!r} is get-inhibited ({ibmmq_common.error_text(e)}): no message is got "
            f"until ALTER QLOCAL({name}) GET(ENABLED)"
        )
        said = self.inhibited.refused(time.monotonic(), ibmmq_common.GET_INHIBITED)
        self.ctx.stats.error(f"{text}; next try in {delay:g} s")
        self.ctx.stats.state("refused")
        if said == 0:
            logger.warning(
                "%s: %s; the connection is kept and gets tried again every %g s at most (said again"
                " at most once a minute)",
                self.ctx.label,
                text,
                ibmmq_common.RECONNECT.max,
            )
        elif said:
            label = self.ctx.label
            logger.warning("%s: still get-inhibited, %d more time(s) since said: %s", label, said, text)

    def _gets_work(self, inhibited: float) -> float:
        """A get not refused with 2016: 0.0, the waits from the start again; said once after
        gets were refused so."""
        if not inhibited:
            return 0.0
        worked = self.inhibited.worked(time.monotonic())
        if worked:
            self.ctx.stats.state("running")
            logger.warning(
                "%s: queue %r: gets work again, after %d refused with 2016 (MQRC_GET_INHIBITED) over %.0f s",
                self.ctx.label,
                self.d["queue"],
                *worked,
            )
        return 0.0

    def _grown(self, qm: Any, buffer: int, e: BaseException) -> int:
        """After 2080 MQRC_TRUNCATED_MSG_FAILED (the message longer than `buffer` stays on the
        queue), the buffer for the next get: the message's length (ibmmq's original_length, its
        DataLength), times CONVERT_GROWTH with `convert`; 0: not that (or no longer length)."""
        full = getattr(e, "original_length", None)
        if ibmmq_common.reason_of(e) != TRUNCATED_MSG_FAILED or not isinstance(full, int) or full <= buffer:
            return 0
        # nothing is ours to lose here; should a queue manager have taken the message into this
        # unit of work all the same ("Conversion processing" step 3), this gives it back rather
        # than commit its removal with the next message
        qm.backout()
        grown = max(full * (CONVERT_GROWTH if self.convert else 1), buffer)
        logger.info("%s: a message of %d bytes: MQGET's buffer is now %d bytes", self.ctx.label, full, grown)
        return grown

    def _backout_settings(self, m: ModuleType, queue: Any, inquire: bool = True) -> None:
        """Threshold and backout queue: the channel's threshold, else the queue's BOTHRESH; the
        queue's BOQNAME, else the channel's backout queue (only the channel's when the queue
        could not be opened for inquire)."""
        boq, bothresh = "", 0
        try:
            if inquire:
                boq = _strip(queue.inquire(m.CMQC.MQCA_BACKOUT_REQ_Q_NAME))
                bothresh = int(queue.inquire(m.CMQC.MQIA_BACKOUT_THRESHOLD))
        except m.MQMIError as e:
            if ibmmq_common.is_broken(e):
                raise
            logger.info("%s: cannot inquire the backout settings of the queue: %s", self.ctx.label, e)
        self.threshold = self.d["backout_threshold"] or bothresh or DEFAULT_THRESHOLD
        self.backout_queue = boq or self.d["backout_queue"]

    def _get_warning(self, m: ModuleType, qm: Any, queue: Any, md: Any, e: BaseException) -> None:
        """A get that completed with MQCC_WARNING: the message is ours under syncpoint. Data that
        is not whole (2079 MQRC_TRUNCATED_MSG_ACCEPTED, 2080, cut short, or none came) is never
        passed on or committed: backed out (BackoutCount + 1), said, a pause. A whole message with any other
        warning (a conversion the queue manager could not do returns it as it was put) goes to
        the backout queue with the reason, like a poison message."""
        got = getattr(e, "message", None)
        body = got if isinstance(got, bytes) else b""
        reason = ibmmq_common.reason_of(e)
        # whole: data came, not cut (2079 accepted cut, 2080 not taken), and as long as the
        # message (ibmmq attaches original_length: a short buffer cuts data under any warning)
        full = getattr(e, "original_length", None)
        whole = (
            isinstance(got, bytes)
            and reason not in ibmmq_common.TRUNCATED
            and not (isinstance(full, int) and full > len(body))
        )
        if reason in NOT_CONVERTED and self.convert and whole:
            # IBM's "Conversion processing": the message is returned whole, as it was put, its
            # MQMD saying its CodedCharSetId and Format. Passed on so, its metadata saying it was
            # not converted (self.request.ibm_mq.not_converted); said once per reason and CCSID,
            # but for a binary message (MQFMT_NONE: 2110), which no one converts.
            not_converted = ibmmq_common.error_text(e)
            if not (reason == FORMAT_ERROR and _strip(md.Format) == ""):
                self.once(
                    ("not-converted", reason, int(md.CodedCharSetId)),
                    logging.WARNING,
                    f"a message in CCSID {int(md.CodedCharSetId)}, Format {_strip(md.Format)!r} came "
                    f"unconverted ({not_converted}): passed on as it was put, its metadata saying "
                    "so (not_converted); said once for this reason and CCSID",
                )
            self._handle(m, qm, queue, body, md, not_converted)
            return
        self.ctx.stats.add("messages_in")
        why = f"MQGET completed with a warning, {ibmmq_common.error_text(e)}"
        if isinstance(got, bytes) and isinstance(full, int) and full > len(body):
            why += f" ({len(body)} of its {full} bytes came)"
        if whole:
            self._to_backout_queue(m, qm, queue, body, md, why)
            return
        qm.backout()
        text = f"{why}: the message's data is not whole, so it is backed out, not passed on"
        self.ctx.stats.add("failures")
        self.ctx.stats.add("backouts")
        self.ctx.stats.error(text)
        logger.error("%s: %s", self.ctx.label, text)
        self.ctx.wait(NO_SERVER_PAUSE)

    def _handle(
        self, m: ModuleType, qm: Any, queue: Any, body: bytes, md: Any, not_converted: str = ""
    ) -> None:
        self.ctx.stats.add("messages_in")
        count = int(md.BackoutCount)
        if count >= self.threshold:
            why = f"backed out {count} times (threshold {self.threshold})"
            self._to_backout_queue(m, qm, queue, body, md, why)
            return
        if self.d["data_format"] == "json" and (reason := not_json(body)):
            self._to_backout_queue(m, qm, queue, body, md, f"poison message: {reason}")
            return
        result = self._invoke(body, ibmmq_common.message_meta(md, not_converted))
        if result is None:  # stopping while no server could take it
            qm.backout()
        elif result.ok:
            ibmmq_common.commit(m, qm, self.once)
            self.ctx.stats.add("messages_out")
            if self.backout_wait and self.in_flight == 1:
                # the one connection got a message after the one it could not move: that one is
                # gone (removed by hand, expired). Before, the status read `refused` until the
                # connector reconnected, a problem line in zato cluster status for nothing.
                self._unstuck("the message that could not be moved is no longer first on the queue")
        elif result.stale:
            qm.backout()
            self.ctx.lease_lost(f"server {result.server} refused epoch {self.ctx.epoch} as stale")
        elif result.status == TOO_LARGE:  # no server would take it: to the backout queue at once
            self._to_backout_queue(
                m, qm, queue, body, md, f"too large for service {self.d['service']!r}: {result.text}"
            )
        elif result.refused:  # bad input, which no retry changes: to the backout queue at once
            why = f"service {self.d['service']!r}: {result.refused}"
            self._to_backout_queue(m, qm, queue, body, md, why)
        else:
            qm.backout()
            service = f"service {self.d['service']!r}"
            if result.timed_out:  # it may still run there: a failed delivery all the same
                reason = f"{result.text} ({service} on {result.server})"
            else:
                reason = f"{service} answered {result.status} on {result.server}: {result.text}"
            self.ctx.stats.add("failures")
            self.ctx.stats.add("backouts")
            self.ctx.stats.error(reason)
            logger.warning(
                "%s: delivery %d of %d failed, backed out: %s",
                self.ctx.label,
                count + 1,
                self.threshold,
                reason,
            )

    def _invoke(self, body: bytes, meta: bytes) -> Result | None:
        """The service's answer; while no server can take the message it is kept (under
        syncpoint, not backed out) and offered again; None when told to stop meanwhile."""
        while True:
            try:
                result = self.invoker.invoke(self.d["service"], body, self.content_type, meta=meta)
            except NoServer as e:
                reason = str(e)
            else:
                if result.status != UNAVAILABLE:
                    return result
                reason = f"server {result.server} is unavailable: {result.text}"
            self.ctx.stats.error(reason)
            logger.warning("%s: %s; the message waits", self.ctx.label, reason)
            if self.ctx.wait(NO_SERVER_PAUSE):
                return None

    def _to_backout_queue(
        self, m: ModuleType, qm: Any, queue: Any, body: bytes, md: Any, reason: str
    ) -> None:
        """Put the message to the backout queue and commit its get with it (one unit of work),
        passing its context (put date/time, user, application) from the input handle."""
        msg_id = md.MsgId.hex() if isinstance(md.MsgId, bytes) else str(md.MsgId)
        if not self.backout_queue and getattr(self.local, "inquire", False):
            # read again: the queue may have been given one since (ALTER QLOCAL ... BOQNAME),
            # which before was only read when the connection was made
            self._backout_settings(m, queue)
        if not self.backout_queue:
            name = self.d["queue"]
            where = (
                f"queue {name!r} has no BOQNAME and the channel no backout queue: set one (ALTER "
                f"QLOCAL({name}) BOQNAME(...), or zato conn edit ibm-mq-channel DIR --name {self.d['name']} "
                "--backout-queue ...)"
            )
            self._stays(qm, ("no backout queue", name), f"message {msg_id} {reason}, but {where}")
            return
        try:
            self._put_backout(m, qm, queue, body, md)
        except m.MQMIError as e:
            if ibmmq_common.is_broken(e):
                raise
            if ibmmq_common.reason_of(e) in (ibmmq_common.NOT_AUTHORIZED, ibmmq_common.UNKNOWN_OBJECT_NAME):
                self._backout_refused(qm, e, f"message {msg_id} {reason}")
                return
            why = ibmmq_common.error_text(e)
            text = f"message {msg_id} {reason}; cannot put it to {self.backout_queue!r}: {why}"
            self._stays(qm, ("backout put", ibmmq_common.reason_of(e), self.backout_queue), text)
            return
        if self.backout_wait:  # the backout queue takes messages again
            self._unstuck(f"backout queue {self.backout_queue!r} takes messages again")
        ibmmq_common.commit(m, qm, self.once)
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"moved message {msg_id} to backout queue {self.backout_queue!r}: {reason}")
        logger.error(
            "%s: message %s moved to backout queue %r: %s", self.ctx.label, msg_id, self.backout_queue, reason
        )

    def _put_backout(self, m: ModuleType, qm: Any, queue: Any, body: bytes, md: Any) -> None:
        """MQPUT to the backout queue under syncpoint, same MQMD (MsgId...; the queue manager
        resets BackoutCount), with MQPMO_PASS_ALL_CONTEXT from the input handle (opened with
        MQOO_SAVE_ALL_CONTEXT) while the user may pass context (+passall); else default context."""
        c = m.CMQC
        handle = queue.get_handle() if hasattr(queue, "get_handle") else None
        base = c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING
        refused = False  # this call was refused MQOO_PASS_ALL_CONTEXT with 2035
        if self.pass_context and handle:
            try:
                target = m.Queue(qm, self.backout_queue, base | c.MQOO_PASS_ALL_CONTEXT)
            except m.MQMIError as e:
                if ibmmq_common.reason_of(e) != ibmmq_common.NOT_AUTHORIZED:
                    raise
                self.pass_context, refused = False, True  # for this connector's life, once it works
            else:
                pmo = m.PMO()
                pmo.Options = c.MQPMO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING | c.MQPMO_PASS_ALL_CONTEXT
                pmo.Context = handle
                try:
                    target.put(body, md, pmo)
                    return
                except m.MQMIError as e:
                    if ibmmq_common.reason_of(e) not in ibmmq_common.CONTEXT_REFUSED:
                        raise
                    self.once(
                        ("context", ibmmq_common.reason_of(e)),
                        logging.WARNING,
                        f"backout queue {self.backout_queue!r}: the context could not be passed "
                        f"({ibmmq_common.error_text(e)}): put with this connector's context",
                    )
                finally:
                    with contextlib.suppress(*ibmmq_common.mq_errors(m)):
                        target.close()
        pmo = m.PMO()
        pmo.Options = c.MQPMO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING
        try:
            target = m.Queue(qm, self.backout_queue, base)
        except m.MQMIError as e:
            if refused and ibmmq_common.reason_of(e) == ibmmq_common.NOT_AUTHORIZED:
                self.pass_context = True  # refused without it too (no +put?): nothing learnt of +passall
            raise
        if refused:
            self.once(
                "passall",
                logging.WARNING,
                f"backout queue {self.backout_queue!r}: not authorized to pass context (reason 2035 "
                "(MQRC_NOT_AUTHORIZED) for MQOO_PASS_ALL_CONTEXT): messages moved there carry this "
                "connector's put date, time, user and application, not their sender's (grant the "
                "user +passall on that queue, then edit the channel, to keep them)",
            )
        try:
            target.put(body, md, pmo)
        finally:
            with contextlib.suppress(*ibmmq_common.mq_errors(m)):
                target.close()

    def _backout_refused(self, qm: Any, e: BaseException, text: str) -> None:
        """The backout queue refused the message with what only a configuration change ends
        (2035: no +put; 2085: no such queue): back it out (it comes again), say what to do as
        the input open's refusals are said, wait longer each time (REFUSED), up to 30 s."""
        qm.backout()
        self.backout_wait = ibmmq_common.REFUSED.after(self.backout_wait)
        what = f"{text}, but it cannot be moved: " + ibmmq_common.queue_refusal(
            self.d["ibm_mq"],
            self.backout_queue,
            e,
            "+put",
            "set the queue's BOQNAME or the channel's backout queue to one that exists",
        )
        if ibmmq_common.reason_of(e) == ibmmq_common.NOT_AUTHORIZED:
            what += " (+passall too, to keep its sender's context)"
        key = (ibmmq_common.reason_of(e), self.backout_queue)
        ibmmq_common.say_refused(
            self.ctx, self.backout_refusals, key, what + "; it stays on its queue", self.backout_wait
        )
        self.ctx.wait(self.backout_wait)

    def _unstuck(self, what: str) -> None:
        """The message that could not be moved went (moved at last, or gone): said once, the
        waits from the start again, status `running`."""
        self.backout_wait = 0.0
        worked = self.backout_refusals.worked(time.monotonic())
        if worked:
            logger.warning("%s: %s, after %d refusal(s) over %.0f s", self.ctx.label, what, *worked)
        self.ctx.stats.state("running")

    def _stays(self, qm: Any, key: object, text: str) -> None:
        """A message that cannot be moved (no backout queue at all, or one that refuses it for
        another reason than 2035/2085): back it out (it stays on its queue), wait longer each
        time (REFUSED: 0.5 s doubling to 30 s), say it as the backout queue's refusals are said
        (once, then at most once a minute with a count; state `refused`). Before, it was got
        again every second with an ERROR line each time, for as long as nothing changed."""
        qm.backout()
        self.backout_wait = ibmmq_common.REFUSED.after(self.backout_wait)
        ibmmq_common.say_refused(
            self.ctx, self.backout_refusals, key, text + "; it stays on its queue", self.backout_wait
        )
        self.ctx.wait(self.backout_wait)


def run(ctx: Context, definition: dict) -> int:
    # each connection's thread waits for its service's answer itself: that wait is progress
    # (before, a service slower than [main] connector_hang_after got the connector SIGKILLed
    # as hung in mid-call, its message backed out and run again, then parked at the threshold)
    invoker = ctx.invoker(answer_timeout(definition), beat_while_waiting=True)
    return IBMMQChannelConnector(ctx, definition, invoker).run()
