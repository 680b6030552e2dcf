"""AMQP outgoing connector: move messages from the Redis hand-off to the broker (flow 6).

Messages are taken from the Redis queue into the processing list in batches (one round trip
for up to WINDOW messages) and published with up to WINDOW of them awaiting their publisher
confirm at once. Confirms arrive asynchronously; a message leaves the processing list only
when its own confirm arrived: the confirmed ones are gathered and removed in the same round
trip that takes the next batch (OutQueue.settle_and_take), so confirms that came in one read
from the broker cost one round trip, not one each and another for the take. A nack, or a
message returned as unroutable (mandatory publish), is parked in Redis with the reason instead.

At-least-once: on start and after every reconnect whatever is in the processing list is
published first; a crash between publish and removal sends that message again. Every few
seconds the processing list is looked at again for messages that are not this run's own, so
one that a replaced holder's connector took while it was paused (Redis moves it anyway) is
published too.

Design: pika's SelectConnection (one thread, callbacks on its I/O loop); the Redis calls are
made in that loop, and the only blocking one (BLMOVE with TAKE_TIMEOUT) runs when nothing is
waiting for a confirm.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import pika
import pika.channel
import pika.exceptions
import pika.spec

from zato.common.errors import EXIT_OK, ConnectorError, CoordError
from zato.connector import amqp_common
from zato.connector.amqp_common import AMQP_ERRORS, RECONNECT, error_text
from zato.connector.base import Context
from zato.connector.confirm_window import ConfirmWindow, Publish
from zato.coord.queues import OutMessage, OutQueue, StaleEpoch, decode

logger = logging.getLogger("zato.connector.amqp_outgoing")

WINDOW = 200  # publishes awaiting their confirm at once (and the most taken from Redis at a time)
TAKE_TIMEOUT = 0.5  # seconds BLMOVE blocks when idle (how fast stop requests are seen)
LEFTOVER_SCAN = 5.0  # seconds between looks for messages stranded in the processing list
TICK = 0.2  # seconds between stop checks while busy
DRAIN = 5.0  # seconds a stopping connector waits for the confirms of what it published


class Session:
    """One connection to the broker: from open to close. Every callback runs in the
    connection's I/O loop; an error in one closes the connection (the caller reconnects)."""

    def __init__(self, ctx: Context, definition: dict, queue: OutQueue):
        self.ctx, self.d, self.queue = ctx, definition, queue
        self.window = ConfirmWindow(WINDOW)
        self.conn: pika.SelectConnection | None = None
        self.ch: pika.channel.Channel | None = None
        self.error: str | None = None
        self.opened = False
        self._stopping_until: float | None = None
        self._next_scan = 0.0
        self._pump_due = False
        self._confirmed: list[str] = []  # confirmed, still in the processing list until the next pump

    def run(self) -> None:
        self.conn = pika.SelectConnection(
            amqp_common.parameters(self.d["amqp"], self.ctx.settings.tls_ca_file),
            on_open_callback=self._guard(self._on_open),
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
        )
        self.conn.ioloop.start()
        pending = len(self._confirmed)
        try:
            self._settle()  # confirmed before the connection closed: not to be published again
        except CoordError as e:
            logger.warning("%s: %d confirmed message(s) stay in Redis and go out again: %s",
                           self.ctx.label, pending, e)  # fmt: skip

    # -- connection life

    def _guard(self, fn: Callable) -> Callable:
        """Run a loop callback; a broker or Redis failure closes the connection."""

        @functools.wraps(fn)
        def guarded(*args: object) -> None:
            try:
                fn(*args)
            except StaleEpoch as e:  # paused past a takeover: Redis refused to move messages
                self.ctx.lease_lost(str(e))
                self._close()
            except (CoordError, *AMQP_ERRORS) as e:
                self._fail(error_text(e))
            except Exception as e:
                logger.exception("%s: unexpected error", self.ctx.label)
                self._fail(error_text(e))

        return guarded

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        self._close()

    def _close(self) -> None:
        if self.conn is None:
            return
        if self.conn.is_open:
            self.conn.close()
        elif self.conn.is_closed:
            self.conn.ioloop.stop()

    def _on_open(self, conn: pika.SelectConnection) -> None:
        logger.info("%s: connected to AMQP broker %s", self.ctx.label, amqp_common.describe(self.d["amqp"]))
        conn.channel(on_open_callback=self._guard(self._on_channel))

    def _on_open_error(self, conn: pika.SelectConnection, e: BaseException) -> None:
        self.error = f"cannot connect to {amqp_common.describe(self.d['amqp'])}: {error_text(e)}"
        conn.ioloop.stop()

    def _on_close(self, conn: pika.SelectConnection, e: BaseException) -> None:
        if self._stopping_until is None and self.error is None:
            self.error = f"connection lost: {error_text(e)}"
        conn.ioloop.stop()

    def _on_channel(self, ch: pika.channel.Channel) -> None:
        self.ch = ch
        ch.add_on_close_callback(lambda _ch, e: self._fail(f"channel closed: {error_text(e)}"))
        ch.add_on_return_callback(self._guard(self._on_return))
        ch.confirm_delivery(self._guard(self._on_confirm), callback=self._guard(self._on_confirm_mode))

    def _on_confirm_mode(self, _frame: object) -> None:
        self.opened = True
        self._leftovers(everything=True)
        self.ctx.stats.state("running")
        self._schedule_pump()
        self._tick()

    # -- taking and publishing

    def _schedule_pump(self) -> None:
        if not self._pump_due and self.conn is not None:
            self._pump_due = True
            self.conn.ioloop.call_later(0, self._guard(self._pump))

    def _pump(self) -> None:
        """Take what fits in the window and publish it. When nothing awaits a confirm, wait
        for a message in Redis (BLMOVE); otherwise the next confirm calls this again."""
        self._pump_due = False
        room = self.window.room
        if self._stopping_until is not None or not room:
            self._settle()
            return
        if len(self.window) or self._confirmed:
            confirmed, self._confirmed = self._confirmed, []
            raws = self.queue.settle_and_take(confirmed, room)
        else:
            first = self.queue.take(TAKE_TIMEOUT)
            raws = [first, *self.queue.take_many(room - 1)] if first else []
        self._publish_all(raws)
        if raws or not len(self.window):
            self._schedule_pump()

    def _publish_all(self, raws: list[str]) -> None:
        for raw in raws:
            try:
                msg = decode(raw)
            except ConnectorError as e:
                self._park(raw, str(e))
                continue
            self._publish(raw, msg)

    def _publish(self, raw: str, msg: OutMessage) -> None:
        props = dict(msg.properties)
        props.setdefault("delivery_mode", self.d["delivery_mode"])
        props.setdefault("content_type", self.d["content_type"])
        props.setdefault("message_id", msg.id or None)
        exchange, routing_key = route(self.d, msg)
        self.ctx.stats.add("messages_in")
        # mandatory: a message no queue would take comes back instead of vanishing in the broker
        if self.ch is None:  # publishing starts once the channel is open (_on_channel)
            raise ConnectorError("publishing before the AMQP channel is open")
        self.ch.basic_publish(exchange, routing_key, msg.body, pika.BasicProperties(**props), mandatory=True)
        self.window.published(Publish(raw, exchange, routing_key, msg.body))

    def _leftovers(self, everything: bool = False) -> None:
        """Publish what is in the processing list but not awaiting a confirm of this run:
        taken by an earlier run, or by a replaced holder's connector that was paused while
        Redis moved a message for it (it stops at its next epoch check, leaving it there)."""
        self._next_scan = time.monotonic() + LEFTOVER_SCAN
        mine = set() if everything else self.window.raws() | set(self._confirmed)
        leftovers = [raw for raw in self.queue.leftovers() if raw not in mine]
        room = self.window.room
        if len(leftovers) > room:  # never more than the window awaiting confirms: the rest next tick
            leftovers, self._next_scan = leftovers[:room], time.monotonic()
        if leftovers:
            logger.info(
                "%s: publishing %d message(s) taken but left unconfirmed by an earlier run",
                self.ctx.label,
                len(leftovers),
            )
            self._publish_all(leftovers)

    # -- confirms

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        m = frame.method
        settled = self.window.confirmed(m.delivery_tag, m.multiple, isinstance(m, pika.spec.Basic.Ack))
        self._confirmed.extend(settled.done)  # removed from Redis by the pump this schedules
        self.ctx.stats.add("messages_out", len(settled.done))
        for raw, reason in settled.park:
            self._park(raw, reason)
        self._schedule_pump()

    def _on_return(self, _ch: object, method: pika.spec.Basic.Return, _props: object, body: bytes) -> None:
        reason = (
            f"unroutable: no queue is bound to exchange {method.exchange!r} "
            f"with routing key {method.routing_key!r} ({method.reply_text})"
        )
        self.window.returned(method.exchange, method.routing_key, body, reason)

    def _settle(self) -> None:
        """Remove the confirmed messages from the processing list now (a crash before this
        only publishes them again: at least once)."""
        confirmed, self._confirmed = self._confirmed, []
        self.queue.done(confirmed)

    def _park(self, raw: str, reason: str) -> None:
        self.queue.park(raw)
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"parked a message in Redis: {reason}")
        logger.error("%s: message parked in Redis for inspection: %s", self.ctx.label, reason)

    # -- time

    def _tick(self) -> None:
        """Stop checks, the leftover scan, and a bounded wait for confirms when stopping."""
        now = time.monotonic()
        if self._stopping_until is None and self.ctx.should_stop():
            self.ctx.stats.state("stopping")
            self._stopping_until = now + DRAIN
        if self._stopping_until is not None:
            if not len(self.window) or now >= self._stopping_until:
                self._settle()
                self._close()  # what is still unconfirmed stays in the processing list
                return
        elif now >= self._next_scan:
            self._leftovers()
        self._schedule_pump()
        if self.conn is not None:  # ticks run in its I/O loop: it exists
            self.conn.ioloop.call_later(TICK, self._guard(self._tick))


def route(d: dict, msg: OutMessage) -> tuple[str, str]:
    """(exchange, routing key): the message's own, else the connection's defaults."""
    exchange = d["exchange"] if msg.exchange is None else msg.exchange
    return exchange, d["routing_key"] if msg.routing_key is None else msg.routing_key


class AMQPOutgoingConnector:
    def __init__(self, ctx: Context, definition: dict, queue: OutQueue):
        self.ctx, self.d, self.queue = ctx, definition, queue

    def run(self) -> int:
        """Sessions until told to stop, with back-off between failed ones."""
        delays = RECONNECT.delays()
        while not self.ctx.should_stop():
            session = Session(self.ctx, self.d, self.queue)
            session.run()
            if session.opened:
                delays = RECONNECT.delays()
            if session.error is None or self.ctx.should_stop():
                continue
            delay = next(delays)
            self.ctx.stats.error(session.error)
            self.ctx.stats.state("reconnecting")
            logger.warning(
                "%s: %s; reconnecting in %.1fs, unconfirmed messages are published again",
                self.ctx.label,
                session.error,
                delay,
            )
            self.ctx.wait(delay)
        return self.ctx.exit_code or EXIT_OK


def run(ctx: Context, definition: dict) -> int:
    queue = OutQueue(ctx.client, ctx.settings.cluster, "amqp", definition["name"], ctx.epoch)
    return AMQPOutgoingConnector(ctx, definition, queue).run()
