"""AMQP outgoing connector: move messages from the Redis hand-off to the broker (flow 6).

Messages are taken from the Redis queue into the processing list in batches and published
with up to WINDOW of them awaiting their publisher confirm at once; large messages are held
fewer at a time (HELD_BYTES of stored messages in the window and the stock together: a take
stops at the message that reaches it, so even one larger than that goes out). Confirms arrive
asynchronously; a message leaves the processing list only when its own confirm arrived. A
nack, or a message returned as unroutable (mandatory publish), is parked in Redis with the
reason instead, as is one pika cannot frame (a property's value out of type or range), and one
not signed with the cluster's key (zato.coord.signing.outgoing_signed: Redis is no proof of who
wrote it; said at ERROR once, then with a count at most once a minute: refusals.Unsigned). So is
a message naming an exchange the broker does not have: publishing to it would close the
channel, and after the reconnect the same message would close it again, holding back every
other one for ever. So the first message for each exchange this session
has not seen waits, with every one after it (the order holds), until a passive declare on a
channel of its own (the probe) says whether the exchange exists; one found missing is checked
again after RECHECK seconds, so messages go out once it has been made.

The Redis calls run in a thread of their own, one at a time, so the broker's I/O loop never
waits for Redis: up to STOCK messages are taken ahead of the window, and a confirm's room is
filled at once from that stock, while the next call (the confirmed ones removed and the stock
topped up, one round trip: OutQueue.settle_and_take) is on its way. Taking is fenced: Redis
moves nothing for a connector whose epoch is no longer the newest. A message from the stock
is published only while that still holds: right after the fenced take that brought it, or
while the supervisor's last confirmed renewal vouches that no newer epoch can exist
(Context.vouched). A connector paused past a takeover therefore publishes nothing more of
its stock; the new holder publishes it from the processing list.

At-least-once: on start and after every reconnect whatever is in the processing list is
published first (the stock of a connector that died was never published: it goes out once);
a crash between publish and removal sends that message again (up to a window's worth). Every
few seconds the processing list is looked at again for messages that are not this run's own,
so one that a replaced holder's connector took while it was paused (Redis moves it anyway) is
published too.

When only Redis fails a call (unreachable, or answering WRONGTYPE, NOPERM, READONLY), the
broker connection is kept with what awaits its confirm: confirms still settle the window, the
confirmed messages stay in the processing list until Redis answers again (they are removed by
the next call that goes through, as are the parks that Redis failed), and the call is tried
again after a wait (zato.connector.refusals.RedisFailures: said once, then once a minute). Only
a broker failure opens a new connection.

Design: pika's SelectConnection (one thread, callbacks on its I/O loop) and one thread for
Redis, whose answers come back to the loop through add_callback_threadsafe. When nothing
awaits a confirm and the stock is empty, that thread waits for a message (BLMOVE with
TAKE_TIMEOUT) while the loop goes on serving the broker.
"""

from __future__ import annotations

import functools
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import pika
import pika.channel
import pika.exceptions
import pika.spec

from zato.common.errors import EXIT_OK, ConnectorError, CoordError
from zato.connector import amqp_common
from zato.connector.amqp_common import AMQP_ERRORS, RECONNECT, error_text
from zato.connector.base import Context, list_queue
from zato.connector.confirm_window import ConfirmWindow, Publish
from zato.connector.refusals import REFUSED, RedisFailures, Refusals, Unsigned, say_refused
from zato.coord.queues import AMQP, OutMessage, OutQueue, StaleEpoch, decode
from zato.coord.signing import OutgoingCheck

logger = logging.getLogger("zato.connector.amqp_outgoing")

WINDOW = 1000  # publishes awaiting their confirm at once
STOCK = WINDOW // 2  # messages taken from Redis ahead of the window, published as confirms make room
HELD_BYTES = 16 * 1024 * 1024  # stored messages held at once (window and stock) before taking more
TAKE_TIMEOUT = 0.5  # seconds BLMOVE blocks when idle (how fast stop requests are seen)
LEFTOVER_SCAN = 5.0  # seconds between looks for messages stranded in the processing list
TICK = 0.2  # seconds between stop checks while busy
DRAIN = 5.0  # seconds a stopping connector waits for the confirms of what it published
# What pika raises for a message it cannot frame (a property's value of the wrong type or range,
# a string over 255 bytes, headers nested deeper than its encoder recurses): published again
# after a reconnect it would fail again, for ever.
UNFRAMEABLE = (
    RecursionError,
    struct.error,
    AssertionError,
    TypeError,
    ValueError,
    OverflowError,
    pika.exceptions.ShortStringTooLong,
    pika.exceptions.UnsupportedAMQPFieldException,
)
RECHECK = 5.0  # seconds an exchange found missing is taken as missing before it is checked again


class Ready(NamedTuple):
    """A taken message: ready to publish, or (error) to be parked; said: its error was logged
    already (one not signed: refusals.Unsigned)."""

    publish: Publish
    props: pika.BasicProperties | None
    error: str = ""
    said: bool = False


class Session:
    """One connection to the broker: from open to close. Every callback runs in the
    connection's I/O loop; an error in one closes the connection (the caller reconnects)."""

    def __init__(
        self,
        ctx: Context,
        definition: dict,
        queue: OutQueue,
        suspects: frozenset[str] = frozenset(),
        refusals: Refusals | None = None,
        redis_failures: RedisFailures | None = None,
        unsigned: Unsigned | None = None,
    ):
        """suspects: what was awaiting its confirm when the broker closed the last session's
        channel (see `careful`); refusals: the connector's, said by the one that connects;
        redis_failures: the connector's, saying Redis's failures across sessions; unsigned:
        the connector's, saying the messages not signed with the cluster's key across sessions."""
        self.ctx, self.d, self.queue = ctx, definition, queue
        self.signed = OutgoingCheck(ctx.outgoing_key(), AMQP)  # a message that does not verify is parked
        self.unsigned = unsigned or Unsigned(ctx, logger)
        self.refusals = refusals or Refusals()
        self.refused: str | None = None  # what to do: the broker refused the login or vhost
        # Redis failing a call (unreachable, or answering WRONGTYPE, NOPERM, READONLY): no new
        # connection to the broker mends it, so the connection is kept and the call tried again
        self.redis = redis_failures or RedisFailures(ctx, logger, "the broker connection")
        self._redis_paused = False  # a Redis call failed: the next waits for _redis_again
        self._begun = False  # the processing list was read at the start (_begin)
        self._unparked: list[tuple[str, str]] = []  # to park, when Redis failed the park
        self._parking: list[tuple[str, str]] = []  # those the call on its way parks
        self._fencing = False  # the call on its way is the fenced take waiting messages need
        self.suspects = set(suspects)  # after the session: the next one's
        self.window = ConfirmWindow(WINDOW)
        self.conn: pika.SelectConnection | None = None
        self.ch: pika.channel.Channel | None = None
        self.error: str | None = None
        self.opened = False
        self._stopping_until: float | None = None
        self._next_scan = 0.0
        self._confirmed: list[str] = []  # confirmed, still in the processing list until the next call
        self._stock: deque[str] = deque()  # taken into the processing list, not published yet
        self._stock_bytes = 0
        self._redis = ThreadPoolExecutor(1, thread_name_prefix="redis")  # one call at a time, in order
        self._call: Future | None = None  # the Redis call on its way, if any
        self._handed: list[str] = []  # the confirmed ones the call on its way removes
        self._drained = False  # the last take found fewer messages than it asked for
        self._waiting: deque[Ready] = deque()  # prepared, in order, behind an exchange check
        self._waiting_bytes = 0
        self._present: set[str] = {""}  # exchanges the broker has (the default one always)
        self._missing: dict[str, tuple[str, float]] = {}  # exchanges it had not: its answer, when
        self._probe: pika.channel.Channel | None = None  # passive declares, apart from publishing
        self._checking: str | None = None  # the exchange being checked
        self._fence = False  # waiting messages need a fenced take (or a vouch) to go out

    def run(self) -> None:
        self.conn = pika.SelectConnection(
            amqp_common.parameters(self.d["amqp"], self.ctx.settings.tls_ca_file, watch_link=False),
            on_open_callback=self._guard(self._on_open),
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
        )
        amqp_common.BlockWatch(self.ctx, "messages wait in Redis").attach(self.conn)
        try:
            self.conn.ioloop.start()
        finally:
            self._redis.shutdown(wait=True)  # a call on its way ends (what it took stays in Redis)
        if self._call is not None:  # the loop stopped before it heard how this call ended
            self._give_back(self._call)
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
        amqp_common.say_connected(self.ctx, self.d["amqp"], self.refusals)
        conn.channel(on_open_callback=self._guard(self._on_channel))

    def _on_open_error(self, conn: pika.SelectConnection, e: BaseException) -> None:
        self.refused = amqp_common.login_refusal(self.d["amqp"], e)
        why = error_text(e, self.d["amqp"], watched=False)
        self.error = f"cannot connect to {amqp_common.describe(self.d['amqp'])}: {why}"
        conn.ioloop.stop()

    def _on_close(self, conn: pika.SelectConnection, e: BaseException) -> None:
        if self._stopping_until is None and self.error is None:
            self.error = f"connection lost: {error_text(e, self.d['amqp'], watched=False)}"
        conn.ioloop.stop()

    def _on_channel(self, ch: pika.channel.Channel) -> None:
        self.ch = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_return_callback(self._guard(self._on_return))
        ch.confirm_delivery(self._guard(self._on_confirm), callback=self._guard(self._on_confirm_mode))

    def _on_channel_closed(self, _ch: pika.channel.Channel, e: BaseException) -> None:
        """The channel alone closed (by the broker: pika.exceptions.ChannelClosed), or with the
        connection, whose error pika hands to every channel first.

        The broker closes a channel over one publish it refuses (an internal exchange, no write
        access, a message over its size limit); that message, published again first after the
        reconnect, would close it again, for ever. So what awaited its confirm at such a close
        is suspect, and the next session publishes one message at a time until every suspect
        is settled (`careful`): one that closes the channel when alone is parked."""
        alone = isinstance(e, pika.exceptions.ChannelClosed)
        if isinstance(e, pika.exceptions.ChannelClosedByBroker):
            published = self.window.raws()
            if self.careful and len(published) == 1:
                [raw] = published
                self._guard(self._park)(raw, f"the broker closed the channel on it alone: {error_text(e)}")
                self.suspects.discard(raw)
            else:
                self.suspects |= published
        self._fail(f"{'channel closed' if alone else 'connection lost'}: {error_text(e)}")

    @property
    def careful(self) -> bool:
        """One message at a time while suspects of a broker's channel close are unsettled."""
        return bool(self.suspects)

    def _on_confirm_mode(self, _frame: object) -> None:
        self.opened = True
        self._pump()  # its first Redis call reads the processing list: _begin
        self._tick()

    def _begin(self, call: Future) -> None:
        """The processing list as the session starts (read while no other Redis call was on
        its way): published first."""
        stored = call.result()
        self._begun = True
        self.suspects &= set(stored)  # those gone meanwhile were settled by others
        if self.suspects:
            logger.warning(
                "%s: the broker closed the channel with %d message(s) awaiting its confirm; "
                "publishing one at a time until each is settled",
                self.ctx.label,
                len(self.suspects),
            )
        self._publish_leftovers(stored, everything=True)
        self.ctx.stats.state("running")
        self._pump()

    # -- taking and publishing

    def _pump(self, fresh: bool = False) -> None:
        """Publish from the stock what fits in the window, then ask Redis for more (and to
        remove what was confirmed) unless a call is on its way. fresh: the stock was just
        topped up by a fenced take."""
        if fresh:
            self._fence = False  # this take was fenced
        if self._stopping_until is None and (self._stock or self._waiting) and (fresh or self.ctx.vouched()):
            n = max(0, min(self._room(), len(self._stock)))
            raws = [self._stock.popleft() for _ in range(n)]
            self._stock_bytes -= sum(map(len, raws))
            self._publish_all(self._prepare(raws))
        self._ask()

    def _room(self) -> int:
        """How many more the window takes, after those waiting for an exchange check (one in
        all while careful)."""
        if self.careful:
            return 1 - len(self.window) - len(self._waiting)
        return self.window.room - len(self._waiting)

    def _ask(self) -> None:
        """Start the next Redis call unless one is on its way: the leftover scan when due,
        else the removal of what was confirmed and a take that tops up the stock."""
        if self._call is not None or self.conn is None or self._redis_paused:
            return
        stopping = self._stopping_until is not None
        if not self._begun:
            if not stopping:
                self._submit(self.queue.leftovers, self._begin)
            return
        # A scan only when what it finds could be published (no busy rescans while the window
        # is full), and not before a fenced take that waiting messages need.
        if not stopping and time.monotonic() >= self._next_scan and self._room() > 0 and not self._fence:
            self._handed = []
            self._submit(self.queue.leftovers, self._scanned)
            return
        held = len(self.window) + len(self._stock) + len(self._waiting)
        budget = HELD_BYTES - self.window.bytes - self._stock_bytes - self._waiting_bytes  # large: fewer held
        want = 0 if stopping or budget <= 0 else WINDOW + STOCK - held
        fence, self._fence = self._fence and not stopping, False
        if fence:
            want = max(want, 1)  # a take of at least one is fenced: its answer vouches for the epoch
        idle = not stopping and not held
        if not (self._confirmed or self._unparked or fence or (want > 0 and (idle or not self._drained))):
            return  # nothing to remove, and Redis had nothing more: the next confirm asks again
        self._handed, self._confirmed = self._confirmed, []
        self._parking, self._unparked = self._unparked, []
        self._fencing = fence
        take = functools.partial(self._take, self._handed, self._parking, max(want, 0), budget, idle)
        self._submit(take, functools.partial(self._taken, want, budget))

    def _submit(self, fn: Callable[[], object], then: Callable[[Future], None]) -> None:
        """Run fn in the Redis thread; then(call) runs in the loop once it ended."""
        assert self.conn is not None  # noqa: S101 - calls start from the loop's callbacks
        call = self._call = self._redis.submit(fn)
        back = self._guard(functools.partial(self._back, call, then))
        ioloop = self.conn.ioloop
        call.add_done_callback(lambda _call: ioloop.add_callback_threadsafe(back))

    def _back(self, call: Future, then: Callable[[Future], None]) -> None:
        """A Redis call ended: `then` hears how, unless Redis failed it (not a stale epoch:
        that stops the connector). Then the broker connection is kept, with what awaits its
        confirm, and the call is tried again after a wait (RedisFailures)."""
        self._call = None
        error = call.exception()
        if isinstance(error, CoordError) and not isinstance(error, StaleEpoch):
            self._give_back(call)
            self._redis_failed(error)
            return
        then(call)

    def _redis_failed(self, e: CoordError) -> None:
        """Redis failed a call: said, and no call until the wait is over (_redis_again)."""
        if self._redis_paused or self.conn is None:
            return
        self._redis_paused = True
        self.conn.ioloop.call_later(self.redis.failed(e), self._guard(self._redis_again))

    def _redis_again(self) -> None:
        self._redis_paused = False
        self._pump()

    def _take(
        self, confirmed: list[str], parks: list[tuple[str, str]], want: int, budget: int, idle: bool
    ) -> list[str]:
        """In the Redis thread: park `parks` (each leaves the list once parked), remove
        `confirmed`, then take up to `want` messages, the last one the one that fills `budget`
        bytes; when idle and nothing waits, wait up to TAKE_TIMEOUT for a message first."""
        while parks:
            self.queue.park(parks[0][0])
            parks.pop(0)
        got = self.queue.settle_and_take(confirmed, want, budget)
        if got or not idle:
            return got
        first = self.queue.take(TAKE_TIMEOUT)
        if first is None:
            return []
        if want <= 1 or len(first) >= budget:
            return [first]
        return [first, *self.queue.take_many(want - 1, budget - len(first))]

    def _give_back(self, call: Future) -> None:
        """A failed call's confirmed messages may still be in the processing list (a stale
        epoch's script removes them before it refuses to move any): remove them next time."""
        error = call.exception()
        if error is not None and not isinstance(error, StaleEpoch):
            self._confirmed[:0] = self._handed
        if error is not None:
            self._unparked[:0] = self._parking  # those it did not park yet
            self._fence = self._fence or self._fencing  # the next take is fenced in its place
        self._handed, self._parking, self._fencing = [], [], False

    def _taken(self, want: int, budget: int, call: Future) -> None:
        self._give_back(call)
        got = call.result()  # raises the call's error, for the guard
        self.redis.worked()
        size = sum(map(len, got))
        self._drained = len(got) < want and size < budget  # not drained: stopped by the size
        self._stock.extend(got)
        self._stock_bytes += size
        self._pump(fresh=True)

    def _scanned(self, call: Future) -> None:
        self._publish_leftovers(call.result())
        self._pump()

    def _prepare(self, raws: list[str]) -> list[Ready]:
        """Taken messages made ready to publish; one that is not ours is marked to be parked.
        (Done here in the loop: in the Redis thread it lengthened every call, measured.)"""
        out = []
        for raw in raws:
            if not self.signed(raw):  # Redis is no proof of who wrote it
                out.append(Ready(Publish(raw, "", "", b""), None, self.unsigned.refused(raw), said=True))
                continue
            try:
                msg = decode(raw)
            except ConnectorError as e:
                out.append(Ready(Publish(raw, "", "", b""), None, str(e)))
                continue
            props = dict(msg.properties)
            props.setdefault("delivery_mode", self.d["delivery_mode"])
            props.setdefault("content_type", self.d["content_type"])
            props.setdefault("message_id", msg.id or None)
            exchange, routing_key = route(self.d, msg)
            # Redis holds plain JSON (a Redis writer's, another producer's): a property pika has
            # no field for, or a route that is not text, raised out of the connector, which
            # reconnected and took the same message first again, for ever
            try:
                if not (isinstance(exchange, str) and isinstance(routing_key, str)):
                    raise TypeError(
                        f"exchange and routing_key must be text, not {exchange!r}, {routing_key!r}"
                    )
                properties = pika.BasicProperties(**props)
            except TypeError as e:
                out.append(
                    Ready(Publish(raw, "", "", b""), None, f"malformed outgoing message (TypeError: {e})")
                )
                continue
            out.append(Ready(Publish(raw, exchange, routing_key, msg.body), properties))
        return out

    def _publish_all(self, items: list[Ready]) -> None:
        """Publish `items` in order, after those still waiting for an exchange check. Each is
        counted in here, those to be parked included: IN = OUT + PARKED + in flight."""
        self.ctx.stats.add("messages_in", len(items))
        self._waiting.extend(items)
        self._waiting_bytes += sum(len(item.publish.raw) for item in items)
        self._flush()

    def _flush(self) -> None:
        """Publish (or park) the waiting messages in order, up to the first one that names an
        exchange not checked yet; that one starts the check."""
        if self.ch is None:  # publishing starts once the channel is open (_on_channel)
            raise ConnectorError("publishing before the AMQP channel is open")
        while self._waiting:
            p, props, error, said = self._waiting[0]
            missing = "" if error or p.exchange in self._present else self._still_missing(p.exchange)
            if missing is None:
                self._check_exchange(p.exchange)
                break
            self._waiting.popleft()
            self._waiting_bytes -= len(p.raw)
            if error or missing:
                self._park(p.raw, error or missing, said)
                continue
            try:  # mandatory: a message no queue would take comes back instead of vanishing in the broker
                self.ch.basic_publish(p.exchange, p.routing_key, p.body, props, mandatory=True)
            except UNFRAMEABLE as e:  # nothing was sent: pika frames a message whole before writing it
                self._park(p.raw, f"cannot be framed for the broker (a property's value): {error_text(e)}")
                continue
            self.window.published(p)

    def _still_missing(self, exchange: str) -> str | None:
        """Why `exchange` was found missing less than RECHECK seconds ago; None: not checked (or
        long ago: it may have been made since)."""
        reason, at = self._missing.get(exchange, ("", 0.0))
        return reason if reason and time.monotonic() - at < RECHECK else None

    def _check_exchange(self, exchange: str) -> None:
        """Ask the broker whether `exchange` exists (a passive declare on the probe channel,
        opened the first time; a 404 closes it, and the next check opens another)."""
        if self._checking is not None or self.conn is None:
            return
        self._checking = exchange
        if self._probe is not None and self._probe.is_open:
            self._declare(self._probe)
        else:
            self.conn.channel(on_open_callback=self._guard(self._declare))

    def _declare(self, probe: pika.channel.Channel) -> None:
        if probe is not self._probe:
            self._probe = probe
            probe.add_on_close_callback(self._on_probe_closed)
        exchange = self._checking
        assert exchange is not None  # noqa: S101 - set by _check_exchange before the probe opens
        probe.exchange_declare(exchange, passive=True, callback=self._guard(lambda _f: self._checked("")))

    def _on_probe_closed(self, probe: pika.channel.Channel, e: BaseException) -> None:
        if probe is self._probe:
            self._probe = None
        if self._checking is None or isinstance(e, pika.exceptions.ChannelClosedByClient):
            return
        if isinstance(e, pika.exceptions.ChannelClosedByBroker) and e.reply_code == 404:
            self._guard(self._checked)(f"no exchange {self._checking!r} on the broker ({e.reply_text})")
        elif isinstance(e, pika.exceptions.ChannelClosedByBroker):  # it would not say: publish as before
            logger.warning("%s: cannot check exchange %r: %s", self.ctx.label, self._checking, error_text(e))
            self._guard(self._checked)("")
        else:  # with the connection, whose error pika hands to every channel
            self._fail(f"connection lost: {error_text(e, self.d['amqp'], watched=False)}")

    def _checked(self, missing: str) -> None:
        """The broker answered the check: `missing` is why the exchange cannot be used, or ""."""
        exchange, self._checking = self._checking, None
        assert exchange is not None  # noqa: S101 - a check was on its way
        if missing:
            self._missing[exchange] = (missing, time.monotonic())
            logger.error("%s: %s; its messages are parked", self.ctx.label, missing)
        else:
            self._present.add(exchange)
            self._missing.pop(exchange, None)
        if self._stopping_until is None and self.ctx.vouched():
            self._flush()
        else:  # the next fenced take lets them go (as it does the stock)
            self._fence = bool(self._waiting)
        self._ask()

    def _publish_leftovers(self, stored: list[str], everything: bool = False) -> None:
        """Publish what is in the processing list (`stored`, read while no other Redis call
        was on its way) but is not this run's own: taken by an earlier run, or by a replaced
        holder's connector that was paused while Redis moved a message for it (it stops at
        its next epoch check, leaving it there). everything: the run has just begun."""
        self._next_scan = time.monotonic() + LEFTOVER_SCAN
        waiting = {item.publish.raw for item in self._waiting}
        mine = set() if everything else self.window.raws() | set(self._confirmed) | set(self._stock) | waiting
        mine |= {raw for raw, _ in self._unparked}
        leftovers = [raw for raw in stored if raw not in mine]
        n, room, budget = 0, self._room(), HELD_BYTES - self.window.bytes - self._waiting_bytes
        while n < min(room, len(leftovers)) and budget > 0:  # what the window takes: as a take does
            budget -= len(leftovers[n])
            n += 1
        if n < len(leftovers):  # the rest next time
            leftovers, self._next_scan = leftovers[:n], time.monotonic()
        if leftovers:
            logger.info(
                "%s: publishing %d message(s) taken but left unconfirmed by an earlier run",
                self.ctx.label,
                len(leftovers),
            )
            self._publish_all(self._prepare(leftovers))

    # -- confirms

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        m = frame.method
        settled = self.window.confirmed(m.delivery_tag, m.multiple, isinstance(m, pika.spec.Basic.Ack))
        self._confirmed.extend(settled.done)  # removed from Redis by the pump this schedules
        if self.suspects:
            self.suspects.difference_update(settled.done, (raw for raw, _ in settled.park))
        self.ctx.stats.add("messages_out", len(settled.done))
        for raw, reason in settled.park:
            self._park(raw, reason)
        self._pump()

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

    def _park(self, raw: str, reason: str, said: bool = False) -> None:
        """Park `raw` in Redis for inspection; while Redis fails, with the next Redis call that
        goes through (_take), the broker connection kept. said: the reason was logged already."""
        later = bool(self._unparked or self._redis_paused)  # after those waiting for Redis
        if not later:
            try:
                self.queue.park(raw)
            except CoordError as e:
                later = True
                self._redis_failed(e)
        if later:
            self._unparked.append((raw, reason))
        self.ctx.stats.add("parked")
        self.ctx.stats.error(f"parked a message in Redis: {reason}")
        if not said:
            where = "to be parked in Redis once it answers" if later else "parked in Redis for inspection"
            logger.error("%s: message %s: %s", self.ctx.label, where, reason)

    # -- time

    def _tick(self) -> None:
        """Stop checks, and a bounded wait for confirms when stopping; the pump it runs starts
        the leftover scan when that is due."""
        now = time.monotonic()
        if self._stopping_until is None and self.ctx.should_stop():
            self.ctx.stats.state("stopping")
            self._stopping_until = now + DRAIN
        stopping = self._stopping_until
        if stopping is not None and (not len(self.window) or now >= stopping):
            self._settle()
            self._close()  # what is still unconfirmed stays in the processing list
            return
        self._pump()
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
        delays, refused, refusals = RECONNECT.delays(), REFUSED.delays(), Refusals()
        redis = RedisFailures(self.ctx, logger, "the broker connection")  # said once across sessions
        unsigned = Unsigned(self.ctx, logger)  # the same
        suspects: frozenset[str] = frozenset()
        while not self.ctx.should_stop():
            session = Session(self.ctx, self.d, self.queue, suspects, refusals, redis, unsigned)
            session.run()
            suspects = frozenset(session.suspects)
            if session.opened:
                delays, refused = RECONNECT.delays(), REFUSED.delays()
            if session.error is None or self.ctx.should_stop():
                continue
            if session.refused is not None:  # the login or vhost: less and less often, said once
                delay = next(refused)
                say_refused(self.ctx, refusals, ("login", session.refused), session.refused, delay, logger)
                self.ctx.wait(delay)
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
    amqp_common.pika_at_debug()
    queue = OutQueue(ctx.client, ctx.settings.cluster, AMQP, definition["name"], ctx.epoch)
    list_queue(ctx, queue)
    return AMQPOutgoingConnector(ctx, definition, queue).run()
