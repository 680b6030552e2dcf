"""Config-change events on Redis pub/sub.

An event is a small JSON object with a "kind":
    {"kind": "deploy", "module": NAME, "version": N}
    {"kind": "channel", "name": NAME}                       HTTP channel created/updated/deleted
    {"kind": "connector", "type": TYPE, "name": NAME}       connector definition changed
Pub/sub loses messages while a subscriber is disconnected, so every subscriber also
reconciles from the ODB when it (re)subscribes: events are a prompt, the ODB is the truth.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import redis

from zato.coord.client import translate
from zato.coord.keys import Keys

logger = logging.getLogger(__name__)


def publish(client: redis.Redis, cluster: str, event: dict) -> int:
    """Publish `event`; returns how many subscribers got it."""
    if "kind" not in event:
        raise ValueError("an event needs a 'kind'")
    with translate("publishing a config event"):
        return client.publish(Keys(cluster).events, json.dumps(event))


def decode(raw: str | bytes) -> dict | None:
    try:
        event = json.loads(raw)
    except (TypeError, ValueError):
        logger.warning("ignoring a malformed config event: %r", raw[:200])
        return None
    if not isinstance(event, dict) or "kind" not in event:
        logger.warning("ignoring a config event without a kind: %r", raw[:200])
        return None
    return event


def listen(
    client: redis.Redis,
    cluster: str,
    on_event: Callable[[dict], None],
    on_subscribed: Callable[[], None],
    should_stop: Callable[[], bool],
    poll: float = 0.5,
) -> None:
    """Call on_event for each event until should_stop(); on_subscribed runs after every
    (re)subscription, so the caller can reconcile what it may have missed.
    Raises CoordError when Redis fails; the caller decides how to back off and retry."""
    with translate("listening for config events"):
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(Keys(cluster).events)
            on_subscribed()
            while not should_stop():
                msg = pubsub.get_message(timeout=poll)
                if msg and msg.get("type") == "message":
                    event = decode(msg["data"])
                    if event is not None:
                        on_event(event)
        finally:
            pubsub.close()
