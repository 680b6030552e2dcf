"""AMQP outgoing connector: move messages from the Redis hand-off to the broker (flow 6).

On start (and after every reconnect) whatever is left in the processing list is published
first; then each message is moved from the queue to the processing list, published with
publisher confirms and removed only after the broker confirmed it. At-least-once: a crash
between publish and removal sends that message again, nothing is lost. Between batches the
processing list is looked at again every few seconds, so a message that a replaced holder's
connector took while it was paused (Redis moves it anyway) is published too.
"""

from __future__ import annotations

import logging
import time

import pika
import pika.exceptions

from zato.common.errors import ConnectorError, CoordError
from zato.connector import amqp_common
from zato.connector.amqp_common import AMQP_ERRORS
from zato.connector.base import Context
from zato.coord.queues import OutMessage, OutQueue, decode

logger = logging.getLogger("zato.connector.amqp_outgoing")

BATCH = 100  # messages taken from Redis at a time
TAKE_TIMEOUT = 0.5  # seconds BLMOVE blocks (how fast stop requests are seen when idle)
LEFTOVER_SCAN = 5.0  # seconds between looks for messages stranded in the processing list


class AMQPOutgoingConnector:
    def __init__(self, ctx: Context, definition: dict, queue: OutQueue):
        self.ctx, self.d, self.queue = ctx, definition, queue

    def run(self) -> int:
        return amqp_common.serve(self.ctx, self.d["amqp"], self._pump, AMQP_ERRORS + (CoordError,))

    def _pump(self, conn: pika.BlockingConnection) -> None:
        ch = conn.channel()
        ch.confirm_delivery()
        self._leftovers(ch)
        self.ctx.stats.state("running")
        next_scan = time.monotonic() + LEFTOVER_SCAN
        while not self.ctx.should_stop():
            if time.monotonic() >= next_scan:
                self._leftovers(ch)
                next_scan = time.monotonic() + LEFTOVER_SCAN
            first = self.queue.take(TAKE_TIMEOUT)
            if first is None:
                conn.process_data_events(time_limit=0)  # heartbeats while idle
                continue
            self._publish_all(ch, [first] + self.queue.take_many(BATCH - 1))
        self.ctx.stats.state("stopping")

    def _leftovers(self, ch) -> None:  # noqa: ANN001
        """Publish what is in the processing list although this process is between batches:
        taken by an earlier run, or by a replaced holder's connector that was paused while
        Redis moved a message for it (it stops at its next epoch check, leaving it there)."""
        leftovers = self.queue.leftovers()
        if leftovers:
            logger.info(
                "%s: publishing %d message(s) taken but left unconfirmed by an earlier run",
                self.ctx.label,
                len(leftovers),
            )
            self._publish_all(ch, leftovers)

    def _publish_all(self, ch, raws: list[str]) -> None:  # noqa: ANN001
        """Publish each message (every publish waits for its confirm), then drop them from the
        processing list in one round trip."""
        sent = []
        try:
            for raw in raws:
                try:
                    msg = decode(raw)
                except ConnectorError as e:
                    logger.error("%s: %s; parked in Redis for inspection", self.ctx.label, e)
                    self.queue.park(raw)
                    self.ctx.stats.add("parked")
                    continue
                try:
                    self._publish(ch, msg)
                except pika.exceptions.UnroutableError:
                    self._unroutable(raw, msg)
                    continue
                sent.append(raw)
        finally:
            self.queue.done(sent)
            self.ctx.stats.add("messages_out", len(sent))

    def _publish(self, ch, msg: OutMessage) -> None:  # noqa: ANN001
        props = dict(msg.properties)
        props.setdefault("delivery_mode", self.d["delivery_mode"])
        props.setdefault("content_type", self.d["content_type"])
        props.setdefault("message_id", msg.id or None)
        exchange, routing_key = self._route(msg)
        self.ctx.stats.add("messages_in")
        # mandatory: a message no queue would take comes back instead of vanishing in the broker
        ch.basic_publish(exchange, routing_key, msg.body, pika.BasicProperties(**props), mandatory=True)

    def _route(self, msg: OutMessage) -> tuple[str, str]:
        """(exchange, routing key): the message's own, else the connection's defaults."""
        exchange = self.d["exchange"] if msg.exchange is None else msg.exchange
        return exchange, self.d["routing_key"] if msg.routing_key is None else msg.routing_key

    def _unroutable(self, raw: str, msg: OutMessage) -> None:
        exchange, routing_key = self._route(msg)
        reason = f"unroutable: no queue is bound to exchange {exchange!r} with routing key {routing_key!r}"
        self.queue.park(raw)
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"parked a message in Redis: {reason}")
        logger.error("%s: message %s %s; parked in Redis for inspection", self.ctx.label, msg.id, reason)


def run(ctx: Context, definition: dict) -> int:
    queue = OutQueue(ctx.client, ctx.settings.cluster, "amqp", definition["name"])
    return AMQPOutgoingConnector(ctx, definition, queue).run()
