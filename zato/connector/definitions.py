"""Changing connection definitions the way the CLI and the admin API both do it: update the
ODB, then publish a "connector" config event so the lease holder's supervisor restarts (or
stops) exactly the connectors whose config_hash changed, and workers drop cached definitions.
A deleted channel's hand-off (zato.coord.handoff: what its connectors handed to each other)
goes with it; the number of messages dropped so is logged. A renamed one's moves to the new
name, and its old connector, still stopping, hands over there (Handoff.rename).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple, NoReturn, TypeVar

import redis

from zato.common.errors import (
    ConnectorError,
    CoordDataError,
    CoordError,
    CoordNotSent,
    CoordRefused,
    CoordUnavailable,
    ODBUnavailable,
    ZatoError,
)
from zato.common.interrupts import Interrupts
from zato.coord import changes, events
from zato.coord.changes import Change
from zato.coord.handoff import Handoff
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue
from zato.odb import connectors
from zato.odb.cached import RECHECK
from zato.odb.engine import ODB

logger = logging.getLogger("zato.connector.definitions")

OUTGOING = ("amqp-outgoing", "ibm-mq-outgoing")  # kinds whose messages wait in Redis (zato.coord.queues)
HANDOFF_KINDS = ("zmq-channel",)  # channels whose stopping connector hands messages to the next one


# Without the event the servers read a changed definition all the same, only later: the lease
# holder's supervisor reads the definitions every RECONCILE_EVERY (zato.connector.supervisor),
# a worker one it uses RECHECK after it last read it (zato.odb.cached).
UNTOLD = (
    "told or not, they apply it within seconds: the lease holder reads the connection definitions"
    f" again every 5 s, and each worker a definition it uses {RECHECK:g} s after it last read it;"
    " nothing to do"
)


def _announce(client: redis.Redis, cluster: str, kind: str, name: str, what: str, was: str = "") -> None:
    """`was`: the name it had before it was renamed (the workers forget that one too: kept, a
    service could send through it for seconds more, and that would wait in Redis for ever)."""
    event = {"kind": "connector", "type": kind, "name": name, **({"was": was} if was else {})}
    events.announce(client, cluster, event, what, UNTOLD)


def _queue(client: redis.Redis, cluster: str, kind: str, name: str) -> OutQueue | None:
    """The Redis queue of an outgoing connection whose messages wait there; None for any other."""
    return OutQueue(client, cluster, kind.removesuffix("-outgoing"), name) if kind in OUTGOING else None


Say = Callable[[str], None]  # how a change that went through after all tells its user


def _said(say: Say | None) -> Say:
    return say or (lambda line: logger.warning("%s", line))


def _redis_part(  # noqa: PLR0913
    change: Change, part: Callable[[], int], undo: Callable[[], object], say: Say | None, ctrl_c: Interrupts
) -> int:
    """part(): the Redis part (one script: a channel's hand-off, the list of outgoing queues)
    of `change`, just written to the ODB; its result. When Redis fails, the ODB change is
    undone so that nothing is half-made and the same command, run again once Redis answers,
    does it all. When the answer was lost (the connection broke, Redis may have run it), the
    change waits for Redis to answer again and reads back whether the part ran: it did -> the
    change is complete, and say() tells so; it did not -> undone, as above (zato.coord.changes).
    A Ctrl-C held since the ODB write (`ctrl_c`): undone before Redis is asked; during the part
    one interrupts it (undone, as when its answer is lost); after it, held again."""
    if ctrl_c.release():
        _undo(
            undo,
            ConnectorError(f"{change.what} interrupted (Ctrl-C) before its Redis part was sent"),
            change.what,
            "nothing changed: the ODB change is undone",
        )
    got = _run_part(change, part, undo, say)
    ctrl_c.hold()  # what follows, the event, is not cut short either
    return got


def _run_part(change: Change, part: Callable[[], int], undo: Callable[[], object], say: Say | None) -> int:
    try:
        return part()
    except KeyboardInterrupt:  # Ctrl-C: whether Redis made its part is unknown
        _undo(undo, _interrupted(change), change.what, UNKNOWN)
    except CoordUnavailable as e:
        if isinstance(e, (CoordRefused, CoordNotSent)):  # Redis refused the part, or never got it
            _undo(undo, e, change.what, "nothing changed: run it again once Redis answers")
        try:
            got = change.settle()
        except CoordDataError as s:  # Redis answered with what no change writes
            _undo(undo, e, change.what, f"and whether Redis made its part of it is unknown: {s}; {REDO}")
        except CoordError as s:
            unknown = (
                f"and Redis did not answer again within {changes.SETTLE_WAIT:g} s to say whether it"
                f" made its part of it ({s}): {UNKNOWN}"
            )
            _undo(undo, e, change.what, unknown)
        except KeyboardInterrupt:
            _undo(undo, _interrupted(change, e), change.what, UNKNOWN)
        if got is None:
            _undo(undo, e, change.what, "nothing changed: Redis had not made its part; run it again")
        _said(say)(
            f"Redis's answer was lost ({e}), but Redis had made its part (read back once it answered):"
            f" {change.what} is complete"
        )
        return got
    except CoordError as e:
        _undo(undo, e, change.what, "nothing changed: run it again once Redis answers")


UNKNOWN = (
    "the ODB change is undone; run it again once Redis answers, which completes it whether or not"
    " Redis made its part"
)
REDO = "the ODB change is undone; run it again, which completes it whether or not Redis made its part"


# A Ctrl-C from the ODB write on is held (zato.common.interrupts): before, one in the instant
# between the ODB write and the Redis part left the ODB changed and Redis never told.
HELD = (
    "interrupted: finishing this change first (undone if Redis has not been asked yet, else completed); wait"
)


def _completed(ctrl_c: Interrupts, what: str, say: Say | None) -> None:
    """Says so when a Ctrl-C came (held) once Redis had made its part, or with no Redis part."""
    if ctrl_c.release():
        _said(say)(f"interrupted (Ctrl-C) once {what} was saved: completed all the same, not left half-made")


def _interrupted(change: Change, lost: CoordError | None = None) -> CoordUnavailable:
    """The error of a change interrupted (Ctrl-C) before Redis said whether it made its part."""
    why = f" (its answer was lost: {lost})" if lost else ""
    return CoordUnavailable(f"interrupted before Redis said whether it made its part of {change.what}{why}")


def _undo(undo: Callable[[], object], e: ZatoError, what: str, said: str) -> NoReturn:
    try:
        undo()
    except ZatoError as u:
        raise type(e)(f"{e}; {what} is saved in the ODB all the same (undoing it failed: {u})") from None
    raise type(e)(f"{e} ({said})") from None


T = TypeVar("T")
SETTLE_ODB = 10.0  # seconds a change whose commit's answer was lost waits for the ODB to answer again


def _read_back(e: ODBUnavailable, made: Callable[[], T | None], what: str, say: Say | None) -> T:
    """`e`: the ODB change of `what` failed. Unless the link broke once its commit was sent
    (e.at_commit), `e` as it is. Else whether the ODB made it is read back once it answers
    again (within SETTLE_ODB): made() is what it made, None for nothing. Made -> that, said, and
    the change goes on to its Redis part and its event (before, a 503 while the ODB had it, and
    neither was done: a renamed outgoing connection's queue stayed listed under its old name);
    not made -> nothing changed; no answer -> whether it was made is unknown."""
    if not e.at_commit:
        raise e
    deadline = time.monotonic() + SETTLE_ODB
    while True:
        try:
            got = made()
            break
        except ODBUnavailable as again:
            if time.monotonic() >= deadline:
                _raise(
                    e,
                    f"the link to the ODB broke once {what} was sent to be committed, and the ODB did"
                    f" not answer again within {SETTLE_ODB:g} s ({again}): whether it made it is"
                    " unknown; `zato conn list` says once it answers",
                )
            time.sleep(0.5)
    if got is None:
        _raise(e, f"nothing changed: the ODB had not made {what} (read back once it answered); run it again")
    _said(say)(
        f"the ODB's answer was lost ({e}), but the ODB had made {what} (read back once it answered):"
        " completing it"
    )
    return got


def _raise(e: ODBUnavailable, said: str) -> NoReturn:
    error = ODBUnavailable(f"{e} ({said})")
    error.where = e.where
    raise error from None


def _found(odb: ODB, cluster: str, kind: str, name: str) -> dict | None:
    try:
        return connectors.get(odb, cluster, kind, name)
    except connectors.DefinitionNotFound:
        return None


def create(  # noqa: PLR0913
    odb: ODB,
    client: redis.Redis,
    cluster: str,
    kind: str,
    values: dict,
    reserved: dict[int, str] | None = None,
    say: Say | None = None,
) -> dict:
    """`reserved`: ports no ZeroMQ socket may bind besides the servers' (connectors.create).
    `say`: tells the user of a change that went through although Redis's answer was lost
    (default: a warning in the log)."""
    events.reachable(client, cluster)  # an unreachable Redis changes nothing
    with Interrupts(HELD) as ctrl_c:
        ctrl_c.hold()
        try:
            view = connectors.create(odb, cluster, kind, values, reserved)
        except ODBUnavailable as e:
            made = connectors.validate(kind, values, creating=True)["name"]
            view = _read_back(e, lambda: _found(odb, cluster, kind, made), f"{kind} {made}", say)
        name = view["name"]
        change = Change(client, cluster, f"{kind} {name}")
        queue = _queue(client, cluster, kind, name)

        def part() -> int:
            if kind in HANDOFF_KINDS:  # one of this name deleted not long ago said: hand nothing over
                Handoff(client, cluster, kind, name).reopen(change)
            elif queue is not None:  # its depth in /metrics, even once it is made inactive
                queue.listed(change)
            return 1

        if kind in HANDOFF_KINDS or queue is not None:
            _redis_part(change, part, lambda: connectors.delete(odb, cluster, kind, name), say, ctrl_c)
        _announce(client, cluster, kind, view["name"], f"{kind} {view['name']}")
        _completed(ctrl_c, f"{kind} {name}", say)
    return view


def edit(  # noqa: PLR0913
    odb: ODB,
    client: redis.Redis,
    cluster: str,
    kind: str,
    name: str,
    values: dict,
    reserved: dict[int, str] | None = None,
    say: Say | None = None,
) -> dict:
    events.reachable(client, cluster)
    new_name = values.get("name")
    if new_name and new_name != name:  # its queue is named after it: what waits would stay behind
        refuse_if_waiting(client, cluster, kind, name, "renamed", force=False)
    before = connectors.get(odb, cluster, kind, name)
    ident = connectors.row_id(odb, cluster, kind, name) if kind in OUTGOING else 0  # kept by a rename
    with Interrupts(HELD) as ctrl_c:
        ctrl_c.hold()
        try:
            view = connectors.edit(odb, cluster, kind, name, values, reserved)
        except ODBUnavailable as e:
            view = _edited(odb, cluster, kind, name, values, e, say)
        renamed = view["name"]
        if renamed != name and (kind in HANDOFF_KINDS or kind in OUTGOING):
            back = {k: before[k] for k in values if k in before}
            change = Change(client, cluster, f"the change to {kind} {name}")

            def part() -> int:
                if kind in HANDOFF_KINDS:  # before the old connector hears of it
                    return Handoff(client, cluster, kind, name).rename(renamed, change)
                old, new = _queue(client, cluster, kind, name), _queue(client, cluster, kind, renamed)
                if old is not None and new is not None:  # recorded: the holder moves what comes there
                    old.relisted(new, change, ident)
                return 0

            undo = lambda: connectors.edit(odb, cluster, kind, renamed, back)  # noqa: E731
            moved = _redis_part(change, part, undo, say, ctrl_c)
            if moved:
                logger.info("%s %r renamed %r: %d handed-over messages moved", kind, name, renamed, moved)
        was = name if view["name"] != name else ""
        _announce(client, cluster, kind, view["name"], f"the change to {kind} {name}", was)
        _completed(ctrl_c, f"the change to {kind} {name}", say)
    return view


def _edited(  # noqa: PLR0913
    odb: ODB, cluster: str, kind: str, name: str, values: dict, e: ODBUnavailable, say: Say | None
) -> dict:
    """The view of `name` renamed, read back when the commit's answer of its rename was lost
    (_read_back); an edit that keeps the name has no Redis part: it is said to be run again."""
    new_name = connectors.validate(kind, values, creating=False).get("name")
    if not new_name or new_name == name:
        if e.at_commit:
            _raise(e, "whether the ODB made the change is unknown: run the same edit again to be sure")
        raise e

    def renamed() -> dict | None:
        return _found(odb, cluster, kind, new_name) if _found(odb, cluster, kind, name) is None else None

    return _read_back(e, renamed, f"the rename of {kind} {name} to {new_name}", say)


def inactive_note(client: redis.Redis, cluster: str, view: dict) -> str:
    """For an outgoing connection that is inactive (its connector stopped) while messages
    services sent through it wait in Redis: one line saying how many and that they go out once
    it is active again; "" otherwise."""
    if view.get("is_active", True) or view["kind"] not in OUTGOING:
        return ""
    try:
        count = waiting(client, cluster, view["kind"], view["name"])
    except CoordError as e:  # the change was made all the same
        return f"{view['kind']} {view['name']!r} is inactive; how many messages wait for it is unknown: {e}"
    if not count:
        return ""
    return (
        f"{view['kind']} {view['name']!r} is inactive: {count} message(s) services sent through it"
        " wait in Redis and go out once it is active again"
    )


def waiting(client: redis.Redis, cluster: str, kind: str, name: str) -> int:
    """How many messages services sent through outgoing connection `name` have yet to go out
    (its Redis queue and what its connector was publishing); 0 for any other kind."""
    queue = _queue(client, cluster, kind, name)  # http/sql outgoing queue nothing in Redis
    if queue is None:
        return 0
    queued, processing = queue.depth()
    return queued + processing


def resend_parked(  # noqa: PLR0913
    odb: ODB, client: redis.Redis, cluster: str, kind: str, name: str, limit: int | None = None
) -> int:
    """Put the messages outgoing connection `name` of `kind` (amqp-outgoing, ibm-mq-outgoing)
    parked (refused by the broker or the queue manager) back behind those waiting to go out (at
    most `limit`; None: all parked now); how many. DefinitionNotFound when nothing was parked and
    the cluster has no such connection."""
    return resend_parked_signing(odb, client, cluster, kind, name, None, limit)[0]


def resend_parked_signing(  # noqa: PLR0913
    odb: ODB,
    client: redis.Redis,
    cluster: str,
    kind: str,
    name: str,
    key: bytes | None,
    limit: int | None = None,
) -> tuple[int, int]:
    """resend_parked; with `key` (zato.coord.signing.outgoing_key), the parked messages not
    signed with it are signed as they go back (OutQueue.resend_parked_signing). (moved, of them
    signed now)."""
    queue = _queue(client, cluster, kind, name)
    if queue is None:
        raise ConnectorError(f"{kind!r}: only {' and '.join(OUTGOING)} connections park messages in Redis")
    if key is None:
        moved, signed = queue.resend_parked(limit), 0
    else:
        moved, signed = queue.resend_parked_signing(key, limit)
    if not moved and name not in {c["name"] for c in connectors.list_all(odb, cluster, kind)}:
        raise connectors.DefinitionNotFound(f"no {kind} named {name!r} in cluster {cluster}")
    return moved, signed


def refuse_if_waiting(client: redis.Redis, cluster: str, kind: str, name: str, what: str, force: bool) -> int:
    """ConnectorError unless nothing waits to go out through `name` (or `force`): deleted or
    renamed, its queued messages would be left in Redis with no connector to send them. The
    number waiting."""
    count = waiting(client, cluster, kind, name)
    if count and not force:
        hint = (
            " (or pass --force: they stay in Redis, and go out once a connection of that name is made again)"
        )
        raise ConnectorError(
            f"{kind} {name!r} cannot be {what}: {count} message(s) services sent through it have yet to"
            f" go out (Redis list {Keys(cluster).out_queue(kind.removesuffix('-outgoing'), name)});"
            " let them go out first" + (hint if what == "deleted" else "")
        )
    return count


class Deleted(NamedTuple):
    left: int  # messages services sent through an outgoing connection, left in Redis (--force)
    dropped: int  # messages a channel's connectors had handed over, deleted with it


def delete(  # noqa: PLR0913
    odb: ODB,
    client: redis.Redis,
    cluster: str,
    kind: str,
    name: str,
    force: bool = False,
    say: Say | None = None,
) -> Deleted:
    """Delete a definition; how many messages were left waiting for it (only with `force`) and
    how many its hand-off held (dropped with it: no connector would ever run them)."""
    events.reachable(client, cluster)
    left = refuse_if_waiting(client, cluster, kind, name, "deleted", force)
    before = connectors.get(odb, cluster, kind, name)
    made = {k: v for k, v in before.items() if k != "kind"}  # no secrets in these kinds (masked)
    change = Change(client, cluster, f"the deletion of {kind} {name}")
    queue = _queue(client, cluster, kind, name)

    def part() -> int:
        if kind in HANDOFF_KINDS:
            return Handoff(client, cluster, kind, name).drop(change)
        if queue is not None:
            queue.unlisted(change)
        return 0

    dropped = 0
    with Interrupts(HELD) as ctrl_c:
        ctrl_c.hold()
        try:
            connectors.delete(odb, cluster, kind, name)
        except ODBUnavailable as e:
            gone = lambda: None if _found(odb, cluster, kind, name) else True  # noqa: E731
            _read_back(e, gone, f"the deletion of {kind} {name}", say)
        if kind in HANDOFF_KINDS or queue is not None:
            undo = lambda: connectors.create(odb, cluster, kind, made)  # noqa: E731
            dropped = _redis_part(change, part, undo, say, ctrl_c)
        if dropped:
            logger.warning(
                "%s %r deleted: %d messages its connectors had received and handed over, not processed,"
                " were dropped with it",
                kind,
                name,
                dropped,
            )
        _announce(client, cluster, kind, name, f"the deletion of {kind} {name}")
        _completed(ctrl_c, f"the deletion of {kind} {name}", say)
    return Deleted(left, dropped)


def describe(view: dict) -> str:
    """One line for humans: `kind name: field=value ...` (password masked already), with what
    a value that stands for something else means: `max_in_flight=0 (the prefetch)`."""

    def shown(k: str, v: object) -> str:
        value, meaning = connectors.MEANING.get((view["kind"], k), (None, ""))
        return f"{k}={v} ({meaning})" if meaning and v == value else f"{k}={v}"

    fields = " ".join(shown(k, v) for k, v in view.items() if k not in ("kind", "name"))
    return f"{view['kind']} {view['name']}: {fields}"
