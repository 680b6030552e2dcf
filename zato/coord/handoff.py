"""A channel connector's hand-off: what a stopping connector had received but not processed (a
ZeroMQ channel's socket queue), for the channel's next connector on any server, taken at least
once the way the outgoing connectors take their messages (zato.coord.queues.TakenLists).

    stopping connector:  LPUSH handoff                                    (hand_over)
    next connector:      fenced LMOVE handoff -> handoff:processing        (take_many: nothing
                         moves for an epoch older than the newest)
                         invoke the service
                         LREM handoff:processing once the service answered, or the message
                         was given up on                                   (done)
                         stopped before that: LREM, RPUSH back to the taking end (give_back)
    start, and now and then: what is in handoff:processing and not its own is run again
                         (leftovers): a connector killed (SIGKILL, its host gone) between the
                         take and the answer loses nothing; duplicates, never loss.
    channel deleted:     both lists deleted and handoff:deleted set (drop): a connector still
                         stopping then hands nothing over (hand_over and give_back answer
                         False) and says how many it dropped.
    channel renamed:     in one script, both lists move to the new name (taking end first)
                         and handoff:OLD:renamed = NEW is set (rename): the old connector,
                         still stopping, follows it (and on through later renames) and hands
                         over, gives back and acknowledges where the new one reads. Each of its
                         scripts refuses (-1, resolved again) when the name it was given was
                         renamed meanwhile, so none lands under a name nobody reads.
    who is alive:        each connector adds its token ("EPOCH:ID") to handoff:NAME:takers and
                         keeps handoff-alive:TOKEN for LIVE_TTL, refreshed every BEAT seconds
                         (beat), and at its exit takes both away (leave); a rename adds the old
                         name's takers to the new name's. The processing list is the channel's,
                         not one connector's: a connector runs what it holds that is not its
                         own only while no other connector of the channel of its epoch or a
                         newer one is alive, so an edit's old connector, still running what it
                         took, is not run twice by the new one. Older epochs: the lease says
                         they are gone or fenced, but the old holder's may still wait for
                         calls its servers accepted before the epoch moved: beat_counts counts
                         them apart, and a ZeroMQ channel's connector waits for them within a
                         bound (zato.connector.zmq_alive, whose thread beats, not the main
                         loop).
    how long a marker lives: handoff:NAME:deleted and :renamed have no TTL while a connector
                         registered under NAME has not left (a stop however late still finds
                         them); once the last one left, or when none had registered, they live
                         DELETED_TTL more (a connector started from a definition read just
                         before the change). One killed (it never leaves) keeps them until a
                         channel of that name is made again (reopen). Tokens of an older epoch
                         whose alive key lapsed are forgotten (by the beats of the channel's
                         current name, and by drop and rename): a connector paused past its
                         lease and then DELETED_TTL past its channel's deletion can still
                         recreate its list (its own token gone, nothing remembers it).

Bodies are bytes. The client given decodes replies as latin-1 (`connect(..., encoding=
"latin-1")`), which maps each byte to one character and back: a body is stored as its own
bytes (as before this module existed) and comes back unchanged (as_raw, as_body).
"""

from __future__ import annotations

import logging
import uuid
from typing import NamedTuple

import redis
from redis.commands.core import Script

from zato.common.errors import CoordDataError, CoordError
from zato.coord import parse
from zato.coord.changes import Change
from zato.coord.client import OomScript, translate
from zato.coord.keys import Keys
from zato.coord.queues import TakenLists

logger = logging.getLogger("zato.coord.handoff")

ENCODING = "latin-1"  # the hand-off client's: one character per byte, both ways
DELETED_TTL = 3600  # s a marker lives once no connector of its name is left (see the module)
LIVE_TTL = 10  # s a connector's alive key lives unrefreshed (its own thread beats, zmq_alive)
BEAT = 1.0  # s between a connector's refreshes of its alive key
MAX_HOPS = 16  # renames followed from a connector's own name to the channel's current one

# The channel's current name's lists are KEYS 1-4: queue, processing, deleted, renamed; a
# renamed one set means it was renamed after it was looked up: -1, look it up again.

# KEYS: queue, processing, deleted, renamed.  ARGV: the messages.  -> 1 pushed, 0 (deleted) not.
_HAND_OVER = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for i = 1, #ARGV do
  redis.call('LPUSH', KEYS[1], ARGV[i])
end
return 1
"""

# KEYS: queue, processing, deleted, renamed, own processing.  ARGV: the messages.
# -> 1 given back, 0 dropped (deleted). The lists' types are checked before the first LREM: a
# queue of another type (a Redis writer's) failed the RPUSH after the LREMs, and they were lost.
_GIVE_BACK = (
    parse.TYPES_LUA
    + """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local deleted = redis.call('EXISTS', KEYS[3]) == 1
want(KEYS[5], 'list')
want(KEYS[2], 'list')
if not deleted then want(KEYS[1], 'list') end
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[5], -1, ARGV[i]) == 0 then redis.call('LREM', KEYS[2], -1, ARGV[i]) end
end
if deleted then return 0 end
for i = 1, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
return 1
"""
)

# KEYS: queue, processing, deleted, renamed, own processing.  ARGV: the messages.  -> 1
_DONE = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[5], -1, ARGV[i]) == 0 then redis.call('LREM', KEYS[2], -1, ARGV[i]) end
end
return 1
"""


def _forget_gone(epoch: int, takers: int, prefix: int) -> str:
    """Lua that forgets the takers (KEYS[takers]) of an epoch older than the newest
    (KEYS[epoch]) whose alive key (prefix ARGV[prefix]) lapsed: killed, or paused past their
    lease (see the module). An epoch key that is not a number, or not a string (a Redis
    writer's, damaged), is taken as unknown: none is forgotten (the caller says so; the
    holder puts it back)."""
    return (
        parse.EPOCH_LUA
        + f"""
local newest = read_epoch(KEYS[{epoch}])
if newest then
  for _, t in ipairs(redis.call('SMEMBERS', KEYS[{takers}])) do
    local epoch = tonumber(string.match(t, '^(%d+):') or '0')
    if epoch < newest and redis.call('EXISTS', ARGV[{prefix}] .. t) == 0 then
      redis.call('SREM', KEYS[{takers}], t)
    end
  end
end
"""
    )


# KEYS: old queue, old processing, old renamed, new queue, new processing, new deleted, new
# renamed, old takers, new takers, epoch.  ARGV: the new name, the marker's TTL once no
# connector of the old name is left, the alive keys' prefix.  -> how many messages moved
# Every list and set checked first: one of another type (a Redis writer's) failed the script
# after the queue had moved, the change was undone in the ODB and the messages sat under a
# name no connector reads.
_RENAME = (
    parse.TYPES_LUA
    + """
for _, k in ipairs({KEYS[1], KEYS[2], KEYS[4], KEYS[5]}) do want(k, 'list') end
want(KEYS[8], 'set')
want(KEYS[9], 'set')
"""
    + _forget_gone(epoch=10, takers=8, prefix=3)
    + """
local n = 0
for _, pair in ipairs({{KEYS[1], KEYS[4]}, {KEYS[2], KEYS[5]}}) do
  while redis.call('LMOVE', pair[1], pair[2], 'RIGHT', 'LEFT') do n = n + 1 end
end
redis.call('DEL', KEYS[6], KEYS[7])
if redis.call('SCARD', KEYS[8]) > 0 then
  redis.call('SUNIONSTORE', KEYS[9], KEYS[9], KEYS[8])
  redis.call('SET', KEYS[3], ARGV[1])
else
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
end
return n
"""
)

# KEYS: deleted, renamed.  -> 1
_REOPEN = """
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: queue, processing, deleted, takers, epoch.  ARGV: the marker's TTL once no connector
# is left, the alive keys' prefix.  -> how many messages went
_DROP = (
    parse.TYPES_LUA
    + """
want(KEYS[1], 'list')
want(KEYS[2], 'list')
want(KEYS[4], 'set')
"""
    + _forget_gone(epoch=5, takers=4, prefix=2)
    + """
local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('SCARD', KEYS[4]) > 0 then
  redis.call('SET', KEYS[3], '1')
else
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
end
return n
"""
)

# KEYS: own alive, own takers, current takers.  ARGV: LIVE_TTL, the alive keys' prefix, own
# token, own epoch.  -> how many other connectors of the channel are alive: of this epoch or a
# newer one, of an older one (an older one's token whose alive key lapsed is forgotten)
_BEAT = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
local newer, older, mine = 0, 0, tonumber(ARGV[4])
for _, t in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if t ~= ARGV[3] then
    local epoch = tonumber(string.match(t, '^(%d+):') or '0')
    local alive = redis.call('EXISTS', ARGV[2] .. t) == 1
    if alive and epoch >= mine then
      newer = newer + 1
    elseif alive then
      older = older + 1
    elseif epoch < mine then
      redis.call('SREM', KEYS[3], t)
    end
  end
end
return {newer, older}
"""

# KEYS: own alive.  ARGV: own token, the markers' TTL, the prefix of the channels' hand-off
# keys, own name, MAX_HOPS.  Out of every takers set from its name through its renames; a
# marker whose name has no connector left lives the TTL from now.
_LEAVE = """
redis.call('DEL', KEYS[1])
local name = ARGV[4]
for _ = 1, tonumber(ARGV[5]) do
  local base = ARGV[3] .. name
  redis.call('SREM', base .. ':takers', ARGV[1])
  if redis.call('SCARD', base .. ':takers') == 0 then
    for _, marker in ipairs({base .. ':deleted', base .. ':renamed'}) do
      if redis.call('TTL', marker) == -1 then redis.call('EXPIRE', marker, ARGV[2]) end
    end
  end
  local renamed = redis.call('GET', base .. ':renamed')
  if not renamed then break end
  name = renamed
end
return 1
"""


class Others(NamedTuple):
    """The other connectors of a channel alive at a beat."""

    newer: int  # of the beating one's epoch or a newer one
    older: int  # of an older epoch (the old holder's, finishing what it runs)


def as_raw(body: bytes) -> str:
    return body.decode(ENCODING)


def as_body(raw: str) -> bytes:
    return raw.encode(ENCODING)


class Handoff(TakenLists):
    """The hand-off lists of one channel (Keys.channel_handoff and its processing list)."""

    def __init__(self, client: redis.Redis, cluster: str, kind: str, name: str, epoch: int = 0):
        """`client` decodes as latin-1 (see the module) for a connector; any client will do
        for drop, reopen and rename. epoch: the connector's fencing epoch (0: it takes nothing)."""
        k = self.keys = Keys(cluster)
        self.kind, self.name = kind, name
        queue, processing = k.channel_handoff(kind, name), k.channel_handoff_processing(kind, name)
        super().__init__(client, k.epoch, queue, processing, f"the hand-off of {kind} {name!r}", epoch)
        self.deleted = k.channel_handoff_deleted(kind, name)
        self.renamed = k.channel_handoff_renamed(kind, name)
        self.takers = k.channel_handoff_takers(kind, name)
        self.token = f"{epoch}:{uuid.uuid4().hex[:12]}"  # this connector's, among the takers
        self.alive = k.channel_handoff_alive(kind, self.token)
        self._beat = client.register_script(_BEAT)
        self._leave = client.register_script(_LEAVE)
        self._hand_over = OomScript(client, _HAND_OVER)  # at Redis's maxmemory too: no other copy
        self._give_back = client.register_script(_GIVE_BACK)
        self._done = client.register_script(_DONE)

    def _current(self) -> list[str]:
        """The lists of the channel's current name (this one's, followed through its renames):
        queue, processing, deleted, renamed."""
        name = self.name
        for _ in range(MAX_HOPS):
            new = self.client.get(self.keys.channel_handoff_renamed(self.kind, name))
            if not new:
                break
            name = new.decode() if isinstance(new, bytes) else str(new)
        k = self.keys
        return [
            k.channel_handoff(self.kind, name),
            k.channel_handoff_processing(self.kind, name),
            k.channel_handoff_deleted(self.kind, name),
            k.channel_handoff_renamed(self.kind, name),
        ]

    def _followed(self, script: Script | OomScript, raws: list[str], own: bool) -> bool:
        """Run `script` on the current name's lists (and this one's processing list, `own`);
        again when a rename came between the look-up and the script."""
        for _ in range(MAX_HOPS):
            keys = self._current() + ([self.processing] if own else [])
            got = int(script(keys=keys, args=raws))
            if got >= 0:
                return bool(got)
        raise CoordError(f"{self.what}: renamed {MAX_HOPS} times while it was being written to")

    def hand_over(self, raws: list[str]) -> bool:
        """Queue `raws` (oldest first) for the channel's next connector; False when the channel
        was deleted (nothing queued). CoordError when Redis refuses. Taken at Redis's maxmemory
        too (noeviction refuses other writes there, OOM; a Redis 7 or later): what the stopping
        connector holds has no other copy, and would be dropped after DRAIN."""
        if not raws:
            return True
        with translate(f"handing {len(raws)} messages over through {self.what}"):
            return self._followed(self._hand_over, raws, own=False)

    def give_back(self, raws: list[str]) -> bool:
        """Taken, not processed (the connector is stopping, or its epoch is stale): out of the
        processing list and back where the next connector takes first; False when the channel
        was deleted (only removed)."""
        if not raws:
            return True
        with translate(f"giving {len(raws)} messages back to {self.what}"):
            return self._followed(self._give_back, raws, own=True)

    def done(self, raws: list[str]) -> None:
        """These were processed: out of the processing list (the renamed channel's, where a
        rename moved them)."""
        if not raws:
            return
        with translate(f"acknowledging messages of {self.what}"):
            self._followed(self._done, raws, own=True)

    def drop(self, change: Change | None = None) -> int:
        """The channel was deleted: both lists go, and a connector of it still stopping hands
        nothing over (the marker lives while one may stop; see the module). How many went.
        Run as `change`'s Redis part (at most once; found out by change.settle() when its
        answer was lost; None: a change of its own)."""
        keys = [self.queue, self.processing, self.deleted, self.takers, self.epoch_key]
        args: list[str | int] = [DELETED_TTL, self.keys.channel_handoff_alive(self.kind)]
        dropped = self._change(change).run(_DROP, keys, args, f"deleting {self.what}")
        self._say_if_epoch_unknown(f"deleting {self.what}")
        return dropped

    def reopen(self, change: Change | None = None) -> None:
        """A channel of this name is made (again): its connectors hand over as usual. Run as
        `change`'s Redis part."""
        self._change(change).run(_REOPEN, [self.deleted, self.renamed], [], f"opening {self.what}")

    def rename(self, new_name: str, change: Change | None = None) -> int:
        """The channel is now called `new_name`: its lists move there in one script, and a
        connector of the old name, still stopping, hands over there (the marker lives while
        one may stop; see the module). How many messages moved. Run as `change`'s Redis part."""
        new = Handoff(self.client, self.keys.cluster, self.kind, new_name)
        old = [self.queue, self.processing, self.renamed]
        keys = [*old, new.queue, new.processing, new.deleted, new.renamed, self.takers, new.takers]
        args: list[str | int] = [new_name, DELETED_TTL, self.keys.channel_handoff_alive(self.kind)]
        doing = f"moving {self.what} to {new_name!r}"
        moved = self._change(change).run(_RENAME, [*keys, self.epoch_key], args, doing)
        self._say_if_epoch_unknown(doing)
        return moved

    def _say_if_epoch_unknown(self, doing: str) -> None:
        """After a drop or a rename: a lease epoch in Redis that is not a number (a Redis
        writer's, damaged) made it forget no connector of an older epoch. Before, the script
        failed on it (a Lua comparison with nil) until the holder put the epoch back."""
        try:
            with translate("reading the lease epoch"):
                parse.epoch(self.client.get(self.epoch_key))
        except CoordDataError as e:  # not a number, or not a string at all (WRONGTYPE)
            logger.warning(
                "%s: %s: taken as unknown, so no connector of an older epoch was forgotten"
                " (the lease holder puts the epoch back at its next renewal)",
                doing,
                e,
            )
        except CoordError:
            pass  # the change is made; this was only to say so

    def _change(self, change: Change | None) -> Change:
        return change or Change(self.client, self.keys.cluster, f"the change to {self.what}")

    def beat(self) -> int:
        """This connector is alive for LIVE_TTL more seconds (registered under its name and its
        channel's current one); how many other connectors of the channel, of its epoch or a
        newer one, are alive. CoordError when Redis refuses."""
        return self.beat_counts().newer

    def beat_counts(self) -> Others:
        """beat(), with the other connectors of the channel alive of an older epoch too."""
        with translate(f"refreshing this connector's alive key in {self.what}"):
            current = self._current()
            keys = [self.alive, self.takers, current[0] + ":takers"]
            args: list[str | int] = [
                LIVE_TTL,
                self.keys.channel_handoff_alive(self.kind),
                self.token,
                self.epoch,
            ]
            newer, older = self._beat(keys=keys, args=args)
            return Others(int(newer), int(older))

    def leave(self) -> None:
        """This connector exits: no longer alive, nor among the takers of its name and of the
        names it was renamed to; a marker no connector is left for lives DELETED_TTL more."""
        with translate(f"leaving {self.what}"):
            prefix = self.keys.channel_handoff(self.kind, "")
            args: list[str | int] = [self.token, DELETED_TTL, prefix, self.name, MAX_HOPS]
            self._leave(keys=[self.alive], args=args)
