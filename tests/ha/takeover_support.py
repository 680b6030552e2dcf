"""Helpers of the connector takeover tests (AMQP, IBM MQ): who holds the lease, what the
recording service received, and a sender of numbered outgoing items through an HTTP channel."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import redis
import requests

from tests.support import REDIS_URL, wait_for
from zato.coord.lease import read_holder


def holder(cluster: str) -> str | None:
    h = read_holder(redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster)
    return h.server if h else None


def received_ids(cluster: str) -> list[int]:
    raw = redis.Redis.from_url(REDIS_URL).lrange(f"zato:{cluster}:test:received", 0, -1)
    return [json.loads(x)["n"] for x in raw]


class OutgoingSender(threading.Thread):
    """Posts batches of numbered items to `path` on whichever server answers; remembers
    the items of every batch a server accepted (200)."""

    def __init__(self, qs, path: str = "/send-amqp"):
        super().__init__(daemon=True)
        self.qs, self.path, self.accepted, self.stop = qs, path, [], threading.Event()

    def run(self) -> None:
        batch = 0
        while not self.stop.is_set():
            items = [{"o": batch * 10 + i} for i in range(10)]
            for name in self.qs.server_names:
                try:
                    r = requests.post(self.qs.server_url(name) + self.path, json={"items": items}, timeout=5)
                except requests.RequestException:
                    continue
                if r.status_code == 200:
                    self.accepted.extend(i["o"] for i in items)
                    break
            batch += 1
            time.sleep(0.05)


def kill_holder(qs, after: int) -> str:  # noqa: ANN001 - a tests.support.Quickstart
    """Once the service received `after` messages: SIGKILL the holder's process group, wait for
    the other server to take over, start the killed one again; returns the new holder."""
    wait_for(
        lambda: len(received_ids(qs.cluster)) >= after,
        timeout=120,
        what=f"{after} messages before killing the holder",
    )
    victim = wait_for(lambda: holder(qs.cluster), timeout=30, what="a lease holder")
    os.killpg(qs.pid(victim), signal.SIGKILL)
    new = wait_for(
        lambda: (h := holder(qs.cluster)) and h != victim and h,
        timeout=60,
        what=f"another holder after killing {victim}",
    )
    print(f"after {after} messages: {victim} killed, {new} took over")
    qs.start(victim)
    return new
