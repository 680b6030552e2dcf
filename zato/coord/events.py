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
from typing import Any

import redis

from zato.coord import subscribe
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
    Raises CoordError when Redis fails; listen_forever backs off and subscribes again."""
    subscribe.listen(client, Keys(cluster).events, _decoded(on_event), should_stop, on_subscribed, poll)


def listen_forever(
    client: redis.Redis,
    cluster: str,
    on_event: Callable[[dict], None],
    on_subscribed: Callable[[], None],
    should_stop: Callable[[], bool],
    **kwargs: Any,
) -> None:
    """listen(), subscribing again after every failure (zato.coord.subscribe.listen_forever;
    kwargs: on_error, sleep, backoff)."""
    subscribe.listen_forever(
        lambda: client, Keys(cluster).events, _decoded(on_event), should_stop, on_subscribed, **kwargs
    )


def _decoded(on_event: Callable[[dict], None]) -> Callable[[str], None]:
    def on_message(raw: str) -> None:
        event = decode(raw)
        if event is not None:
            on_event(event)

    return on_message
