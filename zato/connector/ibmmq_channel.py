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
- max_in_flight N (default 1, which keeps the queue's order): N connections, each in its own
  thread with its own unit of work, get and invoke at once.
"""

from __future__ import annotations

import logging
import threading
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

    def run(self) -> int:
        """Consume with max_in_flight connections until told to stop; the process exit code."""
        ibmmq_common.driver()  # MissingDriver here, once, rather than in every thread
        mq = self.d["ibm_mq"]
        extra = [
            threading.Thread(target=ibmmq_common.serve, args=(self.ctx, mq, self._consume), daemon=True)
            for _ in range(max(1, self.d.get("max_in_flight") or 1) - 1)
        ]
        try:
            for t in extra:
                t.start()
            code = ibmmq_common.serve(self.ctx, mq, self._consume)  # signals reach the main thread
            self.ctx.stop_event.set()
            for t in extra:
                t.join()
            return self.ctx.exit_code or code
        finally:
            self.invoker.close()

    def _consume(self, m: ModuleType, qm: Any) -> None:
        c = m.CMQC
        options = c.MQOO_INPUT_AS_Q_DEF | c.MQOO_INQUIRE | c.MQOO_FAIL_IF_QUIESCING
        queue = m.Queue(qm, self.d["queue"], options)
        self._backout_settings(m, queue)
        self.ctx.stats.state("running")
        logger.info(
            "%s: getting from queue %r under syncpoint, service %r, backout threshold %d, backout queue %r",
            self.ctx.label,
            self.d["queue"],
            self.d["service"],
            self.threshold,
            self.backout_queue,
        )
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
                try:
                    body = queue.get(None, md, gmo)
                except m.MQMIError as e:
                    if ibmmq_common.reason_of(e) == ibmmq_common.NO_MSG_AVAILABLE:
                        continue
                    raise
                self._handle(m, qm, body, md)
        finally:
            self.ctx.stats.state("stopping")
            try:
                queue.close()
            except ibmmq_common.mq_errors(m):
                pass

    def _backout_settings(self, m: ModuleType, queue: Any) -> None:
        """Threshold and backout queue: the channel's threshold, else the queue's BOTHRESH; the
        queue's BOQNAME, else the channel's backout queue."""
        boq, bothresh = "", 0
        try:
            boq = _strip(queue.inquire(m.CMQC.MQCA_BACKOUT_REQ_Q_NAME))
            bothresh = int(queue.inquire(m.CMQC.MQIA_BACKOUT_THRESHOLD))
        except m.MQMIError as e:
            if ibmmq_common.is_broken(e):
                raise
            logger.info("%s: cannot inquire the backout settings of the queue: %s", self.ctx.label, e)
        self.threshold = self.d["backout_threshold"] or bothresh or DEFAULT_THRESHOLD
        self.backout_queue = boq or self.d["backout_queue"]

    def _handle(self, m: ModuleType, qm: Any, body: bytes, md: Any) -> None:
        self.ctx.stats.add("messages_in")
        count = int(md.BackoutCount)
        if count >= self.threshold:
            self._to_backout_queue(m, qm, body, md, f"backed out {count} times (threshold {self.threshold})")
            return
        if self.d["data_format"] == "json" and (reason := not_json(body)):
            self._to_backout_queue(m, qm, body, md, f"poison message: {reason}")
            return
        result = self._invoke(body, ibmmq_common.message_meta(md))
        if result is None:  # stopping while no server could take it
            qm.backout()
        elif result.ok:
            qm.commit()
            self.ctx.stats.add("messages_out")
        elif result.stale:
            qm.backout()
            self.ctx.lease_lost(f"server {result.server} refused epoch {self.ctx.epoch} as stale")
        elif result.status == TOO_LARGE:  # no server would take it: to the backout queue at once
            self._to_backout_queue(
                m, qm, body, md, f"too large for service {self.d['service']!r}: {result.text}"
            )
        elif result.refused:  # bad input, which no retry changes: to the backout queue at once
            self._to_backout_queue(m, qm, body, md, f"service {self.d['service']!r}: {result.refused}")
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

    def _to_backout_queue(self, m: ModuleType, qm: Any, body: bytes, md: Any, reason: str) -> None:
        """Put the message to the backout queue and commit its get with it (one unit of work)."""
        msg_id = md.MsgId.hex() if isinstance(md.MsgId, bytes) else str(md.MsgId)
        if not self.backout_queue:
            where = f"queue {self.d['queue']!r} has no BOQNAME and the channel no backout queue"
            self._stays(qm, f"message {msg_id} {reason}, but {where}")
            return
        c = m.CMQC
        pmo = m.PMO()
        pmo.Options = c.MQPMO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING
        try:
            target = m.Queue(qm, self.backout_queue, c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING)
            target.put(body, md, pmo)  # same MsgId; the queue manager resets BackoutCount
            target.close()
        except m.MQMIError as e:
            if ibmmq_common.is_broken(e):
                raise
            why = ibmmq_common.error_text(e)
            self._stays(qm, f"message {msg_id} {reason}; cannot put it to {self.backout_queue!r}: {why}")
            return
        qm.commit()
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"moved message {msg_id} to backout queue {self.backout_queue!r}: {reason}")
        logger.error(
            "%s: message %s moved to backout queue %r: %s", self.ctx.label, msg_id, self.backout_queue, reason
        )

    def _stays(self, qm: Any, text: str) -> None:
        """A message that cannot be moved: back it out (it stays on its queue), say why, pause."""
        qm.backout()
        self.ctx.stats.error(text + "; it stays on its queue")
        logger.error("%s: %s; it stays on its queue", self.ctx.label, text)
        self.ctx.wait(NO_SERVER_PAUSE)


def run(ctx: Context, definition: dict) -> int:
    invoker = ctx.invoker(answer_timeout(definition))
    return IBMMQChannelConnector(ctx, definition, invoker).run()
