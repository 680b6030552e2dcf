"""Changing HTTP channels the way the CLI and the admin API both do it: write the ODB, then
publish a "channel" config event so every worker reloads its routes (the ODB stays the truth
for a worker that missed the event; see zato.coord.events)."""

from __future__ import annotations

import redis

from zato.coord import events
from zato.odb import api as odb_api
from zato.odb.api import ChannelRecord
from zato.odb.engine import ODB


def _announce(client: redis.Redis, cluster: str, name: str, what: str) -> None:
    events.announce(client, cluster, {"kind": "channel", "name": name}, what)


def save(odb: ODB, client: redis.Redis, cluster: str, ch: ChannelRecord, opening: bool = False) -> bool:
    """Create or replace channel ch.name and announce it; True if it was created (`opening`:
    odb_api.save_channel)."""
    events.reachable(client, cluster)
    created = odb_api.save_channel(odb, cluster, ch, opening)
    _announce(client, cluster, ch.name, f"channel {ch.name}")
    return created


def delete(odb: ODB, client: redis.Redis, cluster: str, name: str) -> bool:
    """Delete channel `name` and announce it; False (and nothing announced) if there was none."""
    events.reachable(client, cluster)
    if not odb_api.delete_channel(odb, cluster, name):
        return False
    _announce(client, cluster, name, f"the deletion of channel {name}")
    return True
