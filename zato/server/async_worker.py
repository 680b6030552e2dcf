"""The invoke_async consumer of one gunicorn worker: a greenlet that takes calls from the
cluster-wide queue (zato.coord.async_invoke), runs each service, then acks it; and every
few seconds reaps the calls of workers that died."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from zato.common.errors import CoordError
from zato.coord.async_invoke import AsyncTaker, decode
from zato.service.base import INVOKE_ASYNC, ChannelInfo, Request

logger = logging.getLogger("zato.async")

TAKE_TIMEOUT = 0.5  # seconds one BLMOVE waits (below the Redis socket timeout)
REAP_EVERY = 2.0
RETRY = 1.0


class AsyncConsumer:
    def __init__(self, worker: Any):
        self.worker = worker
        worker_id = f"{worker.settings.name}:{os.getpid()}"
        self.taker = AsyncTaker(worker.redis, worker.settings.cluster, worker_id)
        self._greenlet: Any = None

    def start(self) -> None:
        import gevent

        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        import gevent

        next_reap = 0.0
        while not self.worker.stopping:
            try:
                self.taker.heartbeat()
                if time.monotonic() >= next_reap:
                    moved = self.taker.reap()
                    if moved:
                        logger.warning("invoke_async: %d call(s) of a dead worker queued again", moved)
                    next_reap = time.monotonic() + REAP_EVERY
                raw = self.taker.take(TAKE_TIMEOUT)
                if raw is not None:
                    self._run_one(raw)
            except CoordError as e:
                logger.warning("invoke_async: %s; retrying in %.1f s", e, RETRY)
                gevent.sleep(RETRY)
            except Exception:  # noqa: BLE001 - the consumer must never die
                logger.exception("invoke_async consumer failed; retrying in %.1f s", RETRY)
                gevent.sleep(RETRY)

    def _run_one(self, raw: str) -> None:
        call = decode(raw)
        if call is None:
            logger.error("invoke_async: dropped a malformed call: %.200r", raw)
        else:
            request = Request(payload=call.payload, channel=ChannelInfo("invoke-async", INVOKE_ASYNC))
            try:
                self.worker.store.invoke(call.service, cid=call.cid, request=request)
            except Exception:  # noqa: BLE001 - a failing service is logged, not retried
                logger.exception("cid %s: async service %s failed", call.cid, call.service)
        self.taker.ack(raw)

    def stop(self) -> None:
        try:
            self.taker.close()
        except CoordError as e:
            logger.warning("invoke_async: could not hand back taken calls: %s", e)
