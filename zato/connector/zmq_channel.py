"""ZeroMQ channel connector: a PULL or SUB socket whose messages go to the channel's service.

Addresses follow the CZMQ convention: "@tcp://..." binds, ">tcp://..." connects; without a
prefix a channel binds (senders connect to it). Several endpoints may be given, comma
separated: ">tcp://hostA:5555,>tcp://hostB:5555" connects to two producers that bind. That is
the mode for several hosts: the producers keep fixed addresses and whichever server holds the
lease connects to them, so after a takeover no sender has to find the new holder (while no
channel is connected, a PUSH producer's send waits, up to its send timeout).
A SUB socket subscribes to sub_prefix; a single-frame message has the prefix stripped, a
multi-frame one gives its last frame.
ZeroMQ has no acknowledgements: a failed invocation is retried a few times, then logged; one
the service refused as bad input (400) is logged at once, as no retry would change it. While
no server can take a message (none answers, or one answers 503: it cannot check the epoch
now) it waits, uncounted, tried again every NO_SERVER_PAUSE, as an AMQP or IBM MQ channel's
does (before, each was a failed attempt and the message was dropped after about 4 s). A
service that does not answer within the channel's `timeout` (seconds, default 30) is such a
failed attempt (it may still be running on its server).
A frame longer than the servers' [limits] max_body, which no server would take, is refused
by libzmq from its announced length (ZMQ_MAXMSGSIZE) before it is read into memory, and its
sender is disconnected (a connecting sender reconnects by itself).
Up to max_in_flight invocations (default 16) run at once in a thread pool; while all are
busy no message is read, so ZeroMQ's own queue (high-water mark) holds the senders back.

Stopping (SIGTERM: a definition changed, a restart, the server stopping, the lease lost) loses
nothing the socket took in. First no new message is taken from peers: each bound endpoint is
unbound (the senders, which connect, keep what they have not sent and send it to whoever binds
next) and each connected one is read empty, then disconnected (libzmq 4.3 discards a
disconnected pipe's queue; an unbound one's stays readable). Then what the socket had queued
(up to its receive high-water mark, 1000, and whatever the I/O thread had already taken from
the kernel) is read out and handed to the channel's next connector, here or on the new holder,
through a Redis list (zato.coord.handoff): at the service's pace it would take far longer
than the 0.3 s a stopping server gives its connectors (and an edit's 6 s). The next connector
takes that list first, and looks at it again every HANDOFF_CHECK seconds; what it takes moves
to the hand-off's processing list (fenced by its epoch) and leaves it only once the service
answered or the message was given up on, so a connector killed meanwhile loses none of them:
the next one runs what that list holds at its start and every LEFTOVER_SCAN seconds (at least
once: duplicates, never loss), but only while no other connector of the channel is alive
(zato.connector.zmq_alive): an edit's old connector, still running what it took, is, so an edit
runs each message once, and so is the old holder's after a takeover (waited for within a
bound); a killed one is taken for gone once its alive key lapsed (LIVE_TTL).
Invocations running at the stop get the rest of the grace; one the stop interrupted between
attempts, or the server refused as from a stale epoch, is handed over too. Redis at its
maxmemory takes the hand-off all the same (zato.coord.handoff: allow-oom). Only when Redis
refuses the hand-off are the messages processed here until DRAIN, and what is left is counted
and logged as a WARNING: "N messages received but not processed were dropped". A deleted
channel's hand-off goes with it (zato.connector.definitions), and its connector, stopping
however late, says how many it dropped instead of handing them over. A renamed one's moves to
the new name, where its connector, stopping after the rename, hands over too.
SIGKILLed (past its grace, or a crash), a connector loses what its socket had taken in and not
yet read (ZeroMQ has no acknowledgements): up to its receive high-water mark and what the
kernel buffered (bench/zmq_kill counts it). Its running invocations run on their servers.
A bind the port is not free for yet (the connector this one replaces still stopping) is tried
again for BIND_WAIT seconds; any other bind or connect error is a configuration error (FATAL),
its reason (e.g. "No such device") in `zato cluster status`.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import zmq

from zato.common.errors import EXIT_CONFIG, EXIT_DEPENDENCY, EXIT_OK, CoordError
from zato.connector.base import Context, RetryPolicy, not_json
from zato.connector.invoke import UNAVAILABLE, Invoker, NoServer
from zato.connector.zmq_address import endpoints
from zato.connector.zmq_alive import Alive
from zato.coord import handoff
from zato.coord.client import connect
from zato.coord.queues import StaleEpoch
from zato.odb.limits import answer_timeout, in_flight_limit

logger = logging.getLogger("zato.connector.zmq_channel")

POLL_MS = 200
ATTEMPTS = 5
RETRY = RetryPolicy(start=0.2, step=0.5, max=2.0)
BIND_WAIT = 5.0  # a port the connector this one replaces still holds: tried again this long
BIND_RETRY = 0.05
HANDOFF_CHECK = 1.0  # the hand-off list is read at start, then this often (and while it gives)
LEFTOVER_SCAN = 5.0  # the hand-off's processing list is read at start, then this often
STRAGGLERS_MS = 50  # after unbind/disconnect: what the I/O thread was still queuing
DRAIN = 5.0  # processing here what could not be handed over (within the supervisor's 6 s)
NO_SERVER_PAUSE = 1.0  # a message no server could take (none answered, or 503) is tried again after it
# A read of the hand-off that fails (Redis away, or a key a Redis writer gave another type) is
# tried again every HANDOFF_CHECK: said at the first failure, then this often with the count,
# and the recovery once (INFO). Before, one warning a second for as long as it lasted.
FAILED_SAY_EVERY = 10.0
# Its alive key (zato.connector.zmq_alive): refreshed while the main loop came round within the
# supervisor's connector_hang_after (this when that is 0: never killed); once it stops, within
# its answer timeout + DRAIN + STOP_MARGIN. One of an older epoch is waited for up to that and
# LIVE_TTL more (it may be killed mid-stop) before running what the processing list holds.
STUCK_AFTER = 120.0
STOP_MARGIN = 5.0


class _Repeating:
    """One read tried again and again: its failures said at the first, then every
    FAILED_SAY_EVERY seconds with the count; its recovery once."""

    def __init__(self, label: str, what: str):
        self.label, self.what = label, what
        self.failed, self._said = 0, -FAILED_SAY_EVERY

    def failure(self, e: CoordError) -> None:
        self.failed += 1
        now = time.monotonic()
        if now - self._said >= FAILED_SAY_EVERY:
            again = f" ({self.failed} failed reads so far)" if self.failed > 1 else ""
            logger.warning("%s: cannot read %s: %s%s", self.label, self.what, e, again)
            self._said = now

    def success(self) -> None:
        if self.failed:
            logger.info("%s: %s read again (%d reads failed before)", self.label, self.what, self.failed)
            self.failed, self._said = 0, -FAILED_SAY_EVERY


def payload(frames: list[bytes], socket_type: str, prefix: bytes) -> bytes:
    if len(frames) > 1:
        return frames[-1]
    body = frames[0]
    if socket_type == "SUB" and prefix and body.startswith(prefix):
        return body[len(prefix) :]
    return body


class ZMQChannelConnector:
    def __init__(self, ctx: Context, definition: dict, invoker: Invoker):
        self.ctx, self.d, self.invoker = ctx, definition, invoker
        self.prefix = definition["sub_prefix"].encode("utf-8")
        self.content_type = "application/json" if definition["data_format"] == "json" else "text/plain"
        self.limit = in_flight_limit(definition)
        self._slots = threading.BoundedSemaphore(self.limit)
        client = connect(ctx.settings.redis, encoding=handoff.ENCODING)  # bodies are bytes
        self.handoff = handoff.Handoff(client, ctx.settings.cluster, ctx.kind, ctx.name, ctx.epoch)
        self._next_handoff_check = 0.0
        stop_bound = answer_timeout(definition) + DRAIN + STOP_MARGIN
        self.alive = Alive(
            self.handoff,
            ctx.label,
            stuck_after=ctx.settings.connector_hang_after or STUCK_AFTER,
            stop_bound=stop_bound,
            older_wait=stop_bound + handoff.LIVE_TTL,
        )
        self._next_scan = 0.0  # of the hand-off's processing list, for what no connector runs
        self._recovered: collections.deque[str] = collections.deque()  # found there: run next
        self._lock = threading.Lock()
        self._mine: collections.Counter[str] = collections.Counter()  # taken from the hand-off, running
        self._unfinished: list[bytes] = []  # from the socket; the stop interrupted them: handed over too
        self._take_failed = _Repeating(ctx.label, "the messages handed over")
        self._scan_failed = _Repeating(ctx.label, "the hand-off's unanswered messages")

    def run(self) -> int:
        zctx = zmq.Context()
        sock = zctx.socket(zmq.PULL if self.d["socket_type"] == "PULL" else zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        max_size = self.ctx.settings.limits.max_body
        sock.setsockopt(zmq.MAXMSGSIZE, max_size)
        if self.d["socket_type"] == "SUB":
            sock.setsockopt(zmq.SUBSCRIBE, self.prefix)
        opened: list[tuple[str, bool]] = []  # as bound (the resolved endpoint) or connected
        for address, bind in endpoints(self.d["address"]):
            code = self._open(sock, address, bind)
            if code is not None:
                zctx.destroy(linger=0)
                self.handoff.client.close()
                return code
            opened.append((sock.getsockopt_string(zmq.LAST_ENDPOINT) if bind else address, bind))
            logger.info(
                "%s: %s %s %s, service %r, messages up to %d bytes ([limits] max_body)",
                self.ctx.label,
                self.d["socket_type"],
                "bound to" if bind else "connected to",
                address,
                self.d["service"],
                max_size,
            )
        self.ctx.stats.state("running")
        self.alive.start()  # alive in Redis until it exits, by a thread of its own
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        wakeup = self.ctx.signal_fd()  # SIGTERM ends the poll at once, not after POLL_MS
        poller.register(wakeup, zmq.POLLIN)
        pool = ThreadPoolExecutor(self.limit, thread_name_prefix="invoke")
        try:
            while not self.ctx.should_stop():
                self.alive.progress()
                # A free slot first: while `limit` invocations run, messages wait in ZeroMQ's
                # queue (up to its high-water mark), not in this process.
                if not self._slots.acquire(timeout=POLL_MS / 1000):
                    continue
                handed = self._next_handed()
                if handed is not None:
                    pool.submit(self._handle_handed, handed)
                    continue
                ready = dict(poller.poll(POLL_MS))
                if wakeup in ready:
                    os.read(wakeup, 512)
                if sock in ready:
                    body = payload(sock.recv_multipart(), self.d["socket_type"], self.prefix)
                    self._submit(pool, body)
                else:
                    self._slots.release()
        finally:
            self.ctx.stats.state("stopping")
            self.alive.stopping()  # alive through the stop: its calls may still answer
            self._stop(sock, opened, pool)
            sock.close(linger=0)
            zctx.term()
            self.invoker.close()
            self.alive.close()
            self._leave()
            self.handoff.client.close()
        return self.ctx.exit_code or EXIT_OK

    def _open(self, sock: zmq.Socket, address: str, bind: bool) -> int | None:
        """Bind or connect; None when done, else the exit code (the reason logged and in the
        stats, where `zato cluster status` shows it). A port still in use is waited for."""
        waited_until = time.monotonic() + BIND_WAIT
        while True:
            try:
                sock.bind(address) if bind else sock.connect(address)
                return None
            except zmq.ZMQError as e:
                busy = e.errno == errno.EADDRINUSE
                if busy and time.monotonic() < waited_until and not self.ctx.stop_event.is_set():
                    time.sleep(BIND_RETRY)  # the connector this one replaces is letting it go
                    continue
                what = "bind" if bind else "connect"
                reason = f"cannot {what} {address}: {e}"
                if busy:
                    reason += f" (still, after {BIND_WAIT:.0f} s)"
                self.ctx.stats.error(reason)
                self.ctx.stats.state("fatal")  # its last words: the status view shows them
                logger.error("%s: %s", self.ctx.label, reason)
                return EXIT_DEPENDENCY if busy else EXIT_CONFIG

    # -- the hand-over between a stopping connector and the next one -------------------------
    def _leave(self) -> None:
        """Its last word in Redis: gone (the next connector runs what it left at once; a
        deleted or renamed channel's marker lives DELETED_TTL more if it was the last)."""
        try:
            self.handoff.leave()
        except CoordError as e:
            logger.warning("%s: cannot say in Redis that it exited: %s", self.ctx.label, e)

    def _next_handed(self) -> str | None:
        """One message a connector of this channel handed over when it stopped, if due: first
        what an earlier connector took and left unanswered (it was killed), then a fenced take
        from the hand-off list. It stays in the hand-off's processing list until done."""
        now = time.monotonic()
        # Only alone: while another connector of the channel is alive (an edit's old one, or the
        # old holder's, still running what it took), what the processing list holds may be its.
        if not self._recovered and now >= self._next_scan and self.alive.alone():
            self._next_scan = now + LEFTOVER_SCAN
            self._scan()
        if self._recovered:
            return self._recovered.popleft()
        if now < self._next_handoff_check:
            return None
        try:
            taken = self.handoff.take_many(1)
        except StaleEpoch as e:  # a newer holder's connector takes them
            self.ctx.lease_lost(str(e))
            taken = []
        except CoordError as e:
            self._take_failed.failure(e)
            taken = []
        else:
            self._take_failed.success()
        if not taken:  # looked again later: a connector stopping meanwhile may add some
            self._next_handoff_check = now + HANDOFF_CHECK
            return None
        with self._lock:
            self._mine[taken[0]] += 1
        return taken[0]

    def _scan(self) -> None:
        """Queue what the hand-off's processing list holds that is not running here: taken by
        a connector of this channel that was killed before its service answered."""
        with self._lock:  # before the read: one done meanwhile is not taken for a leftover
            mine = collections.Counter(self._mine)
        try:
            stored = self.handoff.leftovers()
        except CoordError as e:
            self._scan_failed.failure(e)
            return
        self._scan_failed.success()
        left = []
        for raw in stored:
            if mine[raw] > 0:
                mine[raw] -= 1
            else:
                left.append(raw)
        if not left:
            return
        logger.info(
            "%s: running %d handed-over messages a connector of this channel took and left unanswered",
            self.ctx.label,
            len(left),
        )
        with self._lock:
            self._mine.update(left)
        self._recovered.extend(left)

    def _hand_over(self, bodies: list[bytes]) -> str:
        """Where they went: "handed", "deleted" (the channel was: dropped) or "failed" (Redis refused)."""
        if not bodies:
            return "handed"
        try:
            if not self.handoff.hand_over([handoff.as_raw(b) for b in bodies]):
                return "deleted"
        except CoordError as e:
            logger.warning("%s: cannot hand %d messages over: %s", self.ctx.label, len(bodies), e)
            return "failed"
        logger.info(
            "%s: %d messages received but not processed handed to the channel's next connector",
            self.ctx.label,
            len(bodies),
        )
        return "handed"

    def _stop(self, sock: zmq.Socket, opened: list[tuple[str, bool]], pool: ThreadPoolExecutor) -> None:
        """Take no more, hand over what the socket holds, let the running invocations end."""
        left = self._stop_taking(sock, opened)
        dropped = deleted = 0
        how = self._hand_over(left)
        if how == "failed":
            dropped = self._drain_here(left, pool)
        elif how == "deleted":
            deleted = len(left)
        # Running ones end at their next wait; those not started yet are handed over (_submit),
        # unless Redis refused the hand-over: then they run here, as _drain_here means them to.
        pool.shutdown(wait=True, cancel_futures=how != "failed")
        with self._lock:
            unfinished, self._unfinished = self._unfinished, []
        how = self._hand_over(unfinished)
        if how == "failed":
            dropped += len(unfinished)
        elif how == "deleted":
            deleted += len(unfinished)
        if dropped:
            self.ctx.stats.error(f"{dropped} messages received but not processed were dropped")
            logger.warning("%s: %d messages received but not processed were dropped", self.ctx.label, dropped)
        if deleted:
            logger.warning(
                "%s: %d messages received but not processed were dropped: the channel was deleted",
                self.ctx.label,
                deleted,
            )

    def _stop_taking(self, sock: zmq.Socket, opened: list[tuple[str, bool]]) -> list[bytes]:
        left: list[bytes] = []

        def read_all() -> None:
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                left.append(payload(frames, self.d["socket_type"], self.prefix))

        if any(not bind for _, bind in opened):
            read_all()  # a disconnected pipe's queue is discarded: read it while connected
        for address, bind in opened:
            try:
                sock.unbind(address) if bind else sock.disconnect(address)
            except zmq.ZMQError as e:
                logger.warning(
                    "%s: cannot %s %s: %s", self.ctx.label, "unbind" if bind else "disconnect", address, e
                )
        read_all()
        while sock.poll(STRAGGLERS_MS):
            read_all()
        return left

    def _drain_here(self, bodies: list[bytes], pool: ThreadPoolExecutor) -> int:
        """Process `bodies` here until DRAIN (Redis refused them); how many were left."""
        deadline = time.monotonic() + DRAIN
        for i, body in enumerate(bodies):
            if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return len(bodies) - i
            self._submit(pool, body)
        return 0

    def _submit(self, pool: ThreadPoolExecutor, body: bytes) -> None:
        """Run a message from the socket in the pool; one the stop cancels before it started is
        handed over at the end with those the stop interrupted (it was lost without a word)."""

        def cancelled(future: Future) -> None:
            if future.cancelled():
                with self._lock:
                    self._unfinished.append(body)
                self._slots.release()

        pool.submit(self._handle_in_slot, body).add_done_callback(cancelled)

    def _handle_in_slot(self, body: bytes) -> None:
        """A message from the socket; one the stop interrupted is handed over at the end."""
        try:
            if not self._handle(body):
                with self._lock:
                    self._unfinished.append(body)
        except Exception:
            logger.exception("%s: a message could not be handled", self.ctx.label)
        finally:
            self._slots.release()

    def _handle_handed(self, raw: str) -> None:
        """A message from the hand-off: out of its processing list once done, given back when
        the stop interrupted it (or the epoch is stale: the new holder's connector runs it)."""
        try:
            finished = self._handle(handoff.as_body(raw))
        except Exception:
            logger.exception("%s: a message could not be handled", self.ctx.label)
            finished = True  # as one from the socket: not run again
        try:
            if finished:
                self.handoff.done([raw])
            elif not self.handoff.give_back([raw]):
                logger.warning(
                    "%s: a message received but not processed was dropped: the channel was deleted",
                    self.ctx.label,
                )
        except CoordError as e:  # left in the processing list: the next connector runs it again
            logger.warning("%s: %s", self.ctx.label, e)
        finally:
            with self._lock:
                self._mine[raw] -= 1
                if self._mine[raw] <= 0:
                    del self._mine[raw]
            self._slots.release()

    def _handle(self, body: bytes) -> bool:
        """Invoke the service, again after a failure; False when it must run elsewhere (the
        stop came between attempts, or a server refused this epoch as stale)."""
        self.ctx.stats.add("messages_in")
        if self.d["data_format"] == "json" and (reason := not_json(body)):
            self.ctx.stats.add("parked")
            self.ctx.stats.error(f"dropped a message: {reason}")
            logger.error("%s: dropped a message: %s: %r", self.ctx.label, reason, body[:200])
            return True
        delays = RETRY.delays()
        attempt, waited = 0, False
        while attempt < ATTEMPTS:
            try:
                result = self.invoker.invoke(self.d["service"], body, self.content_type)
            except NoServer as e:
                if self._waits(str(e), waited):
                    return False  # stopping: the next connector tries it
                waited = True
                continue
            if result.status == UNAVAILABLE:
                if self._waits(f"server {result.server} is unavailable: {result.text}", waited):
                    return False
                waited = True
                continue
            attempt += 1
            if result.ok:
                self.ctx.stats.add("messages_out")
                return True
            if result.stale:  # not run: the new holder's connector runs it
                self.ctx.lease_lost(f"server {result.server} refused epoch {self.ctx.epoch} as stale")
                return False
            if result.refused:
                self.ctx.stats.add("parked")
                self.ctx.stats.error(result.refused)
                logger.error("%s: dropped a message %s", self.ctx.label, result.refused)
                return True
            if result.timed_out:  # it may still run there: a failed attempt all the same
                reason = f"{result.text} (service {self.d['service']!r} on {result.server})"
            else:
                reason = f"service answered {result.status}: {result.body[:200]!r}"
            self.ctx.stats.add("failures")
            self.ctx.stats.error(reason)
            logger.warning("%s: attempt %d of %d failed: %s", self.ctx.label, attempt, ATTEMPTS, reason)
            if attempt < ATTEMPTS and self.ctx.wait(next(delays)):
                return False  # stopping between attempts: the next connector tries it
        logger.error("%s: message dropped after %d failed attempts: %r", self.ctx.label, ATTEMPTS, body[:200])
        return True

    def _waits(self, reason: str, said: bool) -> bool:
        """No server could take the message (none answered, or 503: it cannot check the epoch
        now): it waits, uncounted, as an AMQP or IBM MQ channel's does, and is tried again after
        NO_SERVER_PAUSE; said once per message (`said`: already). True when the connector stops
        meanwhile (the message is handed over). Before, each was a failed attempt, and after
        ATTEMPTS (about 4 s) the message was dropped."""
        self.ctx.stats.error(reason)
        if not said:
            logger.warning(
                "%s: %s; the message waits, tried again every %g s", self.ctx.label, reason, NO_SERVER_PAUSE
            )
        return self.ctx.wait(NO_SERVER_PAUSE)


def run(ctx: Context, definition: dict) -> int:
    invoker = ctx.invoker(answer_timeout(definition))
    return ZMQChannelConnector(ctx, definition, invoker).run()
