"""One at a time across the cluster: a short Redis lock that workers take in turn.

A hot deploy reaches every worker of every server at once, and loading a module runs its
import in the worker (CPU-bound: gevent cannot serve requests meanwhile). Taking turns means
at most one worker of the cluster is busy loading at any moment, so the LB always has servers
that answer. The lock expires by itself (`hold`), so a worker that dies holding it blocks no
one for long; Redis being down means no turns, not no loading.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator

import redis

from zato.coord.keys import Keys

# KEYS: the lock.  ARGV: my token.  Compare-and-delete: never release another holder's turn.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
POLL = 0.05  # seconds between tries while another worker has its turn


@contextlib.contextmanager
def deploy_turn(
    client: redis.Redis, cluster: str, hold: float, wait: float, sleep: Callable[[float], None]
) -> Iterator[bool]:
    """Wait (through `sleep`, e.g. gevent.sleep) up to `wait` seconds for the cluster's load
    turn, hold it at most `hold` seconds; yields True if the turn was had, False if the wait
    ran out or Redis could not say (the caller goes ahead either way)."""
    key, token = Keys(cluster).deploy_turn, secrets.token_hex(8)
    deadline, got = time.monotonic() + wait, False
    try:
        while True:
            try:
                got = bool(client.set(key, token, nx=True, px=max(1, int(hold * 1000))))
            except (redis.RedisError, OSError):
                break
            if got or time.monotonic() >= deadline:
                break
            sleep(POLL)
        yield got
    finally:
        if got:
            with contextlib.suppress(redis.RedisError, OSError):
                client.eval(_RELEASE, 1, key, token)
