"""The Redis part of a connection definition change (a ZeroMQ channel's hand-off lists moved or
dropped, an outgoing connection listed among the queues /metrics reads), run at most once and
found out afterwards when its answer was lost.

Redis may run a script and the connection break before its answer comes back: the caller
cannot tell from the error whether anything changed. So each part is one script that first
checks, then sets, a key of the change's own (Keys.definition_change):

    part:    the key exists -> do nothing (NOT_RUN); else do the work, SET key = its result
    settle:  after a lost answer, once Redis answers again: GET key; nothing there ->
             SET key "void" (in one script), and the part, still on its way, can never run

settle() answers the part's result (it ran) or None (it did not and never will), or raises
CoordError when Redis did not answer again within its wait (unknown), CoordDataError when the
key holds what no change writes (another Redis client's text: unknown too; the part, if still
on its way, finds the key there and does nothing). The key expires after
CHANGE_TTL seconds, far beyond any command still on its way to Redis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

import redis

from zato.common.errors import CoordDataError, CoordNotSent, CoordUnavailable
from zato.coord.client import text, translate
from zato.coord.keys import Keys

CHANGE_TTL = 3600  # s the key of a change is kept
SETTLE_WAIT = 10.0  # s a change whose answer was lost waits for Redis to answer again
SETTLE_PAUSE = 0.5  # s between two tries
VOID = "void"  # the key's value once a change gave up on its part: it never runs after
NOT_RUN = -2  # the part's answer when its change had given up on it

# The part's body is a Lua function returning a whole number; its keys come first and the
# change's key last; its arguments first and the key's TTL last.
_ONCE = """
local change = KEYS[#KEYS]
if redis.call('EXISTS', change) == 1 then return %d end
local function part()
%s
end
local result = part()
redis.call('SET', change, result, 'EX', ARGV[#ARGV])
return result
"""

# KEYS: the change's key.  ARGV: its TTL.  -> what the part gave, or "void" (it never runs now)
_SETTLE = """
local got = redis.call('GET', KEYS[1])
if got then return got end
redis.call('SET', KEYS[1], 'void', 'EX', ARGV[1])
return 'void'
"""


class Change:
    """One definition change's Redis part (see the module)."""

    def __init__(self, client: redis.Redis, cluster: str, what: str):
        """`what`: the change, for errors ("the deletion of zmq-channel orders")."""
        self.client, self.what = client, what
        self.key = Keys(cluster).definition_change(uuid.uuid4().hex)

    def run(self, body: str, keys: Sequence[str], args: Sequence[str | int], doing: str) -> int:
        """The part: the Lua function `body` over `keys` and `args`, at most once; its result.
        CoordNotSent when Redis could not be reached before it was sent (it did not run), another
        CoordError (`doing`: what it was doing) when Redis failed after: settle() says whether
        it ran."""
        script = self.client.register_script(_ONCE % (NOT_RUN, body))
        pool = self.client.connection_pool
        try:  # connected (again) before anything is sent: failing here, it did not run
            with translate(doing):
                pool.release(pool.get_connection())
        except CoordUnavailable as e:
            raise CoordNotSent(str(e)) from e
        with translate(doing):
            got = int(script(keys=[*keys, self.key], args=[*args, CHANGE_TTL]))
        if got == NOT_RUN:  # settle() came first: only a second run() of one change does that
            raise CoordDataError(f"{doing}: {self.what} had given up on it: nothing changed")
        return got

    def settle(
        self,
        wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int | None:
        """After run() failed: its result if Redis ran the part, None if it did not (and now
        never will). Tried for up to `wait` seconds (None: SETTLE_WAIT); the last CoordError
        once that is over."""
        settle = self.client.register_script(_SETTLE)
        deadline = clock() + (SETTLE_WAIT if wait is None else wait)
        while True:
            try:
                with translate(f"finding out whether Redis made its part of {self.what}"):
                    got = text(settle(keys=[self.key], args=[CHANGE_TTL]))
            except CoordUnavailable:
                if clock() + SETTLE_PAUSE > deadline:
                    raise
                sleep(SETTLE_PAUSE)
                continue
            if got == VOID:
                return None
            try:
                return int(got)
            except (TypeError, ValueError):  # no change writes that: another Redis client did
                raise CoordDataError(
                    f"the key of {self.what} in Redis, {self.key}, holds {str(got)[:40]!r}, which no"
                    " change writes (another Redis client's?)"
                ) from None
