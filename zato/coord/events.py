"""Config-change events on Redis pub/sub.

An event is a small JSON object with a "kind":
    {"kind": "deploy", "module": NAME, "version": N}
    {"kind": "undeploy", "module": NAME}                    a module and its services removed
    {"kind": "channel", "name": NAME}                       HTTP channel created/updated/deleted
    {"kind": "user-config", "name": NAME}                   a user-config file (de)ployed
    {"kind": "connector", "type": TYPE, "name": NAME}       connector definition changed
                                                            ("was": OLD_NAME too, when renamed)
Pub/sub loses messages while a subscriber is disconnected, so every subscriber also
reconciles from the ODB when it (re)subscribes: events are a prompt, the ODB is the truth.
A change is written only once Redis answered and took a write (`reachable`): a read-only
replica takes PUBLISH, and tells it to none of the servers, which listen on its master, so a
change made through one is refused before anything is written. `announce` says when the event
after the change fails: the change is saved, and servers see it when they resubscribe. When
Redis's answer to the event is lost (the connection broke once it was sent) whether the
servers got it is unknown, and `announce` says that, not that they were not told.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from zato.common import jsonenc
from zato.common.errors import CoordDataError, CoordError, CoordRefused
from zato.common.retry import Backoff
from zato.coord import health, subscribe
from zato.coord.client import translate, where
from zato.coord.keys import Keys

logger = logging.getLogger(__name__)


def publish(client: redis.Redis, cluster: str, event: dict) -> int:
    """Publish `event`; returns how many subscribers got it."""
    check(event)
    with translate("publishing a config event"):
        return client.publish(Keys(cluster).events, json.dumps(event))


PROBE_TTL_MS = 10000  # how long a probe's key stays (nothing reads it; the dashboard's too)


def _write_probe(client: redis.Redis, cluster: str, what: str) -> None:
    """A write Redis takes or refuses (CoordRefused, READONLY, on a replica), on a key nothing reads."""
    with translate(what):
        client.set(Keys(cluster).writes_probe, "1", px=PROBE_TTL_MS)


def reachable(client: redis.Redis, cluster: str) -> None:
    """CoordError unless Redis answers and takes a write. Checked before a change the servers
    must hear of is written to the ODB, so that an unreachable Redis leaves everything as it
    was, and so does a read-only replica (CoordRefused saying so and what to do): PUBLISH works
    there and reaches none of the servers, which listen on its master, so the change would be
    saved and never applied until each server restarts."""
    try:
        _write_probe(client, cluster, "reaching Redis, which tells the servers of changes")
    except CoordRefused as e:
        if health.is_replica(e):
            raise CoordRefused(
                f"{_replica(client, e)}: the servers listen on its master and would hear of no change"
                f" published there, so nothing was changed; {health.REPLICA}"
            ) from e
        raise


def replica(client: redis.Redis, cluster: str) -> str:
    """What Redis is when it is a read-only replica ("Redis at URL is a read-only replica
    (READONLY: ...): ..."); "" when it takes a write, or could not be asked (a status view reads
    a replica as it would the master, and every change made through it is refused)."""
    try:
        reachable(client, cluster)
    except CoordRefused as e:
        if health.is_replica(e) and isinstance(e.__cause__, CoordRefused):
            return _replica(client, e.__cause__)
    except CoordError:
        pass
    return ""


def _replica(client: redis.Redis, error: CoordRefused) -> str:
    said = error.__cause__ or error
    return f"Redis at {where(client)} is a read-only replica (READONLY: {said})"


def _told_none(client: redis.Redis, cluster: str, what: str, anyway: str) -> None:
    """PUBLISH reached no subscriber: no server runs, or Redis became a replica since
    reachable() (a failover), where no server listens. CoordError saying so in the second case."""
    try:
        _write_probe(client, cluster, "finding out why no server heard of the change")
    except CoordRefused as e:
        if not health.is_replica(e):
            return
        if anyway == RESUBSCRIBED:  # their own connections, to the master, are fine
            anyway = NOT_PUBLISHED
        raise CoordError(
            f"{what} is saved in the ODB, but the servers were not told: {_replica(client, e)}, where"
            f" the event reached none of them (they listen on its master); {health.REPLICA}; {anyway}"
        ) from None
    except CoordError:  # Redis away now: whether it is a replica cannot be told; none listened
        return


RESUBSCRIBED = "each applies it once its own Redis connection comes back, or when it restarts"
# Redis answered and did not publish (its ACL, an error): the servers' own connections are fine,
# so nothing makes them resubscribe and read the ODB again
NOT_PUBLISHED = (
    "their own Redis connections are fine, so each applies it only when it restarts: restart them"
    " once the event can be published"
)


def announce(client: redis.Redis, cluster: str, event: dict, what: str, anyway: str = RESUBSCRIBED) -> int:
    """publish() of a change already written to the ODB; if it fails, the CoordError says
    that `what` is saved, whether the servers were told (not told: Redis could not be reached
    before the event was sent, or refused it, or took it as a replica, where no server listens;
    unknown: it was sent and the answer lost), and
    `anyway`: when they see it without the event (they reconcile on resubscribing)."""
    check(event)
    pool = client.connection_pool
    try:  # connected (again) before anything is sent: failing here, nothing was sent
        with translate("publishing a config event"):
            pool.release(pool.get_connection())
    except CoordError as e:
        raise CoordError(
            f"{what} is saved in the ODB, but the servers were not told ({e}); {anyway}"
        ) from None
    try:
        told = publish(client, cluster, event)
    except (CoordDataError, CoordRefused) as e:  # Redis answered: it did not publish the event
        if anyway == RESUBSCRIBED and isinstance(e, CoordDataError):  # no connection comes back
            anyway = NOT_PUBLISHED
        raise CoordError(
            f"{what} is saved in the ODB, but the servers were not told ({e}); {anyway}"
        ) from None
    except CoordError as e:
        raise CoordError(
            f"{what} is saved in the ODB, but whether the servers were told is unknown: the event was"
            f" sent and Redis's answer lost ({e}); {anyway}"
        ) from None
    if not told:
        _told_none(client, cluster, what, anyway)
    return told


def check(event: dict) -> None:
    """ValueError unless `event` can be published (before anything is sent)."""
    if "kind" not in event:
        raise ValueError("an event needs a 'kind'")


def decode(raw: str | bytes) -> dict | None:
    try:
        event = jsonenc.loads(raw)
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
    subscribe.listen(client, Keys(cluster).events, decoded(on_event), should_stop, on_subscribed, poll)


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
        lambda: client, Keys(cluster).events, decoded(on_event), should_stop, on_subscribed, **kwargs
    )


def decoded(on_event: Callable[[dict], None]) -> Callable[[str], None]:
    """on_event for each raw message that decodes; the others are logged and skipped."""

    def on_message(raw: str) -> None:
        event = decode(raw)
        if event is not None:
            on_event(event)

    return on_message


class RedisConfigEvents:
    """The config-events side of the coordination port (zato.coord.port.ConfigEvents) over one
    cluster's Redis pub/sub; MemoryConfigEvents is its in-memory twin."""

    def __init__(self, client: redis.Redis, cluster: str):
        self.client, self.cluster = client, cluster

    def publish(self, event: dict) -> int:
        return publish(self.client, self.cluster, event)

    def listen_forever(
        self,
        on_event: Callable[[dict], None],
        should_stop: Callable[[], bool],
        on_subscribed: Callable[[], None] | None = None,
        on_error: Callable[[CoordError], None] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        backoff: Backoff | None = None,
        poll: float = 0.5,
    ) -> None:
        """listen_forever() on this handle's cluster."""
        subscribe.listen_forever(
            lambda: self.client, Keys(self.cluster).events, decoded(on_event), should_stop, on_subscribed,
            on_error, sleep, backoff, poll,
        )  # fmt: skip
