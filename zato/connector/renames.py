"""Renamed outgoing connections (AMQP, IBM MQ): what comes to the old name's Redis lists goes out
under the new name, whoever holds the lease and whenever it comes.

A rename is recorded in Redis with the rename itself (OutQueue.relisted: the old name and the
definition's ODB id, Keys.out_renamed). The lease holder's supervisor reads the records with the
definitions (`read`, its desired thread) and, never on its main loop (the thread that starts
and stops the connectors, which makes no Redis call), moves what waits under each old name to
the definition's current name: as the new name's connector starts (Manager.on_renamed, moved by
the supervisor's renames thread), and again after every read while the rename is watched
(`settle`, in the desired thread): until this holder has seen it for RENAME_WATCH seconds
(its own monotonic clock: no clock is shared) and nothing is left under the old name. So
neither of these is left in Redis for ever:

- what a holder had not moved yet when it lost the lease (killed, paused, stepped down) between
  the rename and the start of the new connector: the next holder moves it;
- what a service sent under the old name after the move (its worker had read the definition
  just before the rename's event): moved on the next read, within RECONCILE_EVERY.

Only while no connector of the old name runs on this holder (it publishes what its processing
list holds; moved and published by the new one too, it would be sent twice at once). The move is
fenced by the holder's epoch (StaleEpoch: nothing moved), like every take. A record whose old
name is used again (a connection created or renamed with it) is forgotten without a move: those
lists are that connection's; one whose definition was deleted is forgotten too (what waits under
its old name stays, as after `zato conn delete --force`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import redis

from zato.common.errors import CoordError
from zato.connector.base import spec_name
from zato.coord import queues
from zato.coord.queues import OutQueue, StaleEpoch

logger = logging.getLogger("zato.supervisor")

OUTGOING = ("amqp-outgoing", "ibm-mq-outgoing")
# s a holder watches a renamed connection's old name: far beyond the seconds a worker uses a
# definition it read (zato.odb.cached.RECHECK) or a service takes between reading it and sending
RENAME_WATCH = 600.0


@dataclass(frozen=True)
class Pending:
    """A recorded rename and what the ODB says of its definition now."""

    kind: str  # the connector kind: amqp-outgoing, ibm-mq-outgoing
    was: str  # the name it had
    now: str | None  # its name now (by its ODB id); None: deleted
    in_use: bool  # a definition of this kind goes by the old name again


class Step(Enum):
    WAIT = "wait"  # a connector of the old name still runs here: next time
    MOVE = "move"
    FORGET = "forget"  # the old name is another's again, or the connection is gone


def step(p: Pending, old_runs: bool) -> Step:
    """What to do with one recorded rename."""
    if p.in_use or p.now is None or p.now == p.was:
        return Step.FORGET
    return Step.WAIT if old_runs else Step.MOVE


def read(
    client: redis.Redis, cluster: str, names_by_id: Callable[[], dict[tuple[str, int], str]]
) -> list[Pending]:
    """The recorded renames, each with its definition's current name. names_by_id: (kind, ODB id)
    -> name of every outgoing definition, active or not (read only when a rename is recorded).
    CoordError (Redis), ODBError (the ODB)."""
    records = queues.renames(client, cluster)
    if not records:
        return []
    names = names_by_id()
    taken = {(kind, name) for (kind, _), name in names.items()}
    out = []
    for r in records:
        kind = f"{r.kind}-outgoing"
        if kind not in OUTGOING:
            continue
        now = names.get((kind, r.ident)) if r.ident is not None else None
        out.append(Pending(kind, r.name, now, (kind, r.name) in taken))
    return out


class Watched:
    """Since when (monotonic) this holder has watched each recorded rename."""

    def __init__(self) -> None:
        self.since: dict[tuple[str, str], float] = {}

    def long_enough(self, p: Pending, now: float) -> bool:
        return now - self.since.setdefault((p.kind, p.was), now) >= RENAME_WATCH

    def only(self, pending: list[Pending]) -> None:
        """Forget what is no longer recorded."""
        keep = {(p.kind, p.was) for p in pending}
        self.since = {k: v for k, v in self.since.items() if k in keep}


def move(  # noqa: PLR0913
    client: redis.Redis,
    cluster: str,
    epoch: int,
    kind: str,
    was: str,
    now: str,
    forget: bool = False,
    recorded_only: bool = False,
) -> queues.Moved:
    """What waits under `was` moved to `now` (fenced by `epoch`; OutQueue.moved_to)."""
    qkind = kind.removesuffix("-outgoing")
    return OutQueue(client, cluster, qkind, was, epoch).moved_to(
        OutQueue(client, cluster, qkind, now), forget, recorded_only
    )


def settle(  # noqa: PLR0913
    client: redis.Redis,
    cluster: str,
    epoch: int,
    pending: list[Pending],
    runs: Callable[[str], bool],
    watched: Watched,
    now: float,
) -> None:
    """Acts on each recorded rename (step); runs(connector name): one of that name runs here;
    `now`: monotonic. Says what it moved; a failure is said and tried again after the next read."""
    watched.only(pending)
    for p in pending:
        old = spec_name(p.kind, p.was)
        what = step(p, runs(old))
        try:
            if what is Step.FORGET:
                queues.forget_rename(client, cluster, p.kind.removesuffix("-outgoing"), p.was)
                _forgotten(p)
            elif what is Step.MOVE and p.now is not None:
                forget = watched.long_enough(p, now)
                moved = move(client, cluster, epoch, p.kind, p.was, p.now, forget, recorded_only=True)
                if moved.count:
                    logger.info(
                        "child %s: %d message(s) had come to its old name %r after it was renamed"
                        " (sent by a service that had not heard of the rename yet, or not moved by the"
                        " holder before it lost the lease): moved to %s, they go out through it",
                        spec_name(p.kind, p.now), moved.count, p.was, spec_name(p.kind, p.now),
                    )  # fmt: skip
                if moved.forgotten:
                    logger.info("%s renamed %s: its old name has been watched for %.0f s with nothing"
                                " left under it: no longer watched", old, p.now, RENAME_WATCH)  # fmt: skip
        except StaleEpoch as e:
            logger.warning("renamed outgoing connections: epoch %d no longer the newest, nothing moved: %s",
                           epoch, e)  # fmt: skip
            return
        except CoordError as e:
            logger.warning(
                "%s renamed %s: what waits under its old name stays there for now: %s", old, p.now, e
            )


def _forgotten(p: Pending) -> None:
    if p.in_use:
        logger.info("%s: a connection goes by that name again; it was renamed before: no longer watched",
                    spec_name(p.kind, p.was))  # fmt: skip
    elif p.now is None:
        logger.info("%s: the connection renamed from it was deleted; no longer watched (what waits"
                    " under that name stays in Redis)", spec_name(p.kind, p.was))  # fmt: skip
