"""A lease holder whose connector cannot reach its broker hands the lease to a server that may.

The lease follows Redis. A holder that reaches Redis but not the broker (a firewall rule, a
route lost, its host partitioned from the broker alone) kept the lease, and nothing was
consumed or sent for as long as that lasted, even while every other server reached the broker:
on the multi-host lab, a standby cut off from the broker won the lease when the holder's host
vanished, and not one of 100 messages was consumed in 40 s (tests/hosts/test_broker_reach.py).

So while it acts, the supervisor looks at its connectors' own state once a second (their
stats in Redis). When one has been reconnecting for HANDOVER_AFTER seconds in a row (server.conf
[lease] handover_after) and another live server has not handed the lease over lately, the
holder stops its connectors and releases the lease (the standbys wake at once, as after `zato
stop`), and notes in Redis, for YIELD_FOR seconds ([lease] yield_for), that it did so. For that
long it lets the others take the lease first (it takes it back when nobody has within the
lease's TTL), and no holder hands the lease to it.

A hand-over also notes the connector (`lease:handover:CONNECTOR`, naming the server that
handed over). A holder whose same connector cannot reach its broker either, within YIELD_FOR
seconds of that note, keeps the lease: two servers failing the same broker say the broker (or
the definition) is away, not one server's link, and moving the lease again would only restart
every connector once more. It renews the note while its connector stays stuck, so the lease
moves once for such an outage however long it lasts (a definition pointing at a broker that
is down for good would otherwise move it around the cluster every YIELD_FOR seconds, for
ever). Nothing is lost by a hand-over: unacked messages go back to their queue and outgoing
messages wait in Redis (DESIGN flows 5 and 6).

`Stuck` decides on the monotonic clock alone (tests/unit/test_handover.py); `Handover` is the
edge that reads Redis for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis

from zato.common.errors import CoordError
from zato.config.settings import LeaseSettings
from zato.coord import connector_stats
from zato.coord.client import translate
from zato.coord.keys import Keys
from zato.coord.port import Membership

logger = logging.getLogger("zato.supervisor")

HANDOVER_AFTER = LeaseSettings.handover_after  # seconds one connector reconnects before a hand-over
YIELD_FOR = LeaseSettings.yield_for  # seconds a server that handed over is not handed the lease again
CHECK_EVERY = 1.0  # seconds between looks at the connectors' state


class Stuck:
    """Since when each connector has been reconnecting without a break, as seen by observe()."""

    def __init__(self, after: float = HANDOVER_AFTER):
        self.after = after
        self._since: dict[str, float] = {}

    def observe(self, now: float, states: Mapping[str, str | None]) -> tuple[str, float] | None:
        """`states`: each running connector's state (None: no stats). Returns the connector
        that has been reconnecting longest and for how long, once that is `after` or more."""
        self._since = {n: self._since.get(n, now) for n, state in states.items() if state == "reconnecting"}
        if not self._since:
            return None
        name, since = min(self._since.items(), key=lambda item: item[1])
        return (name, now - since) if now - since >= self.after else None

    def reset(self) -> None:
        self._since.clear()


class Handover:
    """The holder's look at its connectors (due()) and the notes of the servers that handed over."""

    def __init__(
        self,
        client: redis.Redis,
        cluster: str,
        server: str,
        membership: Membership,
        after: float = HANDOVER_AFTER,
        yield_for: float = YIELD_FOR,
    ):
        self.client, self.server, self.membership = client, server, membership
        self.keys = Keys(cluster)
        self.cluster = cluster
        self.yield_for = yield_for
        self.after = after
        self.stuck = Stuck(after)
        self._next = 0.0
        self._said_alone = False

    def reset(self) -> None:
        """Not acting any more: start afresh the next time."""
        self.stuck.reset()
        self._next, self._said_alone = 0.0, False

    def due(self, now: float, children: list[str]) -> str | None:
        """While acting: why to hand the lease over now (logged, and noted in Redis), or None."""
        if now < self._next:
            return None
        self._next = now + CHECK_EVERY
        try:
            stats = connector_stats.read(self.client, self.cluster, children)
            found = self.stuck.observe(now, {n: stats.get(n, {}).get("state") for n in children})
            if found is None:
                self._said_alone = False
                return None
            name, seconds = found
            last = stats[name].get("last_error")
            why = f"connector {name} has been reconnecting for {seconds:.0f} s ({last})"
            before = self._handed_over_for(name)
            others = [] if before else self._candidates()
            if others:
                self._note(name, why)
        except CoordError:
            return None  # Redis away: the lease keeper decides then
        if before:
            if not self._said_alone:
                logger.warning(
                    "%s; %s handed the lease over for the same connector within %.0f s, so its broker "
                    "looks away for more than one server, not cut off from this one: keeping the lease "
                    "(its connectors retry)",
                    why,
                    before,
                    self.yield_for,
                )
            self._said_alone = True
            return None
        if not others:
            if not self._said_alone:
                logger.warning(
                    "%s; no other live server to hand the lease to (none, or each handed it over "
                    "within %.0f s): keeping the lease",
                    why,
                    self.yield_for,
                )
            self._said_alone = True
            return None
        logger.warning(
            "%s: handing the lease over to %s, which may reach it ([lease] handover_after %g s); "
            "%s lets them take it first for %g s ([lease] yield_for)",
            why,
            " or ".join(others),
            self.after,
            self.server,
            self.yield_for,
        )
        self.stuck.reset()
        return why

    def noted(self) -> bool:
        """This server handed the lease over lately: as a standby it lets the others take a free
        lease first (zato.coord.lease.LeaseKeeper, `yields`). CoordError when Redis cannot say."""
        with translate("reading the lease hand-over note"):
            return bool(self.client.exists(self.keys.lease_yield(self.server)))

    def _candidates(self) -> list[str]:
        """The other live servers (not draining) that have not handed the lease over lately."""
        names = sorted(
            m.name for m in self.membership.live_servers() if m.name != self.server and m.state == "running"
        )
        if not names:
            return []
        with translate("reading the lease hand-over notes"):
            notes = self.client.mget([self.keys.lease_yield(n) for n in names])
        return [n for n, note in zip(names, notes, strict=True) if note is None]

    def _handed_over_for(self, connector: str) -> str | None:
        """The other server that handed the lease over because of `connector` within yield_for
        (its note renewed for as long again: the outage goes on here too), else None."""
        key = self.keys.lease_handover(connector)
        with translate("reading the lease hand-over note of the connector"):
            server = self.client.get(key)
            if isinstance(server, bytes):
                server = server.decode("utf-8", "replace")
            if not server or server == self.server:
                return None
            self.client.pexpire(key, int(self.yield_for * 1000))
        return server

    def _note(self, connector: str, why: str) -> None:
        ttl = int(self.yield_for * 1000)
        with translate("noting the lease hand-over"):
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self.keys.lease_yield(self.server), why[:500], px=ttl)
            pipe.set(self.keys.lease_handover(connector), self.server, px=ttl)
            pipe.execute()
