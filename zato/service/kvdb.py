"""What services reach of the cluster's Redis: `self.kvdb.conn` (a Redis client) and Zato's
cache API `self.cache` (`self.cache.default.get/set/delete`, also `self.cache.get/set/delete`),
shared by every server of the cluster. Values are stored as JSON; expiry is in seconds."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from zato.common import jsonenc
from zato.common.errors import CoordError
from zato.coord.client import translate
from zato.coord.keys import Keys

DEFAULT_CACHE = "default"

logger = logging.getLogger("zato.service.lock")


class KVDB:
    """`self.kvdb.conn`: a redis-py client (text replies) on the cluster's Redis."""

    def __init__(self, conn: redis.Redis):
        self.conn = conn


class CacheAPI:
    """One named cache."""

    def __init__(self, conn: redis.Redis, cluster: str, name: str):
        self._conn, self._keys, self.name = conn, Keys(cluster), name

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise CoordError(f"cache {self.name}: a key must be a non-empty string, not {key!r}")
        return self._keys.cache(self.name, key)

    def get(self, key: str, default: Any = None) -> Any:
        with translate(f"cache {self.name}"):
            raw = self._conn.get(self._key(key))
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, expiry: float = 0, *args: Any, **kwargs: Any) -> None:
        """Store `value` (anything JSON can hold); expiry in seconds, 0 = never."""
        try:
            raw = jsonenc.dumps(value)
        except (TypeError, ValueError) as e:
            raise CoordError(f"cache {self.name}: cannot store {type(value).__name__}: {e}") from None
        with translate(f"cache {self.name}"):
            self._conn.set(self._key(key), raw, px=int(expiry * 1000) if expiry and expiry > 0 else None)

    def delete(self, key: str) -> bool:
        with translate(f"cache {self.name}"):
            return bool(self._conn.delete(self._key(key)))

    def has_key(self, key: str) -> bool:
        with translate(f"cache {self.name}"):
            return bool(self._conn.exists(self._key(key)))

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __contains__(self, key: str) -> bool:
        return self.has_key(key)


_MISSING = object()


class Cache:
    """`self.cache`: `default` and `get_cache(type, name)`; get/set/delete use `default`."""

    def __init__(self, conn: redis.Redis, cluster: str):
        self._conn, self._cluster = conn, cluster
        self.default = CacheAPI(conn, cluster, DEFAULT_CACHE)

    def get_cache(self, cache_type: str = "builtin", name: str = DEFAULT_CACHE) -> CacheAPI:
        return self.default if name == DEFAULT_CACHE else CacheAPI(self._conn, self._cluster, name)

    def get(self, key: str, default: Any = None) -> Any:
        return self.default.get(key, default)

    def set(self, key: str, value: Any, expiry: float = 0, *args: Any, **kwargs: Any) -> None:
        self.default.set(key, value, expiry)

    def delete(self, key: str) -> bool:
        return self.default.delete(key)


class ServiceLock:
    """What `self.lock(name, ttl, block)` returns: a context manager holding a lock of the whole
    cluster (a Redis key, redis-py's Lock) while its block runs. It waits up to `block` seconds
    for it (0: not at all) and raises LockTimeout if another holds it then. The lock expires
    after `ttl` seconds even if its holder died or still runs: a block that outlives it is
    logged, as another may have taken the lock meanwhile."""

    def __init__(self, conn: redis.Redis, cluster: str, name: str, ttl: float, block: float):
        if not isinstance(name, str) or not name:
            raise CoordError(f"a lock's name must be a non-empty string, not {name!r}")
        self.name, self.ttl, self.block = name, float(ttl), float(block)
        if self.ttl <= 0:
            raise CoordError(f"lock {name!r}: ttl must be more than 0 seconds, not {ttl!r}")
        self._lock = conn.lock(Keys(cluster).lock(name), timeout=self.ttl, blocking=self.block > 0,
                               blocking_timeout=self.block if self.block > 0 else None)  # fmt: skip

    def __enter__(self) -> ServiceLock:
        from zato.common.exception import LockTimeout

        with translate(f"lock {self.name!r}"):
            taken = self._lock.acquire()
        if not taken:
            waited = f"within {self.block:g} s" if self.block > 0 else "at once"
            raise LockTimeout("", f"lock {self.name!r} is held by another service; not taken {waited}")
        return self

    def __exit__(self, *exc: object) -> None:
        with translate(f"lock {self.name!r}"):
            try:
                self._lock.release()
            except redis.exceptions.LockNotOwnedError:
                said = "held longer than its ttl of %g s; another may have taken it meanwhile"
                logger.warning("lock %r: " + said, self.name, self.ttl)
