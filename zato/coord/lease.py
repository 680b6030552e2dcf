"""Connector-server lease and fencing epoch (see DESIGN flow 4).

STUB: only current_epoch() is here so far; the lease issue (#3) completes this module.
"""

from __future__ import annotations

import redis

from zato.coord.client import translate
from zato.coord.keys import Keys


def current_epoch(client: redis.Redis, cluster: str) -> int:
    """The newest fencing epoch of `cluster` (0 before any holder)."""
    with translate("reading the lease epoch"):
        value = client.get(Keys(cluster).epoch)
    return int(value or 0)
