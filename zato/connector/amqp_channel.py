"""AMQP channel connector: consume a queue, invoke the channel's service, ack after success.

- manual ack, prefetch from the channel definition;
- up to max_in_flight invocations at once (default: the prefetch), each message acked as soon
  as its service answered 200 (so acks come in any order); what a batch brought back is acked
  in one frame (multiple=True) when every delivery before it is settled too (AckBook);
- what the broker delivered together while every slot was busy goes to a server in one call
  (Invoker.invoke_many: each message still its own invocation, with its own result), so a
  busy channel pays one HTTP round trip for several messages; a lone message goes alone;
- a message is acked only after the service answered 200;
- 409 (stale epoch): another server holds the lease now: stop consuming and exit with
  EXIT_LEASE_LOST without acking (the broker gives the messages to the new holder);
- the service did not answer within the channel's `timeout` (30 s by default): a failed
  delivery like any other (it is not sent to another server at once: it may still run);
- any other failure: the message is published again to the same queue with its delivery count
  (header x-zato-deliveries) plus one, then acked; after max_deliveries it goes to the parking
  queue "<queue>.zato-parked" instead, with the reason in header x-zato-parked-reason; both
  publishes are mandatory and confirmed: a parking queue deleted meanwhile is declared again,
  and a copy the broker still returns or refuses leaves the original unacked (nack, requeue);
- the service may settle its message itself (self.request.amqp, zato.service.messages): ack()
  acks it whatever the service does next, reject() parks it, reject(requeue=True) runs it again
  (a delivery counted); each message goes with its properties and delivery, for .msg;
- data format json and a body that is not JSON, or JSON nested too deeply to parse: parked at
  once (a poison message); so is a body over the servers' [limits] max_body (413: no server
  would take it), and one the service refused as bad input (400: missing or malformed input,
  BadRequest), which no retry would change;
- broker down: reconnect with back-off; unacked messages come back by themselves; so does a
  consumer the broker cancelled (its queue deleted): WARNING, last_error, then the queue is
  declared again and consumed;
- headers nested as deep as a frame can carry are decoded (amqp_common.decode_any_delivery);
  a header nested deeper than MAX_HEADER_DEPTH is left out of what the service reads of the
  message, and the log says so;
- a delivery pika cannot decode at all (a header timestamp past the year 9999) ends every
  connection that reads it: it is parked as the broker sent it, with the reason
  (amqp_rescue); if that fails, the status and log say why and it is tried again every 5 s;
- stop (SIGTERM, config change) and lease loss: no new invocation starts, the running ones
  get DRAIN seconds to answer and are settled; everything else stays unacked and comes back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import pika.spec

from zato.common.errors import EXIT_LEASE_LOST
from zato.connector import amqp_common, amqp_rescue
from zato.connector.amqp_common import AMQP_ERRORS
from zato.connector.base import Context, not_json, run_with_stack
from zato.connector.invoke import TOO_LARGE, UNAVAILABLE, Invoker, NoServer, Result
from zato.odb.limits import answer_timeout, in_flight_limit

logger = logging.getLogger("zato.connector.amqp_channel")

DELIVERIES = "x-zato-deliveries"
PARKED_REASON = "x-zato-parked-reason"
PARK_SUFFIX = ".zato-parked"
NO_SERVER_PAUSE = 1.0  # seconds no invocation starts after no server answered
# A failed delivery runs again after 0.5 s, doubling up to 5 s (0.5 + 1 + 2 + 4 s before the
# 5th of the default max_deliveries): a service missing for a moment (a deploy, a restart) gets
# the message once it is back. Before, all five ran within 20 ms and it was parked at once.
RETRY_FIRST, RETRY_MAX = 0.5, 5.0


def retry_delay(count: int) -> float:
    """Seconds before delivery `count` + 1 of a message whose delivery `count` failed."""
    return min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, count - 1))


DRAIN = 5.0  # seconds a stopping channel waits for the invocations already running
POLL = 0.2  # seconds per process_data_events round (how fast stop requests are seen)
PARKING_CHECK = 5.0  # seconds between readings of the parking queue's depth (for status, metrics)
MAX_BATCH = 16  # messages per internal call (zato.common.batch), at most a quarter of the limit


def parking_queue(queue: str) -> str:
    return queue + PARK_SUFFIX


def deliveries_of(properties: pika.BasicProperties) -> int:
    """How many times this message was handed to the service before (from our header)."""
    value = (properties.headers or {}).get(DELIVERIES, 0)
    return value if isinstance(value, int) and value >= 0 else 0


@dataclass(frozen=True)
class Delivery:
    method: pika.spec.Basic.Deliver
    properties: pika.BasicProperties
    body: bytes


class AckBook:
    """The acks of one channel, sent together where AMQP allows it: an ack with multiple=True
    for tag T acks every unsettled delivery up to T, so it is sent only while each one below
    T has been answered 200 (or settled otherwise: nacked, republished), never for a delivery
    still running, waiting, skipped or left for the broker to give back. The rest go one by one.
    One frame, and one write, for what a batch brought back instead of one each."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()  # tags as delivered (ascending), up to the oldest open one
        self._settled: set[int] = set()  # settled tags still in _order
        self._ok: list[int] = []  # answered 200, not acked yet (until send)

    def delivered(self, tag: int) -> None:
        self._order.append(tag)

    def settled(self, tag: int) -> None:
        """Acked, nacked or republished by the caller."""
        self._settled.add(tag)

    def ok(self, tag: int) -> None:
        self._ok.append(tag)
        self._settled.add(tag)

    def oldest_open(self) -> int | None:
        while self._order and self._order[0] in self._settled:
            self._settled.discard(self._order.popleft())
        return self._order[0] if self._order else None

    def send(self, ch) -> None:  # noqa: ANN001 - pika's channel
        if not self._ok:
            return
        ok, self._ok = sorted(self._ok), []
        floor = self.oldest_open()
        below = [t for t in ok if floor is None or t < floor]
        if len(below) > 1:
            ch.basic_ack(below[-1], multiple=True)
            ok = ok[len(below) :]
        for tag in ok:
            ch.basic_ack(tag)


class AMQPChannelConnector:
    """Threads: the main thread owns the pika connection (BlockingConnection is not
    thread-safe) and does every ack, nack and publish; up to `limit` invocations run in a
    thread pool, and each hands its result back with add_callback_threadsafe, the one
    thread-safe BlockingConnection method."""

    def __init__(self, ctx: Context, definition: dict, invoker: Invoker):
        self.ctx, self.d, self.invoker = ctx, definition, invoker
        self.queue = definition["queue"]
        self.content_type = "application/json" if definition["data_format"] == "json" else "text/plain"
        self.limit = in_flight_limit(definition)
        self.batch = max(1, min(MAX_BATCH, self.limit // 4))  # several calls in flight, spread over servers
        self._pending: deque[Delivery] = deque()  # delivered, waiting for a free invocation slot
        self._acks = AckBook()
        self._in_flight = 0
        self._paused_until = 0.0
        self._stopping = False
        self._conn: pika.BlockingConnection | None = None  # for call_later (retries)
        self._count_ch: Any = None  # a channel of its own for the parking queue's depth
        self._count_at = 0.0  # when it is read next (monotonic)

    def run(self) -> int:
        """Consume until told to stop; returns the process exit code."""
        try:
            return amqp_common.serve(self.ctx, self.d["amqp"], self._consume, undecodable=self._undecodable)
        finally:
            self.invoker.close()

    def _consume(self, conn: pika.BlockingConnection) -> None:
        amqp_common.BlockWatch(self.ctx, "messages to park or retry, and the ones after them, wait").attach(
            conn
        )
        try:
            ch = self._open_channel(conn)
            ch.basic_qos(prefetch_count=self.d["prefetch"])
        except pika.exceptions.ChannelClosedByBroker as e:  # our setup's fault: said as such, backed off
            raise amqp_common.Reconnect(
                f"cannot consume queue {self.queue!r}: ({e.reply_code}) {e.reply_text}"
            ) from None
        self._pending.clear()
        self._conn = conn
        self._acks = AckBook()  # delivery tags start again at 1 on a new channel
        self._in_flight, self._stopping = 0, False
        pool = ThreadPoolExecutor(self.limit, thread_name_prefix="invoke")
        on_message = functools.partial(self._on_message, conn, pool)
        ch.add_on_cancel_callback(self._cancelled)
        ch.basic_consume(self.queue, on_message, auto_ack=False)
        self.ctx.stats.state("running")
        logger.info(
            "%s: consuming from queue %r (prefetch %d, up to %d in flight), service %r",
            self.ctx.label,
            self.queue,
            self.d["prefetch"],
            self.limit,
            self.d["service"],
        )
        self._count_ch, self._count_at = None, 0.0
        try:
            while not self.ctx.should_stop():
                conn.process_data_events(time_limit=POLL)
                self._dispatch(conn, ch, pool)  # after a no-server pause
                self._count_parked(conn)
            self.ctx.stats.state("stopping")
            self._drain(conn)
        finally:
            self._stopping = True
            pool.shutdown(wait=False, cancel_futures=True)
        # Closing the connection (caller) returns every unacked message to the queue.

    def _count_parked(self, conn: pika.BlockingConnection) -> None:
        """Every PARKING_CHECK s, how many messages the parking queue holds now, as the broker
        says (stats' parking_queue): what an operator alerts on. The `parked` counter is this
        process's own and starts again at 0 with it (a restart, a takeover)."""
        now = time.monotonic()
        if now < self._count_at:
            return
        self._count_at = now + PARKING_CHECK
        try:
            if self._count_ch is None or not self._count_ch.is_open:
                self._count_ch = conn.channel()  # its own: a passive declare of a missing queue closes it
            ok = self._count_ch.queue_declare(parking_queue(self.queue), passive=True)
            self.ctx.stats.data["parking_queue"] = ok.method.message_count
        except pika.exceptions.ChannelClosedByBroker:  # deleted by hand: declared again when needed
            self._count_ch = None
            self.ctx.stats.data["parking_queue"] = 0

    def _cancelled(self, _frame: object) -> None:
        """The broker cancelled our consumer (basic.cancel: the queue was deleted, or a node
        holding it went away): no delivery comes any more on this channel. The session ends;
        serve connects again, declares the queue again and consumes."""
        raise amqp_common.Reconnect(
            f"the broker cancelled the consumer of queue {self.queue!r} (deleted, or its node is gone)"
        )

    def _drain(self, conn: pika.BlockingConnection) -> None:
        """Stop taking new work; settle the invocations already running (a bounded wait).
        What is still pending or unanswered stays unacked and comes back."""
        self._stopping = True
        self._pending.clear()
        deadline = time.monotonic() + DRAIN
        while self._in_flight and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)

    def _open_channel(self, conn: pika.BlockingConnection):  # noqa: ANN202 - pika's channel type
        """A confirming channel; the queue and its parking queue exist (durable if ours)."""
        ch = conn.channel()
        ch.confirm_delivery()
        for name in (self.queue, parking_queue(self.queue)):
            try:
                ch.queue_declare(name, durable=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                # It exists with other arguments (e.g. a quorum queue): use it as it is.
                ch = conn.channel()
                ch.confirm_delivery()
                try:
                    ch.queue_declare(name, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    raise e from None  # it does not exist: the broker's first answer says why
                logger.info("%s: using queue %r as declared (%s)", self.ctx.label, name, e.reply_text)
        return ch

    def _on_message(self, conn, pool, ch, method, properties, body: bytes) -> None:  # noqa: ANN001
        self._acks.delivered(method.delivery_tag)
        if self._stopping or self.ctx.stop_event.is_set():
            return  # left unacked: the broker gives it back when the channel closes
        self.ctx.stats.add("messages_in")  # every delivery taken, poison ones too
        if self.d["data_format"] == "json" and (reason := not_json(body)):
            self._park(ch, method, properties, body, f"poison message: {reason}")
            return
        self._pending.append(Delivery(method, properties, body))  # started after this round

    def _dispatch(self, conn, ch, pool: ThreadPoolExecutor) -> None:  # noqa: ANN001
        """Start invocations while there are free slots (main thread: after each round of
        process_data_events, so what arrived together can go together, and as calls settle)."""
        if time.monotonic() < self._paused_until:
            return
        while self._pending and self._in_flight < self.limit and not self._stopping:
            n = min(len(self._pending), self.limit - self._in_flight, self.batch)
            deliveries = [self._pending.popleft() for _ in range(n)]
            self._in_flight += n
            pool.submit(self._invoke, conn, ch, pool, deliveries)

    def _invoke(self, conn, ch, pool, deliveries: list[Delivery]) -> None:  # noqa: ANN001
        """One call for one or more messages (a pool thread); the results are settled in the
        main thread."""
        results: list[Result] | Exception
        try:
            label = self.ctx.label
            messages = [(amqp_common.message_meta(d.method, d.properties, label), d.body) for d in deliveries]
            results = self.invoker.invoke_messages(self.d["service"], messages, self.content_type)
        except NoServer as e:
            results = e
        except Exception as e:  # a bug must not leave the messages unsettled forever
            logger.exception("%s: invocation failed", self.ctx.label)
            results = NoServer(f"invocation failed: {type(e).__name__}: {e}")
        settle = functools.partial(self._settle, conn, ch, pool, deliveries, results)
        with contextlib.suppress(*AMQP_ERRORS):  # the connection is gone: the broker gives them back
            conn.add_callback_threadsafe(settle)

    def _settle(self, conn, ch, pool, deliveries: list[Delivery], results: list[Result] | Exception) -> None:  # noqa: ANN001
        self._in_flight -= len(deliveries)
        if not ch.is_open:
            return
        for i, delivery in enumerate(deliveries):
            result = results if isinstance(results, Exception) else results[i]
            if isinstance(result, Result) and result.stale and self.ctx.exit_code == EXIT_LEASE_LOST:
                continue  # said once: the message stays unacked and comes back to the new holder
            self._outcome(ch, delivery, result)
        self._acks.send(ch)
        # The freed slots take what waits now (together, as it piled up while they were busy):
        # an ack brings no new delivery once the queue is empty, so the round may not end soon.
        self._dispatch(conn, ch, pool)

    def _outcome(self, ch, delivery: Delivery, result: Result | Exception) -> None:  # noqa: ANN001
        method, properties, body = delivery.method, delivery.properties, delivery.body
        if isinstance(result, Exception):
            self._not_now(ch, method, str(result))
        elif result.settle:  # the service said what to do with it (self.request.amqp)
            self._as_asked(ch, delivery, result)
        elif result.status == UNAVAILABLE:  # the server cannot check the epoch: not the message's fault
            self._not_now(ch, method, f"server {result.server} is unavailable: {result.text}")
        elif result.ok:
            self._acks.ok(method.delivery_tag)
            self.ctx.stats.add("messages_out")
        elif result.stale:
            self.ctx.lease_lost(f"server {result.server} refused epoch {self.ctx.epoch} as stale")
        elif result.timed_out:  # a failed delivery: counted, parked after max_deliveries
            where = f"service {self.d['service']!r} on {result.server}"
            self._failed(ch, method, properties, body, f"{result.text} ({where})")
        elif result.status == TOO_LARGE:  # no server would take it: parked at once
            self._park(
                ch, method, properties, body, f"too large for service {self.d['service']!r}: {result.text}"
            )
        elif result.refused:  # the message's own fault: parked at once
            self._park(ch, method, properties, body, f"service {self.d['service']!r}: {result.refused}")
        else:
            self._failed(
                ch,
                method,
                properties,
                body,
                f"service {self.d['service']!r} answered {result.status} on {result.server}: {result.text}",
            )

    def _as_asked(self, ch, delivery: Delivery, result: Result) -> None:  # noqa: ANN001
        """self.request.amqp.ack(): acked, even if the service failed after it; reject(): parked,
        never run again; reject(requeue=True): run again (a delivery counted)."""
        method, properties, body = delivery.method, delivery.properties, delivery.body
        service = self.d["service"]
        after = "" if result.ok else f", then answered {result.status} on {result.server}: {result.text!r}"
        if result.settle == "ack":
            if after:
                logger.warning("%s: service %r acknowledged a message%s", self.ctx.label, service, after)
            self._acks.ok(method.delivery_tag)
            self.ctx.stats.add("messages_out")
        elif result.settle == "reject":
            reason = f"rejected by service {service!r} (self.request.amqp.reject()){after}"
            self._park(ch, method, properties, body, reason)
        else:
            reason = f"service {service!r} asked for it again (reject(requeue=True)){after}"
            self._failed(ch, method, properties, body, reason)

    def _not_now(self, ch, method, reason: str) -> None:  # noqa: ANN001
        """No server could take the message: give it back uncounted and pause a moment
        (no new invocation starts meanwhile; the loop keeps serving the connection)."""
        self.ctx.stats.error(reason)
        logger.warning("%s: %s; message requeued", self.ctx.label, reason)
        ch.basic_nack(method.delivery_tag, requeue=True)
        self._acks.settled(method.delivery_tag)
        self._paused_until = time.monotonic() + NO_SERVER_PAUSE

    def _failed(self, ch, method, properties, body: bytes, reason: str) -> None:  # noqa: ANN001
        self.ctx.stats.add("failures")
        self.ctx.stats.error(reason)
        count = deliveries_of(properties) + 1
        if count >= self.d["max_deliveries"]:
            self._park(ch, method, properties, body, f"failed {count} times, last: {reason}")
            return
        delay = retry_delay(count)
        logger.warning(
            "%s: delivery %d of %d failed, runs again in %g s: %s",
            self.ctx.label,
            count,
            self.d["max_deliveries"],
            delay,
            reason,
        )
        # Unacked meanwhile (it holds a prefetch slot: a service failing every message slows its
        # channel instead of parking all at once); a stop or a lost connection leaves it to the
        # broker, which gives it back.
        retry = functools.partial(self._retry, ch, method, properties, body, count)
        if self._conn is None:
            retry()
        else:
            self._conn.call_later(delay, retry)

    def _retry(self, ch, method, properties, body: bytes, count: int) -> None:  # noqa: ANN001
        if self._stopping or not ch.is_open:
            return
        self._republish(ch, method, properties, body, self.queue, {DELIVERIES: count})
        self._acks.send(ch)

    def _undecodable(self, cause: str) -> bool:
        """pika ended the connection on a delivery it could not decode: park it as the broker
        sent it (amqp_rescue). Looks at most a prefetch's worth deep: it was among those."""
        target = parking_queue(self.queue)
        reason = "pika cannot decode its properties"
        params = amqp_common.parameters(self.d["amqp"], self.ctx.settings.tls_ca_file)
        try:
            parked = amqp_rescue.park_undecodable(params, self.queue, target, reason, self.d["prefetch"] + 1)
        except (amqp_rescue.RescueError, OSError) as e:
            logger.warning("%s: could not park the delivery pika cannot decode: %s", self.ctx.label, e)
            return False
        except Exception:  # a bug here must not end the connector: the reason is said instead
            logger.exception("%s: could not park the delivery pika cannot decode", self.ctx.label)
            return False
        if parked:
            self.ctx.stats.add("parked")
            self.ctx.stats.error(f"parked a message in {target!r}: {reason} ({cause})")
            logger.error("%s: a message parked in queue %r: %s (%s)", self.ctx.label, target, reason, cause)
        return parked

    def _park(self, ch, method, properties, body: bytes, reason: str) -> None:  # noqa: ANN001
        target = parking_queue(self.queue)
        headers = {DELIVERIES: deliveries_of(properties) + 1, PARKED_REASON: reason[:500]}
        if not self._republish(ch, method, properties, body, target, headers):
            return
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"parked a message in {target!r}: {reason}")
        logger.error(
            "%s: message %s parked in queue %r: %s",
            self.ctx.label,
            amqp_common.message_label(method, properties),
            target,
            reason,
        )

    def _republish(self, ch, method, properties, body: bytes, queue: str, headers: dict) -> bool:  # noqa: ANN001
        """Publish a copy with `headers` added, mandatory and confirmed by the broker, then ack
        the original; True when done. A queue gone meanwhile (deleted by hand: the broker
        returns the copy) is declared again and the copy published once more. A copy the broker
        still returns or refuses leaves the original unacked: given back (nack, requeue) with
        an ERROR, and no invocation starts for a moment; False."""
        props = pika.BasicProperties(**{k: v for k, v in vars(properties).items() if v is not None})
        props.headers = {**(properties.headers or {}), **headers}
        if props.delivery_mode is None:
            props.delivery_mode = 2
        try:
            try:
                ch.basic_publish("", queue, body, props, mandatory=True)
            except pika.exceptions.UnroutableError:
                logger.warning("%s: queue %r is gone; declaring it again", self.ctx.label, queue)
                ch.queue_declare(queue, durable=True)
                ch.basic_publish("", queue, body, props, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
            what = (
                "returned it as unroutable"
                if isinstance(e, pika.exceptions.UnroutableError)
                else "refused it"
            )
            message = amqp_common.message_label(method, properties)
            reason = (
                f"could not publish message {message} to queue {queue!r} (the broker {what}); "
                f"it goes back to {self.queue!r} unacked"
            )
            logger.error("%s: %s", self.ctx.label, reason)
            self.ctx.stats.error(reason)
            ch.basic_nack(method.delivery_tag, requeue=True)
            self._acks.settled(method.delivery_tag)
            self._paused_until = time.monotonic() + NO_SERVER_PAUSE
            return False
        ch.basic_ack(method.delivery_tag)
        self._acks.settled(method.delivery_tag)
        return True


def run(ctx: Context, definition: dict) -> int:
    amqp_common.pika_at_debug()
    amqp_common.decode_any_delivery()
    invoker = ctx.invoker(answer_timeout(definition))
    connector = AMQPChannelConnector(ctx, definition, invoker)
    return run_with_stack(connector.run, amqp_common.DECODE_STACK, "consume")
