"""invoke_async through Redis, at least once: a service's call is on the cluster-wide queue
before invoke_async returns, so the server that asked may die at once.

Every worker of every server takes calls with BLMOVE into its own processing list and
removes each after the service ran; it refreshes an alive key (PX) while it lives. Any
worker's reaper moves the processing list of a worker whose alive key expired (killed,
host gone) back to the queue, so a call a dead worker had taken runs again elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from zato.common.errors import CoordError
from zato.coord.client import translate
from zato.coord.keys import Keys

ALIVE_MS = 5000  # a worker not seen for this long is dead: its calls are run again


@dataclass(frozen=True)
class AsyncCall:
    raw: str  # as stored (LREM needs the exact text)
    service: str
    payload: Any
    cid: str


def push(client: redis.Redis, cluster: str, service: str, payload: Any, cid: str) -> None:
    try:
        raw = json.dumps({"service": service, "payload": payload, "cid": cid})
    except (TypeError, ValueError) as e:
        raise CoordError(f"invoke_async {service}: the payload is not JSON-serialisable: {e}") from None
    with translate("invoke_async"):
        client.rpush(Keys(cluster).async_queue, raw)


def decode(raw: str) -> AsyncCall | None:
    try:
        msg = json.loads(raw)
        return AsyncCall(raw, str(msg["service"]), msg.get("payload"), str(msg["cid"]))
    except (ValueError, KeyError, TypeError):
        return None


class AsyncTaker:
    """One worker's side: take, mark alive, ack, and reap dead workers' lists."""

    def __init__(self, client: redis.Redis, cluster: str, worker_id: str):
        self.client, self.keys, self.worker_id = client, Keys(cluster), worker_id
        self.processing = self.keys.async_processing(worker_id)

    def heartbeat(self) -> None:
        with translate("invoke_async heartbeat"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.async_alive(self.worker_id), "1", px=ALIVE_MS)
            pipe.sadd(self.keys.async_workers, self.worker_id)
            pipe.execute()

    def take(self, timeout: float) -> str | None:
        with translate("invoke_async take"):
            return self.client.blmove(self.keys.async_queue, self.processing, timeout, "LEFT", "RIGHT")

    def ack(self, raw: str) -> None:
        with translate("invoke_async ack"):
            self.client.lrem(self.processing, 1, raw)

    def reap(self) -> int:
        """Move the calls of dead workers back to the queue and forget those workers;
        returns how many calls moved."""
        moved = 0
        with translate("invoke_async reap"):
            for worker in self.client.smembers(self.keys.async_workers):
                if worker == self.worker_id or self.client.exists(self.keys.async_alive(worker)):
                    continue
                key = self.keys.async_processing(worker)
                while self.client.lmove(key, self.keys.async_queue, "RIGHT", "LEFT") is not None:
                    moved += 1
                self.client.srem(self.keys.async_workers, worker)
        return moved

    def close(self) -> None:
        """A clean stop: hand back what was taken and not run, then forget this worker."""
        with translate("invoke_async close"):
            while self.client.lmove(self.processing, self.keys.async_queue, "RIGHT", "LEFT") is not None:
                pass
            self.client.delete(self.keys.async_alive(self.worker_id))
            self.client.srem(self.keys.async_workers, self.worker_id)
