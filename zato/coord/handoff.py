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
    channel deleted:     both lists deleted and handoff:deleted set for DELETED_TTL (drop): a
                         connector still stopping then hands nothing over (hand_over and
                         give_back answer False) and says how many it dropped.
    channel renamed:     in one script, both lists move to the new name (taking end first)
                         and handoff:OLD:renamed = NEW is set for DELETED_TTL (rename): the old
                         connector, still stopping, follows it (and on through later renames)
                         and hands over, gives back and acknowledges where the new one reads.
                         Each of its scripts refuses (-1, resolved again) when the name it was
                         given was renamed meanwhile, so none lands under a name nobody reads.

Bodies are bytes. The client given decodes replies as latin-1 (`connect(..., encoding=
"latin-1")`), which maps each byte to one character and back: a body is stored as its own
bytes (as before this module existed) and comes back unchanged (as_raw, as_body).
"""

from __future__ import annotations

import redis
from redis.commands.core import Script

from zato.common.errors import CoordError
from zato.coord.changes import Change
from zato.coord.client import translate
from zato.coord.keys import Keys
from zato.coord.queues import TakenLists

ENCODING = "latin-1"  # the hand-off client's: one character per byte, both ways
DELETED_TTL = 3600  # s a deleted (renamed) channel's connector, still stopping, hands nothing over (follows)
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
# -> 1 given back, 0 dropped (deleted)
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[5], -1, ARGV[i]) == 0 then redis.call('LREM', KEYS[2], -1, ARGV[i]) end
end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for i = 1, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
return 1
"""

# KEYS: queue, processing, deleted, renamed, own processing.  ARGV: the messages.  -> 1
_DONE = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[5], -1, ARGV[i]) == 0 then redis.call('LREM', KEYS[2], -1, ARGV[i]) end
end
return 1
"""

# KEYS: old queue, old processing, old renamed, new queue, new processing, new deleted, new
# renamed.  ARGV: the new name, the TTL of old renamed.  -> how many messages moved
_RENAME = """
local n = 0
for _, pair in ipairs({{KEYS[1], KEYS[4]}, {KEYS[2], KEYS[5]}}) do
  while redis.call('LMOVE', pair[1], pair[2], 'RIGHT', 'LEFT') do n = n + 1 end
end
redis.call('DEL', KEYS[6], KEYS[7])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
return n
"""

# KEYS: deleted, renamed.  -> 1
_REOPEN = """
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: queue, processing, deleted.  ARGV: the TTL of deleted.  -> how many messages went
_DROP = """
local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return n
"""


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
        self._hand_over = client.register_script(_HAND_OVER)
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

    def _followed(self, script: Script, raws: list[str], own: bool) -> bool:
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
        was deleted (nothing queued). CoordError when Redis refuses."""
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
        """The channel was deleted: both lists go, and for DELETED_TTL seconds a connector of
        it still stopping hands nothing over. How many messages went. Run as `change`'s Redis
        part (at most once; found out by change.settle() when its answer was lost; None: a
        change of its own)."""
        keys, args = [self.queue, self.processing, self.deleted], [DELETED_TTL]
        return self._change(change).run(_DROP, keys, args, f"deleting {self.what}")

    def reopen(self, change: Change | None = None) -> None:
        """A channel of this name is made (again): its connectors hand over as usual. Run as
        `change`'s Redis part."""
        self._change(change).run(_REOPEN, [self.deleted, self.renamed], [], f"opening {self.what}")

    def rename(self, new_name: str, change: Change | None = None) -> int:
        """The channel is now called `new_name`: its lists move there in one script, and a
        connector of the old name, still stopping, hands over there (for DELETED_TTL seconds).
        How many messages moved. Run as `change`'s Redis part."""
        new = Handoff(self.client, self.keys.cluster, self.kind, new_name)
        old = [self.queue, self.processing, self.renamed]
        keys = [*old, new.queue, new.processing, new.deleted, new.renamed]
        doing = f"moving {self.what} to {new_name!r}"
        return self._change(change).run(_RENAME, keys, [new_name, DELETED_TTL], doing)

    def _change(self, change: Change | None) -> Change:
        return change or Change(self.client, self.keys.cluster, f"the change to {self.what}")
