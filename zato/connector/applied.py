"""`zato conn edit ... --wait SECONDS`: whether the lease holder runs a connector with its new
definition yet, read from the status its supervisor writes to Redis on every change of its
children (zato.coord.lease.read_supervisor_status).

An edit restarts the connector (a new process: a new pid), renames it (the old name's child
goes, the new name's comes), or makes it inactive (its child goes). So the change is applied
once the holder lists, under the connector's name after the edit, a RUNNING child whose pid is
not the one that ran it before the edit (or no child at all, for one made inactive), and no
child under its old name. A new holder (a takeover meanwhile) runs what the ODB says, so that
counts too. That process must also say itself (its statistics, zato.coord.connector_stats)
that it works with the new settings: connected to its broker or bound (state running, or
blocked: connected, the broker holding publishes back), not still reconnecting or refused,
so an edit that points a connector at a broker it cannot reach is not said to be applied.
`verdict` decides from one status; `wait` polls it.

An edit of a connection definition (amqp-def, ibm-mq-def) restarts every active connector that
connects through it: it is applied once each of them is, as above (`Expect.of_def_edit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from zato.common.errors import CoordError
from zato.connector.base import spec_name
from zato.coord import connector_stats
from zato.coord.lease import read_supervisor_status
from zato.odb import connectors
from zato.odb.engine import ODB

POLL = 0.1  # seconds between two reads of the holder's status
WORKING = ("running", "blocked")  # a connector's own states once it connected (or bound)


@dataclass(frozen=True)
class Expect:
    """What the holder runs once an edit is applied."""

    name: str  # KIND:NAME after the edit
    active: bool
    pid_before: int | None  # the pid that ran it before the edit (None: none ran)
    old: str = ""  # KIND:OLD_NAME when it was renamed

    @classmethod
    def of_edit(cls, kind: str, name: str, view: dict, values: dict, before: Before) -> Expect | None:
        """From the definition's name and what ran before the edit, its view after and the
        values given; None when the edit changed nothing (the holder keeps what runs)."""
        if view == before.view and not any(f.secret for f in connectors.FIELDS[kind] if f.name in values):
            return None
        new, old = spec_name(kind, view["name"]), spec_name(kind, name)
        pid = _children(before.status).get(old, {}).get("pid")
        pid_before = pid if isinstance(pid, int) else None
        return cls(new, bool(view.get("is_active", True)), pid_before, old if old != new else "")

    @classmethod
    def of_def_edit(
        cls, kind: str, view: dict, values: dict, before: Before, users: list[str]
    ) -> tuple[Expect, ...] | None:
        """One Expect for each of `users` (KIND:NAME of the active connectors connecting through
        the definition) after an edit of definition `kind`; None when the edit changed nothing."""
        if view == before.view and not any(f.secret for f in connectors.FIELDS[kind] if f.name in values):
            return None
        children = _children(before.status)
        pids = {user: children.get(user, {}).get("pid") for user in users}
        return tuple(cls(user, True, pid if isinstance(pid, int) else None) for user, pid in pids.items())


@dataclass(frozen=True)
class Before:
    """A definition's public view and the holder's status, read before an edit."""

    view: dict
    status: dict | None


def before_edit(odb: ODB, client: redis.Redis, cluster: str, kind: str, name: str) -> Before:
    """What `Expect.of_edit` compares the edit with. The definition: DefinitionNotFound as the
    edit would say; the status: CoordError when Redis cannot say (the edit would fail too)."""
    return Before(connectors.get(odb, cluster, kind, name), read_supervisor_status(client, cluster))


def _children(doc: dict | None) -> dict[str, dict]:
    return {c["name"]: c for c in (doc or {}).get("children", [])}


def verdict(expect: Expect, doc: dict | None, stats: dict[str, dict] | None = None) -> str | None:
    """How the holder applied the edit, after `doc` (its status) and `stats` (the connectors'
    own, by KIND:NAME); None while it has not."""
    if doc is None:
        return None
    children, server = _children(doc), doc.get("server", "the lease holder")
    if expect.old in children:
        return None
    child = children.get(expect.name)
    if not expect.active:
        return None if child is not None else f"{server} stopped {expect.name}"
    if child is None or str(child.get("state")).upper() != "RUNNING":
        return None
    pid = child.get("pid")
    if pid is None or pid == expect.pid_before:
        return None
    own = (stats or {}).get(expect.name, {})
    if own.get("pid") != pid or own.get("state") not in WORKING:
        return None
    if own.get("state") == "blocked":  # applied, and connected: what it sends waits for the broker
        held = "connected, but the broker holds its publishes back (a resource alarm) until the alarm ends"
        return f"{server} runs {expect.name} with it (pid {pid}), {held}"
    return f"{server} runs {expect.name} with it (pid {pid})"


def verdict_all(
    expects: tuple[Expect, ...], doc: dict | None, stats: dict[str, dict] | None = None
) -> str | None:
    """How the holder applied the edit to each connector of `expects`, after `doc` and
    `stats`; None while one of them has not."""
    said = [verdict(expect, doc, stats) for expect in expects]
    return None if any(v is None for v in said) else "; ".join(v for v in said if v)


def seen_all(expects: tuple[Expect, ...], doc: dict | None, stats: dict[str, dict] | None = None) -> str:
    """What the holder's status says of the connectors of `expects` it has not applied the edit to."""
    if doc is None:
        return seen(expects[0], doc)
    return "; ".join(seen(e, doc, stats) for e in expects if verdict(e, doc, stats) is None)


def seen(expect: Expect, doc: dict | None, stats: dict[str, dict] | None = None) -> str:
    """What the holder's status says of the connector, for a wait that ran out."""
    if doc is None:
        return "no server holds the lease (none runs connectors): it applies once one takes it"
    child = _children(doc).get(expect.name)
    server = doc.get("server", "the lease holder")
    if child is None:
        still = f" (it still runs {expect.old})" if expect.old in _children(doc) else ""
        return f"{server} runs no {expect.name}{still}"
    pid = child.get("pid")
    said = f"{server} has {expect.name} {child.get('state')}, pid {pid}"
    if pid is not None and pid == expect.pid_before:
        said += " (the one from before the edit)"
    elif str(child.get("state")).upper() == "RUNNING" and pid is not None:
        own = (stats or {}).get(expect.name, {})
        if own.get("pid") != pid:
            said += ", which has not said how it works yet"
        elif own.get("state") not in WORKING:
            said += f", not working: {own.get('state')}"
            return f"{said}: {own['last_error']}" if own.get("last_error") else said
    error = child.get("last_error")
    return f"{said}: {error}" if error else said


def wait(  # noqa: PLR0913 - the cluster, what to expect, how long, and the clock's seams
    client: redis.Redis,
    cluster: str,
    expect: Expect | tuple[Expect, ...],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str | None, str, float]:
    """(how it was applied or None, what the status said last, seconds waited); `expect` may
    be several connectors' (a definition's edit): applied once each of them is."""
    expects = expect if isinstance(expect, tuple) else (expect,)
    start = clock()
    doc: dict | None = None
    said = ""
    while True:
        try:
            doc = read_supervisor_status(client, cluster)
            stats = connector_stats.read(client, cluster, [e.name for e in expects if e.active])
            said = seen_all(expects, doc, stats)
        except CoordError as e:
            said = f"cannot read the lease holder's status: {e}"
        else:
            done = verdict_all(expects, doc, stats)
            if done is not None:
                return done, said, clock() - start
        if clock() - start >= timeout:
            return None, said, clock() - start
        sleep(POLL)
