"""The invoke_async consumer of one gunicorn worker: a greenlet that takes calls from the
cluster-wide queue (zato.coord.async_invoke), runs each service, then acks it; and every
few seconds reaps the calls of workers that died. Idle, it costs Redis one blocking BLMOVE
every TAKE_TIMEOUT seconds (on a connection of its own, whose socket timeout is above that)
and a reap of two commands on that connection every REAP_EVERY seconds (zato.coord.async_invoke)."""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

from zato.common.cid import new_cid
from zato.common.errors import CoordError, CoordUnavailable
from zato.common.log import printable
from zato.common.retry import Backoff
from zato.coord import loaded, patterns
from zato.coord.async_invoke import AsyncTaker, decode, signed, worker_id
from zato.coord.client import connect
from zato.service.base import INVOKE_ASYNC, INVOKE_ASYNC_CALLBACK, ChannelInfo, Request

logger = logging.getLogger("zato.async")

TAKE_TIMEOUT = 5.0  # seconds one BLMOVE waits; a call pushed meanwhile is taken at once
REAP_EVERY = 10.0  # a dead worker's calls run again within this (plus membership's TTL)
RETRY = 1.0  # seconds between attempts while Redis fails: constant, so it resumes within 1 s of Redis


class AsyncConsumer:
    def __init__(self, worker: Any):
        self.worker = worker
        settings = worker.settings
        # BLMOVE blocks TAKE_TIMEOUT seconds: its own connection, with a socket timeout above it.
        timeout = settings.redis.socket_timeout + TAKE_TIMEOUT
        self._take_client = connect(settings.redis, socket_timeout=timeout)
        me = worker_id(settings.name, os.getpid())
        self.taker = AsyncTaker(
            worker.redis, settings.cluster, me, take_client=self._take_client, on_forget=self._forget_loads
        )
        self._greenlet: Any = None
        self._taking = False

    def start(self) -> None:
        import gevent

        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        import gevent

        backoff = Backoff(RETRY, RETRY)
        registered = False
        next_reap = time.monotonic() + random.uniform(0, REAP_EVERY)  # noqa: S311 - spreads the workers' reaps
        while not self.worker.stopping:
            try:
                if not registered:
                    if self.taker.register():
                        logger.warning("invoke_async: calls left under this worker's name were queued again")
                    registered = True
                    self.worker.health.ok()  # a write: Redis answers again, if it was away
                # once loaded: a dead worker's notes are dropped from the hashes of the modules it knows
                if self.worker.loaded and time.monotonic() >= next_reap:
                    moved = self.taker.reap()
                    if moved:
                        logger.warning("invoke_async: %d call(s) of a dead worker queued again", moved)
                    next_reap = time.monotonic() + REAP_EVERY
                self._taking = True
                try:
                    raw = self.taker.take(TAKE_TIMEOUT)
                finally:
                    self._taking = False
                self.worker.health.ok()  # Redis answered a write (BLMOVE)
                if raw is not None:
                    self._run_one(raw)
            except CoordError as e:
                registered = False  # Redis may have lost the set meanwhile
                # once, then once a minute, for the process; an UNBLOCKED take (Redis made a replica) too
                self.worker.health.failed("invoke_async", e, answered_is_bug=False)
                gevent.sleep(backoff.next())
            except Exception:  # noqa: BLE001 - the consumer must never die
                delay = backoff.next()
                logger.exception("invoke_async consumer failed; retrying in %.1f s", delay)
                gevent.sleep(delay)

    def _forget_loads(self, worker: str) -> None:
        """A worker stopped or was found dead: its notes of the modules it loaded go (zato.coord.
        loaded), else each deployed module's hash kept one for every worker that ever ran."""
        modules = set(self.worker.store.sources) | set(self.worker.store.modules)
        try:
            loaded.drop(self.worker.redis, self.worker.settings.cluster, modules, [worker])
        except CoordError as e:  # the reap and the stop go on; those notes stay, as before
            logger.warning("invoke_async: could not drop the module-load notes of worker %s: %s", worker, e)

    def _run_one(self, raw: str) -> None:
        call = decode(raw)
        if call is None:
            logger.error("invoke_async: dropped a malformed call: %.200r", raw)
        elif not signed(self.worker.call_key, raw):  # queued by someone without the cluster secret
            # parked, not dropped: during a rolling upgrade the servers not yet upgraded queue them
            self.taker.park(raw)
            logger.error(
                "invoke_async: refused call %s of service %s, not run: not signed with this cluster's key "
                "(written to Redis by something other than a server of the cluster, or one with another "
                "[auth] cluster_secret or of a version before calls were signed); parked in %s: once "
                "every server is upgraded and you know it is the cluster's own, "
                "zato cluster run-parked DIR --sign runs it",
                printable(call.cid, 60),
                printable(call.service, 200),
                self.taker.keys.async_parked,
            )
            return
        else:
            request = Request(payload=call.payload, channel=ChannelInfo("invoke-async", INVOKE_ASYNC))
            try:
                response = self.worker.store.run(call.service, call.cid, request)
            except Exception as e:  # noqa: BLE001 - a failing service is logged, not retried
                logger.exception("cid %s: async service %s failed", call.cid, call.service)
                if call.step is not None:
                    self._record(call, patterns.outcome(call.step, call.service, False, None, _said(e)))
            else:
                for name in call.callbacks:
                    self._callback(name, call.cid, response.payload)
                if call.step is not None:
                    self._record(
                        call, patterns.outcome(call.step, call.service, True, response.payload, None)
                    )
        self.taker.ack(raw)

    def _record(self, call: Any, done: dict) -> None:
        """A pattern's target ran: record it, until Redis takes it (the call stays unacked
        meanwhile; a worker stopped first leaves it to run again elsewhere)."""
        import gevent

        backoff = Backoff(RETRY, RETRY)
        settings = self.worker.settings
        while True:
            try:
                recorded = patterns.record(
                    self.worker.redis, settings.cluster, call.step, done, key=self.worker.call_key
                )
                if recorded == 2:
                    logger.info("cid %s: every target of %s %s ran", call.cid, call.step.kind, call.step.run)
                self.worker.health.ok()
                return
            except CoordUnavailable as e:
                if self.worker.stopping:
                    raise
                self.worker.health.failed(f"invoke_async: recording cid {call.cid} of {call.step.kind}", e)
                gevent.sleep(backoff.next())
            except CoordError as e:  # retrying will not help (an ACL without scripts...)
                logger.error("cid %s: the outcome of %s in %s %s is lost: %s", call.cid, call.service,
                             call.step.kind, call.step.run, e)  # fmt: skip
                return

    def _callback(self, name: str, cid: str, payload: Any) -> None:
        """Zato's invoke_async callback: service `name` given the response of call `cid`."""
        channel = ChannelInfo("invoke-async-callback", INVOKE_ASYNC_CALLBACK)
        request = Request(payload=payload, channel=channel, in_reply_to=cid)
        try:
            self.worker.store.run(name, new_cid(), request)
        except Exception:  # noqa: BLE001 - logged; the call itself ran
            logger.exception("cid %s: callback service %s of async service failed", cid, name)

    def stop(self) -> None:
        # Blocked in BLMOVE: stop waiting now (a call it may just have moved is handed back
        # below). Running a service: let it finish; close() hands back the rest.
        if self._greenlet is not None and self._taking:
            self._greenlet.kill(block=True, timeout=1)
        try:
            self.taker.close()
        except CoordError as e:
            logger.warning("invoke_async: could not hand back taken calls: %s", e)
        self._take_client.close()


def _said(e: BaseException) -> str:
    """An exception as a pattern's outcome gives it: its type and message."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
