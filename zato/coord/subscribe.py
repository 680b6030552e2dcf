"""The one Redis pub/sub subscription loop: subscribe, hand each message to the caller, and
after a failure back off (zato.common.retry) and subscribe again. on_subscribed runs after
every (re)subscription, since pub/sub drops what is published while nobody listens: callers
reconcile there. Used by config events (workers, supervisor) and the LB's membership channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from zato.common.errors import CoordError
from zato.common.retry import Backoff
from zato.coord.client import translate

logger = logging.getLogger(__name__)


def listen(
    client: redis.Redis,
    channel: str,
    on_message: Callable[[str], None],
    should_stop: Callable[[], bool],
    on_subscribed: Callable[[], None] | None = None,
    poll: float = 0.5,
) -> None:
    """One subscription: on_message(data) per message until should_stop(). CoordError when
    Redis fails."""
    with translate(f"listening on {channel}"):
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            if on_subscribed is not None:
                on_subscribed()
            while not should_stop():
                msg = pubsub.get_message(timeout=poll)
                if msg and msg.get("type") == "message":
                    on_message(msg["data"])
        finally:
            pubsub.close()


def listen_forever(
    client: Callable[[], redis.Redis],
    channel: str,
    on_message: Callable[[str], None],
    should_stop: Callable[[], bool],
    on_subscribed: Callable[[], None] | None = None,
    on_error: Callable[[CoordError], None] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    backoff: Backoff | None = None,
    poll: float = 0.5,
) -> None:
    """listen() again and again until should_stop(). `client()` gives the client to use for
    each attempt; on_error (default: a warning) hears every Redis failure before the backoff."""

    def once(subscribed: Callable[[], None]) -> None:
        listen(client(), channel, on_message, should_stop, subscribed, poll)

    resubscribing(once, channel, should_stop, on_subscribed, on_error, sleep, backoff)


def resubscribing(
    once: Callable[[Callable[[], None]], None],
    channel: str,
    should_stop: Callable[[], bool],
    on_subscribed: Callable[[], None] | None = None,
    on_error: Callable[[CoordError], None] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    backoff: Backoff | None = None,
) -> None:
    """The loop of listen_forever over any store: once(subscribed) is one subscription that
    calls subscribed() when it is in place and raises CoordError when the store fails."""
    backoff = backoff or Backoff()
    while not should_stop():
        try:
            once(_reset(backoff, on_subscribed))
        except CoordError as e:
            if on_error is not None:
                on_error(e)
            else:
                logger.warning("%s; subscribing again in %.1f s", e, backoff.delay)
        except Exception:  # noqa: BLE001 - a subscriber must never die of a handler's bug
            logger.exception("handling a message of %s failed; subscribing again", channel)
        if not should_stop():
            sleep(backoff.next())


def _reset(backoff: Backoff, then: Callable[[], None] | None) -> Callable[[], None]:
    def subscribed() -> None:
        backoff.reset()
        if then is not None:
            then()

    return subscribed
