"""Redis connections, plain or through Sentinel, with errors translated at the boundary."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import InvalidResponse, NoPermissionError, OutOfMemoryError, ReadOnlyError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from zato.common.errors import CoordDataError, CoordError, CoordForbidden, CoordRefused, CoordUnavailable
from zato.common.log import redact
from zato.config.settings import RedisSettings

T = TypeVar("T")
logger = logging.getLogger("zato.coord.client")


def connect(settings: RedisSettings, **kwargs: object) -> redis.Redis:
    """A client for the Redis named in settings (the current master when behind Sentinel)."""
    # Any: these are keyword arguments of redis.Redis, whose types differ per option.
    opts: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "decode_responses": True,
        "health_check_interval": 10,
    }
    opts.update(kwargs)
    if settings.sentinels:
        timeout = settings.socket_timeout
        # One try per Sentinel and lookup: redis-py retries a Sentinel 3 times with back-off
        # by itself, so a host cut from its Sentinels waited about 15 s for every Redis call
        # instead of socket_timeout (the lab's Redis cut: HTTP calls that check the epoch hung).
        timeouts = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs=timeouts)
        opts.pop("health_check_interval", None)
        return sentinel.master_for(
            settings.sentinel_master,
            connection_pool_class=FollowingPool,
            **_master_credentials(settings.url),
            **opts,
        )
    return redis.Redis.from_url(settings.url, **opts)


FOLLOW_EVERY = 1.0  # s: how often each process asks the Sentinels which master they name


class FollowingPool(SentinelConnectionPool):
    """A Sentinel pool whose connections follow the master the Sentinels name even while the
    old one answers. redis-py asks the Sentinels only when it opens a connection, so when the
    Sentinels lost sight of a master that its clients still reached (a partition) and promoted
    a replica, every connection that stayed up kept writing to the old master for as long as
    the partition lasted, while new ones (a new holder's connectors, the CLI) used the new one;
    once the partition healed the Sentinels made the old master a replica and everything
    written to it since was gone (outgoing messages that services had sent). Here a thread of
    each process asks the Sentinels every FOLLOW_EVERY s (SentinelConnectionPool.
    get_master_address): a master other than the one its connections use closes the idle ones
    and takes no busy one back, so the next command goes to the new master. When no Sentinel
    answers, or none names a master (a failover under way), the connections stay as they are."""

    _watched_in = 0  # the process that watches this pool (a fork watches it anew)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._watched_in != os.getpid():
            self._watched_in = os.getpid()
            _FOLLOWER.watch(self)
        return super().get_connection(*args, **kwargs)


class _Follower:
    """The one thread a process runs for its FollowingPools (started with the first one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: list[weakref.ref[FollowingPool]] = []
        self._thread: threading.Thread | None = None

    def forked(self) -> None:
        """In a forked child: the parent's thread is not here, and its lock may have been held."""
        self.__init__()  # type: ignore[misc]

    def watch(self, pool: FollowingPool) -> None:
        with self._lock:
            self._pools.append(weakref.ref(pool))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="zato-redis-follow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FOLLOW_EVERY)
            with self._lock:
                self._pools = [ref for ref in self._pools if ref() is not None]
                pools = [ref() for ref in self._pools]
            views: dict = {}  # one question to each Sentinel a round, whatever the number of pools
            for pool in pools:
                if pool is not None:
                    self._follow(pool, views)

    @staticmethod
    def _follow(pool: FollowingPool, views: dict) -> None:
        was = pool.master_address
        newest_first(pool.sentinel_manager, pool.service_name, views)
        try:
            now = pool.get_master_address()
        except (redis.RedisError, OSError):
            return
        if was is not None and tuple(now) != tuple(was):
            logger.warning(
                "the Sentinels name %s:%s the master of %s now, no longer %s:%s: this process's Redis "
                "connections move to it",
                *now,
                pool.service_name,
                *was,
            )


def newest_first(manager: Sentinel, service: str, views: dict | None = None) -> None:
    """Put first in `manager`'s list the Sentinel whose view of `service` is the newest: the
    highest config-epoch among those that answer and name a master that is not down. redis-py
    takes the first Sentinel that names a master not down, and keeps it first: a Sentinel cut
    off with the master from the others (the minority side of a partition) still names the
    old master, which still takes writes, while the others promoted a replica (a higher
    config-epoch); every process kept writing to the old master until the partition healed,
    and then the Sentinels made it a replica and dropped all it had taken. `views`: answers
    already had this round, by the Sentinel's address (a Sentinel that does not answer costs
    its socket_timeout once a round, not once a pool)."""
    views = {} if views is None else views
    best, best_epoch = 0, -1
    for i, sentinel in enumerate(list(manager.sentinels)):
        kw = sentinel.connection_pool.connection_kwargs
        where = (kw.get("host"), kw.get("port"), service)
        if where not in views:
            try:
                views[where] = sentinel.sentinel_master(service)
            except (redis.RedisError, OSError):
                views[where] = None
        state = views[where]
        if state and manager.check_master_state(state, service) and state["config-epoch"] > best_epoch:
            best, best_epoch = i, state["config-epoch"]
    if best:
        sentinels = manager.sentinels
        sentinels[0], sentinels[best] = sentinels[best], sentinels[0]


_FOLLOWER = _Follower()
os.register_at_fork(after_in_child=_FOLLOWER.forked)


def _master_credentials(url: str) -> dict:
    """The user, password and TLS of [kvdb] url, for a master found through Sentinel."""
    from redis.connection import parse_url

    found = {k: v for k, v in parse_url(url).items() if k in ("username", "password") and v}
    if url.startswith("rediss://"):
        found["ssl"] = True
    return found


def check_redis(settings: RedisSettings) -> None:
    """Raise CoordError with one clear line unless Redis answers PING."""
    client = connect(settings)
    try:
        with translate(f"Redis at {describe(settings)}"):
            client.ping()
    finally:
        client.close()


FAILOVER_WAIT = 20.0  # s: how long a start waits for Sentinel to name a master that answers


def through_failover(
    settings: RedisSettings,
    check: Callable[[], T],
    say: Callable[[str], None],
    wait: float = FAILOVER_WAIT,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """check(), retried for up to `wait` seconds while a Sentinel answers but the master it
    names is down or does not answer yet (a failover under way: promoting a replica takes
    Sentinel its down-after-milliseconds and more). Said once, through say(). Without
    Sentinel, or when no Sentinel answers or none monitors the master, the first CoordUnavailable
    is raised at once: waiting would not change it."""
    deadline = clock() + wait
    said = ""
    while True:
        try:
            return check()
        except CoordUnavailable as e:
            seen = sentinel_sees(settings) if settings.sentinels else None
            if seen is None or isinstance(e, CoordRefused):
                raise
            if clock() >= deadline:
                raise CoordUnavailable(f"{e}; waited {wait:g} s for a failover ({seen})") from e
            if not said:
                said = seen
                say(f"waiting up to {wait:g} s for Sentinel's master to answer ({seen})")
            time.sleep(0.5)


def sentinel_sees(settings: RedisSettings) -> str | None:
    """What the first Sentinel that answers says of the master: its address and flags, or that
    a failover is under way. None when no Sentinel answers or none monitors the master."""
    for host, port in settings.sentinels:
        one = redis.Redis(
            host=host,
            port=port,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.socket_timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            state: dict = one.sentinel_master(settings.sentinel_master)  # type: ignore[assignment]
        except redis.ResponseError:  # "No such master with that name"
            return None
        except (redis.RedisError, OSError):
            continue
        finally:
            one.close()
        where = f"{state['ip']}:{state['port']}"
        return f"Sentinel {host}:{port}: master {settings.sentinel_master} at {where}, {state['flags']}"
    return None


def accepts_anonymous(settings: RedisSettings) -> bool:
    """True when the Redis in `settings` answers PING without any user or password (anyone
    who can reach it can then forge entries and read queued messages). False when it asks for
    credentials, cannot be reached, or is found through Sentinel (not checked here)."""
    if settings.sentinels:
        return False
    from redis.connection import parse_url

    opts = {k: v for k, v in parse_url(settings.url).items() if k not in ("username", "password")}
    timeout = settings.socket_timeout
    # A pool takes every option parse_url gives, connection_class (rediss://: TLS) included.
    pool = redis.ConnectionPool(socket_timeout=timeout, socket_connect_timeout=timeout, **opts)
    client = redis.Redis(connection_pool=pool)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):  # NOAUTH, WRONGPASS, unreachable...
        return False
    finally:
        client.close()
        pool.disconnect()


def describe(settings: RedisSettings) -> str:
    if settings.sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in settings.sentinels)
        return f"sentinel {hosts} master {settings.sentinel_master}"
    return redact(settings.url)


def where(client: redis.Redis) -> str:
    """The Redis `client` talks to, as describe() says it: its URL without the password."""
    pool = client.connection_pool
    service = getattr(pool, "service_name", None)
    if service:  # behind Sentinel: the master they give now
        return f"the master the Sentinels give for {service}"
    kw = pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    user = kw.get("username") or ""
    auth = f"{user}:******@" if kw.get("password") else (f"{user}@" if user else "")
    return f"{scheme}://{auth}{kw.get('host')}:{kw.get('port')}/{kw.get('db') or 0}"


def move_now(  # noqa: PLR0913 - the lists, their ends, how many, and what it is called in errors
    client: redis.Redis, source: str, dest: str, ends: tuple[str, str], limit: int | None, what: str
) -> int:
    """LMOVE what `source` holds now (at most `limit`; None: all) to `dest`; returns how many moved. What
    comes into `source` meanwhile (a message parked again) is not moved twice. Each move is
    whole, so Redis failing half-way loses nothing: the CoordError says how many moved before
    (one more when Redis moved it but the connection broke before its answer) and that the rest
    stay in `source` (running it again moves them)."""
    moved = 0
    try:
        with translate(what):
            now = int(client.llen(source))
            for _ in range(now if limit is None else min(limit, now)):
                if client.lmove(source, dest, *ends) is None:  # type: ignore[arg-type]
                    break
                moved += 1
    except CoordError as e:
        if not moved:
            raise
        lost = f"or {moved + 1}: the last move's answer may have been lost"
        raise type(e)(f"{e}; {moved} moved before ({lost}), the rest stay in {source}") from e
    return moved


def text(reply: bytes | str) -> str:
    """A reply as str: every client here decodes replies (connect()), but redis-py's types
    also allow bytes."""
    return reply.decode() if isinstance(reply, bytes) else reply


def texts(replies: Iterable[bytes | str]) -> list[str]:
    return [text(r) for r in replies]


def blmove(client: redis.Redis, source: str, dest: str, timeout: float, ends: tuple[str, str]) -> str | None:
    """BLMOVE with a timeout in seconds that need not be whole (Redis 6 and later take that;
    redis-py's types say int)."""
    reply = client.blmove(source, dest, timeout, *ends)  # type: ignore[arg-type]
    return None if reply is None else text(reply)


ALLOW_OOM = "#!lua flags=allow-oom\n"  # Redis 7 and later: the script runs at maxmemory too


class OomScript:
    """A Lua script Redis runs at its maxmemory too (noeviction refuses every other write then:
    OOM), for a write that must not be refused there: a stopping ZeroMQ channel's hand-over,
    whose messages have no other copy. Redis 7's allow-oom flag; a Redis before 7 knows no
    flags (it cannot compile the script's first line): there the script runs without it, as
    before (refused at maxmemory), from the first refusal on."""

    def __init__(self, client: redis.Redis, body: str):
        self._flagged = client.register_script(ALLOW_OOM + body)
        self._plain = client.register_script(body)
        self._flags_known = True

    def __call__(self, keys: list, args: list) -> Any:
        if self._flags_known:
            try:
                return self._flagged(keys=keys, args=args)
            except redis.ResponseError as e:
                if "Error compiling script" not in str(e):
                    raise
                self._flags_known = False
        return self._plain(keys=keys, args=args)


REFUSES_WRITES = "Redis refuses writes"  # in every CoordRefused's text
ACL_REFUSES = "Redis's ACL refuses it to the user of [kvdb] url"  # in every CoordForbidden's text


def refuses_writes(e: Exception) -> str:
    """Why Redis refuses every write for now, if that is what `e` says ("" otherwise): its
    snapshots fail (MISCONF: often its disk is full), it is a replica (READONLY: a failover
    without Sentinel, or a URL naming a replica), or it is at its maxmemory (OOM)."""
    if isinstance(e, ReadOnlyError):
        return "READONLY: it is a replica"
    if isinstance(e, OutOfMemoryError):
        return "OOM: it is at its maxmemory"
    if isinstance(e, redis.ResponseError) and str(e).startswith("MISCONF"):
        return "MISCONF: it cannot save its snapshots; is its disk full?"
    return ""


# Redis's words when its ACL refuses a command, key or channel to a Lua script (no NOPERM, and
# the command not named: redis-cli ACL LOG names it), e.g. "The user executing the script can't
# run this command or subcommand script: SHA, on @user_script:22."
_SCRIPT_ACL = re.compile(r"The user executing the script (can't [^.]*?)(?: script: .*)?\.?$", re.DOTALL)


def _script_acl(e: Exception) -> str:
    """What Redis's ACL refused a script of ours ("" when `e` is not that), as a NOPERM says it."""
    found = _SCRIPT_ACL.search(str(e)) if isinstance(e, redis.ResponseError) else None
    return f"a script's command: this user {found.group(1)}" if found else ""


_PIPELINE_NOTE = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)


def _unannotated(e: Exception) -> str:
    """Redis's own words: redis-py puts "Command # N (COMMAND ARGS...) of pipeline caused
    error: " before an error in a transaction, which repeats the arguments (a whole entry)."""
    return _PIPELINE_NOTE.sub("", str(e))


# redis-py's MasterNotFoundError: no Sentinel named a master it sees up. The Sentinels may all
# be away, or not monitor that name, or see the master down without a majority of them to
# agree on a failover (or with no replica fit to be promoted)
NO_MASTER = (
    "no Sentinel of [kvdb] sentinels that answers names a master it sees up: none answers, none"
    " monitors [kvdb] sentinel_master, or they see the master down and have not promoted a replica"
)
# What answers is no Redis: not its protocol, e.g. an HTTP server's 'got "H" as reply type byte'
NOT_REDIS = (
    "what answers there does not speak Redis's protocol: another service on that port?"
    " ([kvdb] url says where)"
)


@contextlib.contextmanager
def translate(what: str, key: str = "") -> Iterator[None]:
    """Turn redis-py exceptions into CoordError('<what>: <reason>'): CoordUnavailable when Redis
    cannot be reached, CoordRefused when it refuses every write, CoordForbidden when its ACL
    refuses the command or key to this user, CoordDataError when it answered with another error
    (a bug, not an outage). `key`: the one key the commands inside touch, named in a WRONGTYPE's
    text ("(the key: KEY)"), which Redis's own does not name (zato.coord.health.wrong_key)."""
    try:
        yield
    except MasterNotFoundError as e:  # its text embeds a whole client repr: keep the line short
        reason = str(e).split(" : ")[0]
        raise CoordUnavailable(f"{what}: {reason} ({NO_MASTER})") from e
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as e:
        raise CoordUnavailable(f"{what}: {type(e).__name__}: {e}") from e
    except InvalidResponse as e:
        raise CoordUnavailable(f"{what}: {type(e).__name__}: {e}: {NOT_REDIS}") from e
    except NoPermissionError as e:
        said = _unannotated(e)
        raise CoordForbidden(f"{what}: {ACL_REFUSES} (NOPERM: {said}); grant it (docs/redis-acl.md)") from e
    except redis.RedisError as e:
        script_acl = _script_acl(e)
        if script_acl:
            grant = f"{ACL_REFUSES} (NOPERM: {script_acl}); grant it (docs/redis-acl.md)"
            raise CoordForbidden(f"{what}: {grant}") from e
        refusal = refuses_writes(e)
        if refusal:  # an outage of its own: it takes writes again once its operator mends it
            raise CoordRefused(f"{what}: {REFUSES_WRITES} ({refusal}): {_unannotated(e)}") from e
        said = _unannotated(e)  # in a transaction too
        named = f" (the key: {key})" if key and said.startswith("WRONGTYPE") else ""
        raise CoordDataError(f"{what}: {type(e).__name__}: {said}{named}") from e
    except OSError as e:
        raise CoordUnavailable(f"{what}: {e}") from e
