"""What a process says of its Redis while Redis is away or refusing: one line when it starts
(what failed, which Redis, what to do), then at most one a minute with how many failures came
meanwhile, and one when Redis answers again ('Redis answers again after N s'), whichever of the
process's threads or greenlets saw it. The retries themselves are the callers' and keep their
pace: this only decides what is logged (zato.common.refusals).

Every process role (supervisor, workers, LB controller) reads what a failure is through kind()
and what_to_do() here, so each says the same of the same Redis: unreachable, refusing the
user's password, a read-only replica, refusing writes (MISCONF, OOM), or refusing one command:
its ACL (NOPERM), a key of another type (WRONGTYPE), another error. Those last three are said
per command and key, throttled the same way, since a success elsewhere does not end them."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from redis.exceptions import ReadOnlyError

from zato.common.errors import CoordDataError, CoordForbidden, CoordRefused
from zato.common.refusals import SAY_AGAIN_EVERY, Refusals

logger = logging.getLogger("zato.redis")  # every process role says its Redis outages under this name

# What to do, by what the failure says
CREDENTIALS = (
    "Redis refuses the user or password of [kvdb] url: make them agree with Redis's ACL"
    " (docs/redis-acl.md) in server.conf, lb.conf and dashboard.conf, or restore the password in Redis"
)
NOT_REDIS = "does not speak Redis's protocol"  # zato.coord.client.NOT_REDIS: an HTTP server at [kvdb] url
NO_MASTER = "names a master it sees up"  # zato.coord.client.NO_MASTER: no Sentinel did
UNREACHABLE = "is Redis running there, and reachable from this host? ([kvdb] url says where)"
SENTINELS = (
    "are the Sentinels of [kvdb] sentinels running and reachable from this host, and is the master"
    " they monitor as [kvdb] sentinel_master up, or can a majority of them agree to promote a replica?"
    " (docs/multi-host.md)"
)
REFUSING = "Redis takes writes again once its operator mends it (a full disk, its maxmemory)"
REPLICA = (
    "check [kvdb] url: it must name the master, not a replica (behind Sentinel: a failover may be"
    " under way; [kvdb] sentinels and sentinel_master say which master the Sentinels give)"
)
ODB_UNREACHABLE = (
    "is the ODB running there, and reachable from this host? ([odb] url in server.conf says where)"
)

# Kinds of failure (kind()): the first four are outages of the whole Redis, ended by any
# answer (a write's, for those that refuse writes); the last three refuse one command or key.
UNREACHABLE_KIND, CREDENTIALS_KIND = "unreachable", "credentials"
REPLICA_KIND, REFUSING_KIND = "replica", "refusing"
FORBIDDEN_KIND, WRONGTYPE_KIND, ERROR_KIND = "forbidden", "wrongtype", "error"

ACL_DOC = "docs/redis-acl.md"
GRANT = f"grant it ({ACL_DOC})"  # how every CoordForbidden's text ends (zato.coord.client)
# redis-py's ConnectionError behind Sentinel for a master that answered READONLY or UNBLOCKED:
# demoted by a failover; the next command asks the Sentinels again which is the master
DEMOTED = "The previous master is now a slave"
_COMMAND = re.compile(r"permissions to run the '([^']+)' command")
_NOPERM = re.compile(r"\(NOPERM: ([^)]*)\)")
_WRONGTYPE_KEY = re.compile(r"WRONGTYPE (\S+) holds a|\(the key: ([^)]+)\)")


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen and len(seen) < 10:
        seen.append(error)
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return seen


def is_replica(error: Exception) -> bool:
    """Redis answered that it is a replica: READONLY on a write, or a blocking take unblocked
    because its instance became one (a failover)."""
    if any(isinstance(e, ReadOnlyError) for e in _chain(error)):
        return True
    said = str(error)
    return "READONLY" in said or "-> replica" in said or DEMOTED in said


def kind(error: Exception, system: str = "Redis") -> str:
    """What `error` (a CoordError, as translate() makes them) says of Redis: one of the *_KIND."""
    said = str(error)
    if system != "Redis":
        return UNREACHABLE_KIND
    if isinstance(error, CoordForbidden):
        return FORBIDDEN_KIND
    if is_replica(error):
        return REPLICA_KIND
    if isinstance(error, CoordRefused):  # MISCONF, OOM
        return REFUSING_KIND
    if isinstance(error, CoordDataError):
        return WRONGTYPE_KIND if "WRONGTYPE" in said else ERROR_KIND
    if "WRONGPASS" in said or "AuthenticationError" in said or "NOAUTH" in said or "invalid username" in said:
        return CREDENTIALS_KIND
    return UNREACHABLE_KIND


# Outages in which Redis answers and refuses (the user's password, a replica, refusing writes): the
# connections it closes meanwhile are that outage's doing (a password change is followed by CLIENT
# KILL USER; a demoted master drops its clients), not news that it went away.
ANSWERED_KINDS = (CREDENTIALS_KIND, REPLICA_KIND, REFUSING_KIND)
# redis-py's words for an established connection that ended (closed by Redis, reset, a broken
# pipe), as opposed to one it could not make ("Error 111 connecting to ...", "Timeout
# connecting to server"): only the next attempt to connect says whether Redis went away.
_DROPPED = ("Connection closed by server", "while writing to socket", "Error while reading from")


def dropped(error: Exception) -> bool:
    """`error` is a connection to Redis that ended under a command, not one that could not be made."""
    said = str(error)
    return any(words in said for words in _DROPPED)


def answered(error: Exception) -> bool:
    """Redis answered with `error` (a refusal, a replica, refusing writes): reconnecting does
    not mend it, as it does a lost connection."""
    return isinstance(error, (CoordRefused, CoordDataError))  # CoordForbidden too


def wrong_key(error: Exception) -> str:
    """The key a WRONGTYPE error names ("" when Redis's own text does not say which)."""
    found = _WRONGTYPE_KEY.search(str(error))
    return (found.group(1) or found.group(2)) if found else ""


def noperm(error: Exception) -> str:
    """Redis's own words of a NOPERM ("" when `error` does not carry them)."""
    found = _NOPERM.search(str(error))
    return found.group(1) if found else ""


def what_to_do(error: Exception, system: str = "Redis", cluster: str = "") -> str:
    """One clause saying what mends `error`; `cluster`: its name, to name its keys (zato:NAME:*)."""
    found = kind(error, system)
    if system != "Redis":
        return ODB_UNREACHABLE
    keys = f"~zato:{cluster}:*" if cluster else "~zato:CLUSTER:* (the cluster's keys)"
    if found == FORBIDDEN_KIND:
        said = noperm(error)
        command = _COMMAND.search(said)
        if command:
            rule = f"+{command.group(1)}"
        elif "channel" in said:
            rule = keys.replace("~", "&", 1).replace("keys", "channels")
        elif "key" in said:
            rule = keys
        else:  # a script's command: Redis does not name it here
            rule = "the command `redis-cli ACL LOG 1` names"
        return f"add {rule} to the ACL rules of [kvdb] url's user ({ACL_DOC} lists the rules a cluster needs)"
    if found == WRONGTYPE_KIND:
        key = wrong_key(error)
        if key:
            return (
                f"{key} holds another type than the cluster keeps there (written by another Redis"
                f" client?): see what wrote it, then delete it (redis-cli DEL {key}; docs/trust.md)"
            )
        pattern = keys.split(" ")[0].lstrip("~")
        return (
            "a key of the cluster holds another type than the cluster keeps there (written by another"
            f" Redis client?): find it (redis-cli --scan --pattern '{pattern}', then TYPE), see what"
            " wrote it, then delete it (docs/trust.md)"
        )
    if found == ERROR_KIND:
        return "a bug, or a key of the cluster written by another Redis client (docs/trust.md)"
    if found == REPLICA_KIND:
        return REPLICA
    if found == REFUSING_KIND:
        return REFUSING
    if found == CREDENTIALS_KIND:
        return CREDENTIALS
    if NOT_REDIS in str(error):  # it is reachable: what answers is no Redis
        return "give [kvdb] url Redis's own host and port"
    if NO_MASTER in str(error):  # behind Sentinel: the Sentinels decide where Redis is (client.NO_MASTER)
        return SENTINELS
    return UNREACHABLE


# A Redis that fails again within a minute of answering (some connections still work while new ones
# are refused: its default user turned off under processes that still log in as it) is
# "flapping": its outage ends only once it has answered this long with no failure between, so
# it is not said in full and ended again at every turn (before: two lines every second or two).
STEADY = 10.0

# The first line of an outage by kind: "Redis unreachable (WHAT at WHERE)", "Redis at WHERE is a
# read-only replica (WHAT)"...; and what the line a minute says it still is
_STILL = {
    REPLICA_KIND: "still a read-only replica",
    REFUSING_KIND: "still refuses writes",
    CREDENTIALS_KIND: "still refuses the user or password",  # it answers: not "unreachable"
}


class _Refused:
    """One refused command or key: when first and last refused, last said, how many since."""

    def __init__(self, now: float) -> None:
        self.since = self.said_at = self.last = now
        self.unsaid = 0


class RedisHealth:
    """One per process: its threads and greenlets say Redis failing through it (failed) and
    answering (ok). `where`: which Redis (its URL without the password, or its Sentinels).
    `system`: "ODB" for the lease keeper's epoch floor, whose outages are the ODB's, not Redis's.
    `cluster`: its name, for the ACL rule or key pattern a refusal's line names."""

    MAX_REFUSALS = 32  # refused commands and keys remembered at once (the oldest forgotten)

    def __init__(  # noqa: PLR0913 - each has its default; the tests give the clock and the log
        self,
        where: str = "",
        every: float = SAY_AGAIN_EVERY,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
        system: str = "Redis",
        cluster: str = "",
    ) -> None:
        self.where, self.clock, self.log, self.system, self.cluster = where, clock, log, system, cluster
        self._lock = threading.Lock()
        self._said = Refusals(every)
        self._refused: dict[tuple[str, str], _Refused] = {}
        self.down_since: float | None = None
        self.refusing = False  # the outage is Redis refusing writes: a read that works ends nothing
        self.last_error = ""
        self.steady = STEADY
        self._ended: tuple[object, float] | None = None  # the last outage's kind, when it ended
        self._flapping = False  # this outage began within a minute of the last one's end
        self._answering_since: float | None = None  # flapping: answering with no failure since
        self._turns = 0  # flapping: times it answered between failures

    def failed(self, what: str, error: Exception, answered_is_bug: bool = True) -> None:
        """`answered_is_bug`: an error Redis answered (CoordDataError, but its ACL's or a key of
        another type) is a refusal of that command, said apart from outages; False where it is
        part of an outage (a blocking take that a failover unblocked: UNBLOCKED), said as one."""
        found = kind(error, self.system)
        if found in (FORBIDDEN_KIND, WRONGTYPE_KIND) or (found == ERROR_KIND and answered_is_bug):
            self._refusal(what, error, found)
            return
        now = self.clock()
        with self._lock:
            under_way = self._said.key if self.down_since is not None else None
            # A connection Redis closed while it refuses us: counted under that outage. Before, it
            # was said as 'Redis unreachable', and the next refusal said in full again (two lines
            # 'refuses the user or password' when a worker's subscription met the new password
            # before its invoke_async take met its killed connection).
            if found == UNREACHABLE_KIND and under_way in ANSWERED_KINDS and dropped(error):
                found = under_way
            else:
                # Redis answered: a read that works ends nothing
                self.refusing = isinstance(error, (CoordRefused, CoordDataError))
            self.last_error = str(error)
            after = None  # a relapse: seconds since the last outage of this kind ended
            if self.down_since is None:
                self.down_since = now
                if (
                    self._ended is not None
                    and self._ended[0] == found
                    and now - self._ended[1] < self._said.every
                ):
                    after = now - self._ended[1]
                self._flapping, self._turns = after is not None, 0
            self._answering_since = None
            since = self.down_since
        said = self._said.refused(now, found)
        if said == 0 and after is not None:
            self.log.warning(
                "%s, %.0f s after it answered: it fails and answers in turn (said again at most once"
                " every %g s with a count, and once it has answered for %g s with no failure)",
                self._first(found, what, error), after, self._said.every, self.steady,
            )  # fmt: skip
        elif said == 0:
            self.log.warning("%s (retried as before; %s, and when it answers)",
                             self._first(found, what, error), self._again)  # fmt: skip
        elif said:
            self.log.warning(
                "%s %s after %.0f s%s: %d more failure(s) since the last line, the latest (%s): %s",
                self.system, _STILL.get(found, "still unreachable"), now - since, self._at, said, what, error,
            )  # fmt: skip

    def _first(self, found: str, what: str, error: Exception) -> str:
        hint = what_to_do(error, self.system, self.cluster)
        if found == REPLICA_KIND:
            return f"{self.system}{self._at} is a read-only replica ({what}): {error}; {hint}"
        if found == REFUSING_KIND:
            return f"{self.system}{self._at} refuses writes ({what}): {error}; {hint}"
        return f"{self.system} unreachable ({what}{self._at}): {error}; {hint}"

    def _refusal(self, what: str, error: Exception, found: str) -> None:
        """Redis refused one command or key (NOPERM, WRONGTYPE, another error): said once in
        full, then at most once every `every` seconds with a count, per command or key; said in
        full again when it comes back after a quiet `every` (it was mended, then broken again)."""
        now, every = self.clock(), self._said.every
        # per ACL refusal (Redis's words name the command), key of another type, or else per call
        detail = noperm(error) if found == FORBIDDEN_KIND else wrong_key(error)
        key = (found, detail or what)
        with self._lock:
            self.last_error = str(error)
            one = self._refused.get(key)
            if one is None or now - one.last >= every:
                if len(self._refused) >= self.MAX_REFUSALS:
                    del self._refused[min(self._refused, key=lambda k: self._refused[k].last)]
                self._refused[key] = _Refused(now)
                said: int | None = 0
            else:
                one.unsaid += 1
                said = None
                if now - one.said_at >= every:
                    said, one.unsaid, one.said_at = one.unsaid, 0, now
                one.last = now
            since = self._refused[key].since
        if said == 0:
            hint = what_to_do(error, self.system, self.cluster)  # what to grant, not the error's "grant it"
            text = str(error).removesuffix(f"; {GRANT}")
            self.log.error(
                "%s%s refused %s: %s; %s (retried as before; %s)",
                self.system,
                self._at,
                what,
                text,
                hint,
                self._again,
            )
        elif said:
            self.log.error(
                "%s%s still refuses %s after %.0f s: %d more time(s) since the last line, the latest: %s",
                self.system, self._at, what, now - since, said, error,
            )  # fmt: skip

    def ok(self, wrote: bool = True, asked_at: float | None = None) -> None:
        """Redis answered; `wrote`: what it answered included a write. `asked_at` (this object's
        clock): when the call that answered was sent. An answer to a call sent before the outage
        began ends nothing: a lease renewal answered just before Redis stopped, its thread
        reporting after another thread's failure, said 'answers again' and the outage twice."""
        if self.down_since is None or (self.refusing and not wrote):
            return
        with self._lock:
            if self.down_since is None or (asked_at is not None and asked_at < self.down_since):
                return
            now = self.clock()
            turns = self._turns
            if self._flapping:  # ended only once it has answered `steady` s with no failure
                if self._answering_since is None:
                    self._answering_since, self._turns = now, turns + 1
                    return
                if now - self._answering_since < self.steady:
                    return
            since, self.down_since = self.down_since, None
            self._ended = (self._said.key, now)
            self._flapping, self._answering_since, self._turns = False, None, 0
        worked = self._said.worked(now)
        failures = worked[0] if worked else 0
        between = f", answering between them {turns} time(s)" if turns else ""
        self.log.info(
            "%s answers again%s after %.1f s (%d failure(s) meanwhile%s)",
            self.system,
            self._at,
            now - since,
            failures,
            between,
        )

    @property
    def _again(self) -> str:
        return f"said again at most once every {self._said.every:g} s with a count"

    @property
    def _at(self) -> str:
        return f" at {self.where}" if self.where else ""
