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

Bodies are bytes. The client given decodes replies as latin-1 (`connect(..., encoding=
"latin-1")`), which maps each byte to one character and back: a body is stored as its own
bytes (as before this module existed) and comes back unchanged (as_raw, as_body).
"""

from __future__ import annotations

import redis

from zato.coord.client import translate
from zato.coord.keys import Keys
from zato.coord.queues import TakenLists

ENCODING = "latin-1"  # the hand-off client's: one character per byte, both ways
DELETED_TTL = 3600  # s a deleted channel's connector, still stopping, hands nothing over

# KEYS: queue, deleted.  ARGV: the messages.  -> 1 pushed, 0 (the channel was deleted) not.
_HAND_OVER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 1, #ARGV do
  redis.call('LPUSH', KEYS[1], ARGV[i])
end
return 1
"""

# KEYS: queue, processing, deleted.  ARGV: the messages.  -> 1 given back, 0 dropped (deleted)
_GIVE_BACK = """
for i = 1, #ARGV do
  redis.call('LREM', KEYS[2], -1, ARGV[i])
end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for i = 1, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
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
        for drop and reopen. epoch: the connector's fencing epoch (0: it takes nothing)."""
        keys = Keys(cluster)
        queue, processing = keys.channel_handoff(kind, name), keys.channel_handoff_processing(kind, name)
        super().__init__(client, keys.epoch, queue, processing, f"the hand-off of {kind} {name!r}", epoch)
        self.deleted = keys.channel_handoff_deleted(kind, name)
        self._hand_over = client.register_script(_HAND_OVER)
        self._give_back = client.register_script(_GIVE_BACK)
        self._drop = client.register_script(_DROP)

    def hand_over(self, raws: list[str]) -> bool:
        """Queue `raws` (oldest first) for the channel's next connector; False when the channel
        was deleted (nothing queued). CoordError when Redis refuses."""
        if not raws:
            return True
        with translate(f"handing {len(raws)} messages over through {self.what}"):
            return bool(self._hand_over(keys=[self.queue, self.deleted], args=raws))

    def give_back(self, raws: list[str]) -> bool:
        """Taken, not processed (the connector is stopping, or its epoch is stale): out of the
        processing list and back where the next connector takes first; False when the channel
        was deleted (only removed)."""
        if not raws:
            return True
        with translate(f"giving {len(raws)} messages back to {self.what}"):
            return bool(self._give_back(keys=[self.queue, self.processing, self.deleted], args=raws))

    def drop(self) -> int:
        """The channel was deleted: both lists go, and for DELETED_TTL seconds a connector of
        it still stopping hands nothing over. How many messages went."""
        with translate(f"deleting {self.what}"):
            return int(self._drop(keys=[self.queue, self.processing, self.deleted], args=[DELETED_TTL]))

    def reopen(self) -> None:
        """A channel of this name is made (again): its connectors hand over as usual."""
        with translate(f"opening {self.what}"):
            self.client.delete(self.deleted)
