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
the service refused as bad input (400) is logged at once, as no retry would change it.
A frame longer than the servers' [limits] max_body, which no server would take, is refused
by libzmq from its announced length (ZMQ_MAXMSGSIZE) before it is read into memory, and its
sender is disconnected (a connecting sender reconnects by itself).
Up to max_in_flight invocations (default 16) run at once in a thread pool; while all are
busy no message is read, so ZeroMQ's own queue (high-water mark) holds the senders back.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import zmq

from zato.common.errors import EXIT_DEPENDENCY, EXIT_OK
from zato.connector.base import Context, RetryPolicy, not_json
from zato.connector.invoke import Invoker, NoServer
from zato.connector.zmq_address import endpoints
from zato.odb.limits import in_flight_limit

logger = logging.getLogger("zato.connector.zmq_channel")

POLL_MS = 200
ATTEMPTS = 5
RETRY = RetryPolicy(start=0.2, step=0.5, max=2.0)


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

    def run(self) -> int:
        zctx = zmq.Context()
        sock = zctx.socket(zmq.PULL if self.d["socket_type"] == "PULL" else zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        max_size = self.ctx.settings.limits.max_body
        sock.setsockopt(zmq.MAXMSGSIZE, max_size)
        if self.d["socket_type"] == "SUB":
            sock.setsockopt(zmq.SUBSCRIBE, self.prefix)
        for address, bind in endpoints(self.d["address"]):
            try:
                sock.bind(address) if bind else sock.connect(address)
            except zmq.ZMQError as e:
                self.ctx.stats.error(f"cannot {'bind' if bind else 'connect'} {address}: {e}")
                what = "bind" if bind else "connect"
                logger.error("%s: cannot %s %s: %s", self.ctx.label, what, address, e)
                zctx.destroy(linger=0)
                return EXIT_DEPENDENCY
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
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        wakeup = self.ctx.signal_fd()  # SIGTERM ends the poll at once, not after POLL_MS
        poller.register(wakeup, zmq.POLLIN)
        pool = ThreadPoolExecutor(self.limit, thread_name_prefix="invoke")
        try:
            while not self.ctx.should_stop():
                # A free slot first: while `limit` invocations run, messages wait in ZeroMQ's
                # queue (up to its high-water mark), not in this process.
                if not self._slots.acquire(timeout=POLL_MS / 1000):
                    continue
                ready = dict(poller.poll(POLL_MS))
                if wakeup in ready:
                    os.read(wakeup, 512)
                if sock in ready:
                    body = payload(sock.recv_multipart(), self.d["socket_type"], self.prefix)
                    pool.submit(self._handle_in_slot, body)
                else:
                    self._slots.release()
        finally:
            self.ctx.stats.state("stopping")
            sock.close(linger=0)
            zctx.term()
            pool.shutdown(wait=True, cancel_futures=True)  # running ones end at their next wait
            self.invoker.close()
        return self.ctx.exit_code or EXIT_OK

    def _handle_in_slot(self, body: bytes) -> None:
        try:
            self._handle(body)
        except Exception:
            logger.exception("%s: a message could not be handled", self.ctx.label)
        finally:
            self._slots.release()

    def _handle(self, body: bytes) -> None:
        self.ctx.stats.add("messages_in")
        if self.d["data_format"] == "json" and (reason := not_json(body)):
            self.ctx.stats.add("parked")
            self.ctx.stats.error(f"dropped a message: {reason}")
            logger.error("%s: dropped a message: %s: %r", self.ctx.label, reason, body[:200])
            return
        delays = RETRY.delays()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                result = self.invoker.invoke(self.d["service"], body, self.content_type)
            except NoServer as e:
                reason = str(e)
            else:
                if result.ok:
                    self.ctx.stats.add("messages_out")
                    return
                if result.stale:
                    self.ctx.lease_lost(f"server {result.server} refused epoch {self.ctx.epoch} as stale")
                    return
                if result.refused:
                    self.ctx.stats.add("parked")
                    self.ctx.stats.error(result.refused)
                    logger.error("%s: dropped a message %s", self.ctx.label, result.refused)
                    return
                reason = f"service answered {result.status}: {result.body[:200]!r}"
            self.ctx.stats.add("failures")
            self.ctx.stats.error(reason)
            logger.warning("%s: attempt %d of %d failed: %s", self.ctx.label, attempt, ATTEMPTS, reason)
            if attempt < ATTEMPTS and self.ctx.wait(next(delays)):
                break
        logger.error("%s: message dropped after %d failed attempts: %r", self.ctx.label, ATTEMPTS, body[:200])


def run(ctx: Context, definition: dict) -> int:
    invoker = ctx.invoker()
    return ZMQChannelConnector(ctx, definition, invoker).run()
