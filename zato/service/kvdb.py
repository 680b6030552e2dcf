"""What services reach of the cluster's Redis: `self.kvdb.conn` (a Redis client) and Zato's
cache API `self.cache`: Zato 3's `self.cache.default.get/set/delete...` and Zato 4.1's
`self.cache.get/set/delete/exists` (the default cache itself), shared by every server of the
cluster. Values are stored as JSON; expiry is in seconds."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from zato.common import jsonenc
from zato.common.errors import CoordError
from zato.coord.client import text, translate
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

    exists = has_key  # Zato 4.1's name

    def expire(self, key: str, expiry: float = 0) -> bool:
        """Let `key` expire after `expiry` seconds (0: at once); False if there is no such key."""
        with translate(f"cache {self.name}"):
            return bool(self._conn.pexpire(self._key(key), max(int(expiry * 1000), 1)))

    # By prefix, and the whole cache: SCAN over the cache's keys (never KEYS, which blocks Redis)

    def _scan(self, prefix: str = "", limit: int = 0) -> list[str]:
        """The cache's keys starting with `prefix` (its own keys, without the cache's prefix),
        at most `limit` of them (0: all)."""
        start = self._keys.cache(self.name, "")
        pattern = start + _glob_escape(prefix) + "*"
        found: list[str] = []
        with translate(f"cache {self.name}"):
            for full in self._conn.scan_iter(match=pattern, count=500):
                found.append(text(full)[len(start) :])
                if limit and len(found) >= limit:
                    break
        return found

    def _values(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        with translate(f"cache {self.name}"):
            raws = self._conn.mget([self._key(k) for k in keys])
        return {k: json.loads(raw) for k, raw in zip(keys, raws, strict=True) if raw is not None}

    def get_by_prefix(self, prefix: str, details: bool = False, limit: int = 0) -> dict[str, Any]:
        """{key: value} of the keys starting with `prefix` (at most `limit`; 0: all)."""
        return self._values(self._scan(prefix, limit))

    def delete_by_prefix(self, prefix: str, return_found: bool = False, limit: int = 0) -> Any:
        """Delete the keys starting with `prefix`; {key: value} of those deleted if `return_found`,
        else how many."""
        keys = self._scan(prefix, limit)
        found = self._values(keys) if return_found else None
        if keys:
            with translate(f"cache {self.name}"):
                deleted = self._conn.delete(*[self._key(k) for k in keys])
        else:
            deleted = 0
        return found if return_found else deleted

    def keys(self) -> list[str]:
        return self._scan()

    def values(self) -> list[Any]:
        return list(self._values(self._scan()).values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._values(self._scan()).items())

    def clear(self) -> None:
        self.delete_by_prefix("")

    def __len__(self) -> int:
        return len(self._scan())

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return self.has_key(key)

    def __bool__(self) -> bool:
        return True  # a cache, empty or not (never a SCAN through __len__)


def _glob_escape(text_: str) -> str:
    """`text_` matched literally in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text_)


_MISSING = object()


class Cache(CacheAPI):
    """`self.cache`: the default cache itself (Zato 4.1: `self.cache.get/set/delete/exists`,
    and every other call of a cache), also as `default` (Zato 3), and `get_cache(type, name)`."""

    def __init__(self, conn: redis.Redis, cluster: str):
        super().__init__(conn, cluster, DEFAULT_CACHE)
        self._cluster = cluster
        self.default: CacheAPI = self

    def get_cache(self, cache_type: str = "builtin", name: str = DEFAULT_CACHE) -> CacheAPI:
        return self if name == DEFAULT_CACHE else CacheAPI(self._conn, self._cluster, name)


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
