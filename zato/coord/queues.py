"""Durable hand-off of outgoing messages from server workers to outgoing connectors (flow 6).

    worker:     LPUSH out_queue                                   (push)
    connector:  wait: BLMOVE out_queue -> out_queue (RIGHT, RIGHT), a no-op rotation that
                blocks until a message waits; then one fenced script moves up to N messages
                out_queue -> out_processing (RIGHT, LEFT) only if the connector's epoch is
                still the newest                                   (take, take_many)
                publish to the broker, wait for the confirm
                LREM out_processing                               (done)
    on start:   whatever is left in out_processing is published again (leftovers): nothing is
                lost when a connector dies between taking and confirming (at-least-once).

Only one copy of a connector runs in the cluster (the lease), so its processing list is its own.
The move is fenced: an old holder's connector that was paused (SIGSTOP, a long GC, a VM
freeze) and resumes after a takeover cannot take a single message (StaleEpoch), whatever its
own clock says; only what it had taken before the pause can be published twice (duplicates,
never loss: the new holder publishes the processing list too).

Every message is signed as it is made (encode: zato.coord.signing.sign_outgoing, with a key of
the cluster secret) and its connector publishes only messages that verify: Redis is no proof of
who wrote a message. What moves messages between these lists moves their text as it is, so the
signature stays.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field

import redis

from zato.common import jsonenc
from zato.common.errors import ConnectorError, CoordError, LeaseLost
from zato.common.log import CID
from zato.coord import parse
from zato.coord.changes import Change
from zato.coord.client import OomScript, blmove, move_now, text, texts, translate
from zato.coord.keys import Keys
from zato.coord.signing import outgoing_signed, resign_outgoing, sign_outgoing

# Properties a service may set on an outgoing AMQP message (pika.BasicProperties names).
AMQP_PROPERTIES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)
# Levels a header's value may nest: deeper, send() refuses it, and a channel leaves it out of
# what the service reads (pika's encoder and decoder recurse some 450 levels deep at most under
# Python's default recursion limit).
MAX_HEADER_DEPTH = 100


# A move's fence (after parse.EPOCH_LUA): KEYS[1] the epoch key, ARGV[1] the mover's epoch;
# -1 (stale: nothing moved) under an older epoch than Redis holds, an error for an epoch key that
# is not a whole number.
_FENCE = """
local newest = read_epoch(KEYS[1])
if newest == nil then
  return redis.error_reply('the lease epoch in Redis (' .. KEYS[1] .. ') is not a whole number'
    .. ' (written by another Redis client?): nothing moved until the lease holder puts it back')
end
if tonumber(ARGV[1]) < newest then
  return -1
end
"""


# KEYS: epoch, queue, processing.  ARGV: my epoch, how many, how many bytes at most (0: no
# bound; the message that reaches it is the last, so one is always taken), then any messages
# the broker confirmed (removed from processing whatever the epoch: they were sent).
# -> the moved messages, or -1 (stale: nothing moved)
# An epoch key that is not 1-15 digits (another Redis client's: '1e300' would read as a newer
# epoch, text failed on a Lua comparison) is unknown: an error naming it, nothing moved. So is
# a queue or processing list of another type (want: WRONGTYPE KEY holds a ..., health.wrong_key).
_SETTLE_AND_MOVE = (
    parse.EPOCH_LUA
    + parse.TYPES_LUA
    + """
want(KEYS[2], 'list')
want(KEYS[3], 'list')
for i = 4, #ARGV do
  redis.call('LREM', KEYS[3], -1, ARGV[i])
end
"""
    + _FENCE
    + """
local out, size, cap = {}, 0, tonumber(ARGV[3])
for i = 1, tonumber(ARGV[2]) do
  local raw = redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT')
  if not raw then break end
  out[i] = raw
  size = size + #raw
  if cap > 0 and size >= cap then break end
end
return out
"""
)


# The Redis parts of definition changes (zato.coord.changes). KEYS: out_names (_LIST,
# _RELIST: then out_renamed). ARGV: "kind:name" (_RELIST: the old one, the new one, the ODB id).
# -> 1. A name made (created, or renamed to) is no longer a renamed one's old name: its lists
# are its own. A rename is recorded (Keys.out_renamed) with the relisting, in one script: once
# it is saved, nothing can forget that the old name's lists belong to the new one.
_LIST = "redis.call('SADD', KEYS[1], ARGV[1])\nredis.call('HDEL', KEYS[2], ARGV[1])\nreturn 1"
_UNLIST = "redis.call('SREM', KEYS[1], ARGV[1])\nreturn 1"
# A connector listing its own queue (OutQueue.register), unless its name is a renamed one's old
# name (a connector of the old definition starting while the rename was made). KEYS: out_names,
# out_renamed. ARGV: "kind:name".
_REGISTER = (
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end\n"
    "return redis.call('SADD', KEYS[1], ARGV[1])"
)
_RELIST = """
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({id = tonumber(ARGV[3])}))
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""

# What waits under a renamed connection's old name, moved to its current name, fenced.
# KEYS: epoch, out_renamed, then the old queue, processing and parked lists, then the new queue
# and parked lists.  ARGV: the mover's epoch, "kind:old name", how many to move at most, 1 to
# forget the rename if nothing is left under the old name, 1 to move only while the rename is
# recorded (a connection made again under the old name took its record away in the script that
# made it: what comes there is its own).  -> {moved, 1 if the rename was forgotten else 0}, or
# -1 (stale: nothing moved). Oldest first: each is pushed to the end the new connector takes from.
_MOVE_RENAMED = (
    parse.EPOCH_LUA
    + _FENCE
    + """
if ARGV[5] == '1' and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  return {0, 0}
end
local moved, cap = 0, tonumber(ARGV[3])
for _, pair in ipairs({{KEYS[3], KEYS[6]}, {KEYS[4], KEYS[6]}, {KEYS[5], KEYS[7]}}) do
  while moved < cap and redis.call('LMOVE', pair[1], pair[2], 'LEFT', 'RIGHT') do
    moved = moved + 1
  end
end
local forgotten = 0
local record = redis.call('HGET', KEYS[2], ARGV[2])
if record and moved < cap and ARGV[4] == '1' then
  local left = redis.call('LLEN', KEYS[3]) + redis.call('LLEN', KEYS[4]) + redis.call('LLEN', KEYS[5])
  if left == 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
    forgotten = 1
  end
end
return {moved, forgotten}
"""
)
MOVE_AT_ONCE = 5000  # messages moved by one script (Redis does nothing else meanwhile)

# The oldest parked message back to the queue, as the caller read it and (maybe) signed it now.
# KEYS: parked, queue. ARGV: the message as read, as queued. -> 1 moved, 0 the oldest is another
# now (moved meanwhile: read again). The queue's type is checked before the RPOP.
_MOVE_SIGNED = (
    parse.TYPES_LUA
    + """
want(KEYS[2], 'list')
if redis.call('LINDEX', KEYS[1], -1) ~= ARGV[1] then
  return 0
end
redis.call('RPOP', KEYS[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
"""
)


class StaleEpoch(LeaseLost):
    """Redis refused to move messages for a connector whose epoch is no longer the newest."""


def stale(what: str, epoch: int) -> StaleEpoch:
    return StaleEpoch(f"{what}: epoch {epoch} is no longer the newest: Redis moved nothing")


@dataclass(frozen=True)
class OutMessage:
    body: bytes
    exchange: str | None = None  # None: the connection's default
    routing_key: str | None = None
    properties: dict = field(default_factory=dict)
    id: str = ""


AMQP = "amqp"  # the queue kind of AMQP outgoing connections (Keys.out_queue; what signatures name)


def encode(
    data: object,
    exchange: str | None = None,
    routing_key: str | None = None,
    properties: dict | None = None,
    *,
    key: bytes,
) -> str:
    """One message as the JSON text stored in Redis, signed with `key`
    (zato.coord.signing.outgoing_key). `data` may be bytes, str or anything JSON can serialise
    (sent as JSON text). Raises ConnectorError for anything else."""
    props = dict(properties or {})
    unknown = sorted(set(props) - set(AMQP_PROPERTIES))
    if unknown:
        raise ConnectorError(f"unknown AMQP message properties: {', '.join(unknown)}")
    check_properties(props)
    msg = envelope(data, exchange=exchange, routing_key=routing_key, properties=props)
    try:
        return sign_outgoing(key, AMQP, json.dumps(msg))
    except (TypeError, ValueError) as e:
        raise ConnectorError(f"AMQP message properties are not JSON-serialisable: {e}") from None


_SHORT_STRINGS = frozenset(AMQP_PROPERTIES) - {"headers", "delivery_mode", "priority", "timestamp"}


def check_properties(props: dict) -> None:
    """ConnectorError naming the first AMQP property whose value AMQP cannot carry (None: not
    set). Values inside headers are left to the connector, which parks what it cannot frame."""
    for name, value in props.items():
        if value is None:
            continue
        if name in _SHORT_STRINGS:
            ok, need = (
                isinstance(value, str) and len(value.encode("utf-8")) <= 255,
                "a string of at most 255 bytes",
            )
        elif name == "delivery_mode":
            ok, need = type(value) is int and value in (1, 2), "1 (transient) or 2 (persistent)"
        elif name == "priority":
            ok, need = type(value) is int and 0 <= value <= 255, "an integer from 0 to 255"
        elif name == "timestamp":
            ok, need = type(value) is int and 0 <= value < 2**64, "a whole number of seconds since 1970"
        else:  # headers
            ok, need = isinstance(value, dict), "an object (a dict)"
            if ok and jsonenc.nests_deeper(value, MAX_HEADER_DEPTH):
                ok, need = False, f"nested at most {MAX_HEADER_DEPTH} levels deep"
        if not ok:
            raise ConnectorError(f"AMQP message property {name}: {value!r:.60} is not {need}")


def envelope(data: object, **fields: object) -> dict:
    """A message as stored in Redis: a fresh id, a timestamp, the CID of the request that sends
    it (if any: what the connector's log lines name), `fields`, and the body (bytes as base64,
    str as text, anything else as JSON text). ConnectorError for what JSON cannot take."""
    msg: dict = {"id": uuid.uuid4().hex, "ts": time.time(), **fields}
    cid = CID.get()
    if cid:
        msg["cid"] = cid
    if isinstance(data, bytes):
        msg["b64"] = base64.b64encode(data).decode("ascii")
    elif isinstance(data, str):
        msg["text"] = data
    else:
        try:
            msg["text"] = jsonenc.dumps(data)
        except (TypeError, ValueError) as e:
            raise ConnectorError(f"cannot send {type(data).__name__}: {e}") from None
    return msg


def body_of(msg: dict) -> bytes:
    """The body of a stored message (see envelope); KeyError/ValueError/TypeError if malformed."""
    if "b64" in msg:
        return base64.b64decode(msg["b64"])
    return msg["text"].encode("utf-8")


def decode(raw: str) -> OutMessage:
    """The message stored as `raw`; ConnectorError if it is not one of ours."""
    try:
        msg = jsonenc.loads(raw)
        body = body_of(msg)
        props = msg.get("properties") or {}
        if not isinstance(props, dict):
            raise TypeError("properties is not an object")
        return OutMessage(body, msg.get("exchange"), msg.get("routing_key"), props, msg.get("id", ""))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConnectorError(f"malformed outgoing message ({type(e).__name__}: {e})") from None


class TakenLists:
    """A queue and its processing list in Redis, taken from at least once: what is taken moves
    to the processing list (fenced by the taker's epoch) and leaves it once done; what a taker
    that died left there is its leftovers, for the next one. The outgoing connections' lists
    (OutQueue) and a channel connector's hand-off (zato.coord.handoff.Handoff) are two."""

    def __init__(  # noqa: PLR0913 - the keys, what they are called in errors, and the taker's epoch
        self, client: redis.Redis, epoch_key: str, queue: str, processing: str, what: str, epoch: int
    ):
        """epoch: the taker's fencing epoch (take and take_many refuse to move anything once a
        newer one exists); 0 for those that only push."""
        self.client = client
        self.epoch = epoch
        self.epoch_key = epoch_key
        self._settle_move = OomScript(client, _SETTLE_AND_MOVE)  # it frees memory: it runs at maxmemory too
        self.what = what
        self.queue = queue
        self.processing = processing

    def push(self, raw: str) -> None:
        with translate(f"queueing a message for {self.what}"):
            self.client.lpush(self.queue, raw)

    def take(self, timeout: float) -> str | None:
        """The oldest waiting message, moved to the processing list; None after `timeout`.
        StaleEpoch if a newer epoch exists. One waiting is taken at once, without BLMOVE (a
        write, so refused at Redis's maxmemory, where taking is what frees memory)."""
        got = self.take_many(1)
        if got:
            return got[0]
        with translate(f"waiting for a message for {self.what}", key=self.queue):
            waiting = blmove(self.client, self.queue, self.queue, timeout, ("RIGHT", "RIGHT"))
        if waiting is None:
            return None
        got = self.take_many(1)
        return got[0] if got else None

    def take_many(self, limit: int, max_bytes: int = 0) -> list[str]:
        """Up to `limit` waiting messages without blocking (oldest first), moved in one fenced
        script; with max_bytes, the one that brings their size to it is the last (so at least
        one moves, however large). StaleEpoch if a newer epoch exists (nothing is moved then)."""
        return self.settle_and_take([], limit, max_bytes)

    def settle_and_take(self, done: list[str], limit: int, max_bytes: int = 0) -> list[str]:
        """done(done) then take_many(limit, max_bytes), in one round trip to Redis: what the
        broker confirmed leaves the processing list (whatever the epoch: it was sent), then up
        to `limit` waiting messages are moved in, fenced (StaleEpoch if a newer epoch exists;
        the confirmed ones are removed all the same)."""
        if limit <= 0:
            self.done(done)
            return []
        doing = "acknowledging and taking messages of" if done else "taking messages for"
        with translate(f"{doing} {self.what}"):
            got = self._settle_move(
                keys=[self.epoch_key, self.queue, self.processing],
                args=[self.epoch, limit, max(max_bytes, 0), *done],
            )
        if got == -1:
            raise stale(self.what, self.epoch)
        return list(got)

    def done(self, raws: list[str]) -> None:
        """These were delivered: remove them from the processing list."""
        if not raws:
            return
        with translate(f"acknowledging messages of {self.what}", key=self.processing):
            pipe = self.client.pipeline(transaction=False)
            for raw in raws:
                pipe.lrem(self.processing, -1, raw)
            pipe.execute()

    def leftovers(self) -> list[str]:
        """Messages taken by an earlier run but not confirmed, oldest first."""
        with translate(f"reading unconfirmed messages of {self.what}"):
            return list(reversed(texts(self.client.lrange(self.processing, 0, -1))))

    def depth(self) -> tuple[int, int]:
        """(waiting, in processing)."""
        with translate(f"reading the queue depth of {self.what}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.llen(self.queue)
            pipe.llen(self.processing)
            waiting, processing = pipe.execute()
        return int(waiting), int(processing)


@dataclass(frozen=True)
class Moved:
    count: int  # messages moved
    forgotten: bool  # the rename's record went (asked to, and nothing was left)


@dataclass(frozen=True)
class Renamed:
    """A rename of an outgoing connection, as recorded with it (Keys.out_renamed)."""

    kind: str  # the queue kind: amqp, ibm-mq
    name: str  # the name it had
    ident: int | None  # its ODB id; None: the record is not one of ours


class OutQueue(TakenLists):
    """The Redis lists of one outgoing connection."""

    def __init__(self, client: redis.Redis, cluster: str, kind: str, name: str, epoch: int = 0):
        """epoch: the connector's fencing epoch (take and take_many refuse to move anything
        once a newer one exists); 0 for the workers, which only push."""
        keys = Keys(cluster)
        self.kind = kind
        queue, processing = keys.out_queue(kind, name), keys.out_processing(kind, name)
        super().__init__(client, keys.epoch, queue, processing, f"outgoing {kind} {name!r}", epoch)
        self.parked = keys.out_parked(kind, name)
        self.names, self.member = keys.out_names, f"{kind}:{name}"
        self.renamed = keys.out_renamed
        self._move_renamed = client.register_script(_MOVE_RENAMED)
        self._register = client.register_script(_REGISTER)

    def register(self) -> None:
        """Listed among the cluster's outgoing queues (Keys.out_names: /metrics) from now on,
        unless this name is a renamed connection's old one: a connector of the old definition
        that started while the rename was made listed the old name again, for good (seen in
        /metrics and zato cluster status as a connection that no longer exists)."""
        with translate(f"listing {self.what} among the outgoing queues"):
            self._register(keys=[self.names, self.renamed], args=[self.member])

    def listed(self, change: Change) -> None:
        """register(), as `change`'s Redis part (zato.coord.changes: at most once, found out
        when its answer was lost): a connection of this name was made (no longer a renamed
        one's old name, if it was)."""
        doing = f"listing {self.what} among the outgoing queues"
        change.run(_LIST, [self.names, self.renamed], [self.member], doing)

    def unlisted(self, change: Change) -> None:
        """Off the list of outgoing queues, as `change`'s Redis part: it was deleted."""
        change.run(_UNLIST, [self.names], [self.member], f"removing {self.what} from the outgoing queues")

    def relisted(self, new: OutQueue, change: Change, ident: int) -> None:
        """Listed under the new name `new` and no longer under this one, and the rename of
        definition `ident` (its ODB id) recorded (renames()), in one script, as `change`'s Redis
        part: it was renamed."""
        doing = f"listing {self.what} as {new.member!r} among the outgoing queues"
        change.run(_RELIST, [self.names, self.renamed], [self.member, new.member, ident], doing)

    def moved_to(self, new: OutQueue, forget: bool = False, recorded_only: bool = False) -> Moved:
        """What waits here, what a stopped connector left in processing and what it parked,
        moved to `new` (the connection was renamed and no connector of this name runs), taken
        there before what `new` holds already and in the order it was sent. Fenced: StaleEpoch
        (nothing moved) unless this queue's epoch is the newest. `forget`: the rename's record
        (renames()) goes too once nothing is left here. `recorded_only`: nothing moves once the
        record is gone (a connection made again under this name: what comes here is its own)."""
        moved, what = 0, f"moving the messages of {self.what} to {new.what}"
        keys = [self.epoch_key, self.renamed, self.queue, self.processing, self.parked, new.queue, new.parked]
        while True:
            with translate(what):
                args: list[str | int] = [
                    self.epoch,
                    self.member,
                    MOVE_AT_ONCE,
                    int(forget),
                    int(recorded_only),
                ]
                got = self._move_renamed(keys=keys, args=args)
            if got == -1:
                raise stale(what, self.epoch)
            moved += int(got[0])
            if int(got[0]) < MOVE_AT_ONCE:
                return Moved(moved, bool(got[1]))

    def park(self, raw: str) -> None:
        with translate(f"parking a message of {self.what}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(self.parked, raw)
            pipe.lrem(self.processing, -1, raw)
            pipe.execute()

    def parked_count(self) -> int:
        with translate(f"counting parked messages of {self.what}"):
            return int(self.client.llen(self.parked))

    def resend_parked(self, limit: int | None = None) -> int:
        """Move the messages parked now (at most `limit`; None: all) back to the queue (oldest
        first); returns how many moved. One that is parked again meanwhile (still undeliverable)
        is not moved twice."""
        what = f"re-sending parked messages of {self.what}"
        return move_now(self.client, self.parked, self.queue, ("RIGHT", "LEFT"), limit, what)

    def resend_parked_signing(self, key: bytes, limit: int | None = None) -> tuple[int, int]:
        """resend_parked, signing with `key` (zato.coord.signing.outgoing_key) each message
        that is not signed with it: queued by a version before outgoing messages were signed,
        or under another cluster secret, and parked by the connector for that. Only for messages
        an operator checked are the cluster's own: whatever a Redis writer put there is sent
        too. One round trip or two per message, each moved whole. (moved, of them signed now)."""
        moved = signed = 0
        now = 0
        move = self.client.register_script(_MOVE_SIGNED)
        try:
            with translate(f"re-sending parked messages of {self.what}"):
                now = int(self.client.llen(self.parked))
                for _ in range(now if limit is None else min(limit, now)):
                    raw = self.client.lindex(self.parked, -1)
                    if raw is None:
                        break
                    raw = text(raw)
                    ok = outgoing_signed(key, self.kind, raw)
                    out = raw if ok else (resign_outgoing(key, self.kind, raw) or raw)  # else: parked again
                    if move(keys=[self.parked, self.queue], args=[raw, out]) == 1:
                        moved, signed = moved + 1, signed + (out != raw)
        except CoordError as e:
            if not moved:
                raise
            raise type(e)(f"{e}; {moved} moved before, the rest stay in {self.parked}") from e
        return moved, signed


def registered(client: redis.Redis, cluster: str) -> list[tuple[str, str]]:
    """(queue kind, connection name) of every outgoing connection created or started since
    its queue was listed (OutQueue.register), active or not, sorted."""
    with translate("listing the outgoing queues"):
        members = texts(client.smembers(Keys(cluster).out_names))
    pairs = (m.partition(":") for m in members)
    return sorted((kind, name) for kind, _, name in pairs if kind and name)


def renames(client: redis.Redis, cluster: str) -> list[Renamed]:
    """The outgoing connections renamed and still watched (OutQueue.relisted), sorted."""
    with translate("reading the renamed outgoing connections"):
        records = client.hgetall(Keys(cluster).out_renamed)
    out = []
    for member, raw in records.items():
        kind, _, name = text(member).partition(":")
        try:
            ident = json.loads(text(raw))["id"]
        except (ValueError, TypeError, KeyError):
            ident = None
        out.append(Renamed(kind, name, ident if type(ident) is int else None))
    return sorted(out, key=lambda r: (r.kind, r.name))


def forget_rename(client: redis.Redis, cluster: str, kind: str, name: str) -> None:
    """No longer watch the old name `name` (a connection of that name exists again, or the
    renamed one was deleted)."""
    with translate(f"forgetting the rename of outgoing {kind} {name!r}"):
        client.hdel(Keys(cluster).out_renamed, f"{kind}:{name}")
