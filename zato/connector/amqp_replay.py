"""Replay an AMQP channel's parked messages: once its service is mended, what waits in
"<queue>.zato-parked" goes back to the channel's queue (`zato conn replay-parked`, the
dashboard's "Replay parked"). Both call `replay_channel`.

At least once, nothing lost:
- at most the messages the parking queue held when the replay started (or `limit`) are taken,
  so one parked again meanwhile (the service still fails) is not taken round again;
- each is published to the channel's queue through the default exchange, mandatory, on a
  confirming channel, with its body and properties as parked less x-zato-parked-reason and
  x-zato-deliveries (its delivery count starts again); the parked copy is acked only after
  the broker confirmed the new one;
- a copy the broker returns or refuses leaves its parked copy where it was (nack, requeue) and
  the replay stops, saying so; so does a get or publish the broker closes the channel over (403
  ACCESS_REFUSED: the definition's user may not read the parking queue or write to the
  channel's queue), a refusal (ReplayError: the dashboard answers 502), not a broker away
  (BrokerUnreachable, 503); a lost connection stops it too (a copy whose confirm was lost
  with it may reach the channel twice: at least once);
- a message pika cannot decode (a header timestamp past the year 9999) ends the connection
  that reads it: it is moved to the parking queue's tail as the broker sent it
  (amqp_rescue.skip_undecodable), counted, and the replay goes on with the next one; when it
  comes to the head again (what was ahead of it expired, or another replay took it), the
  replay stops there without counting it twice.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from zato.common.errors import ConnectorError
from zato.common.log import printable
from zato.connector import amqp_common, amqp_rescue
from zato.connector.amqp_channel import DELIVERIES, PARKED_REASON, parking_queue
from zato.connector.amqp_common import AMQP_ERRORS
from zato.odb import connectors
from zato.odb.connectors import DefinitionNotFound
from zato.odb.engine import ODB

logger = logging.getLogger("zato.connector.amqp_replay")

KIND = "amqp-channel"
DROPPED = (PARKED_REASON, DELIVERIES)  # headers the parking added: the copy goes back without them


class ReplayError(ConnectorError):
    """The replay could not start, or stopped (the text says how many were moved before)."""


class BrokerUnreachable(ReplayError):
    """The broker could not be reached, or the connection to it was lost: trying again once it
    answers may help (the dashboard answers 503)."""


@dataclass(frozen=True)
class Replay:
    """What a replay did: messages moved back, messages pika cannot decode left parked (and
    the decoder's error), messages in the parking queue afterwards."""

    channel: str
    queue: str
    moved: int
    left: int
    undecodable: int = 0
    cause: str = ""
    active: bool = True

    def describe(self) -> str:
        text = (
            f"{KIND} {self.channel}: {self.moved} parked message(s) moved back to queue {self.queue!r};"
            f" {self.left} left in {parking_queue(self.queue)!r}"
        )
        if not self.active and self.moved:
            text += f" (the channel is not active: they wait in {self.queue!r} until it is)"
        return text

    def warnings(self) -> list[str]:
        if not self.undecodable:
            return []
        return [
            f"{self.undecodable} message(s) pika cannot decode ({self.cause}) stay in"
            f" {parking_queue(self.queue)!r}: move or delete them with the broker's own tools"
        ]


def replay_channel(odb: ODB, cluster: str, name: str, ca_file: str = "", limit: int | None = None) -> Replay:
    """Replay the parked messages of the AMQP channel `name` (its definition from the ODB);
    `ca_file` verifies a TLS broker (server.conf [tls] ca_file). DefinitionNotFound when the
    cluster has no such channel; ReplayError when the broker failed or refused."""
    return replay_parked(find_channel(odb, cluster, name), ca_file, limit)


def find_channel(odb: ODB, cluster: str, name: str) -> dict:
    """The AMQP channel's full definition; DefinitionNotFound naming what `name` is instead."""
    try:
        return connectors.load(odb, cluster, KIND, name)
    except DefinitionNotFound:
        pass
    others = [
        k
        for k in connectors.KINDS
        if k != KIND and name in {v["name"] for v in connectors.list_all(odb, cluster, k)}
    ]
    hint = (
        f" ({name!r} is {' and '.join('an ' + k for k in others)}: only AMQP channels park messages)"
        if others
        else ""
    )
    raise DefinitionNotFound(f"no {KIND} named {name!r} in cluster {cluster}{hint}")


def replayed_properties(properties: pika.BasicProperties) -> pika.BasicProperties:
    """A parked message's properties as it goes back: all it had, less the headers parking added."""
    props = pika.BasicProperties(**{k: v for k, v in vars(properties).items() if v is not None})
    headers = {k: v for k, v in (properties.headers or {}).items() if k not in DROPPED}
    props.headers = headers or None
    return props


def replay_parked(channel: dict, ca_file: str = "", limit: int | None = None) -> Replay:
    """Replay the parked messages of `channel` (a definition as connectors.load gives it)."""
    run = _Run(channel, amqp_common.parameters(channel["amqp"], ca_file, watch_link=False))
    with amqp_common.decoding_any_delivery():  # headers as deep as the channel itself reads them
        try:
            return run.replay(limit)
        finally:
            amqp_common.close_quietly(run.conn)


class _Run:
    """One replay over one connection (a new one after a message pika cannot decode)."""

    def __init__(self, channel: dict, params: pika.ConnectionParameters):
        self.d, self.params = channel, params
        self.queue = channel["queue"]
        self.parking = parking_queue(self.queue)
        self.label = f"{KIND} {channel['name']}"
        self.broker = amqp_common.describe(channel["amqp"])
        self.conn: pika.BlockingConnection | None = None
        self.ch: Any = None  # pika's BlockingChannel, confirming
        self.moved = self.undecodable = 0
        self.skipped: set[str] = set()  # the digests of the messages pika cannot decode moved past
        self.cause = ""

    def replay(self, limit: int | None) -> Replay:
        self._open()
        waiting = self._count(self.parking) or 0  # None: never made, nothing was ever parked
        todo = waiting if limit is None else min(waiting, limit)
        if not todo:
            return self._result(waiting)
        if self._count(self.queue) is None:
            raise ReplayError(
                f"{self.label}: its queue {self.queue!r} does not exist on {self.broker}; nothing moved"
                " (the channel declares it once it runs)"
            )
        logger.info(
            "%s: replaying %d of the %d parked message(s) in %r", self.label, todo, waiting, self.parking
        )
        for _ in range(todo):
            if not self._one():
                break  # emptied meanwhile (another replay), or come round to what it moved past
        left = self._count(self.parking) or 0
        result = self._result(left)
        logger.info("%s", result.describe())
        for warning in result.warnings():
            logger.info("%s: %s", self.label, warning)
        return result

    def _result(self, left: int) -> Replay:
        return Replay(
            self.d["name"],
            self.queue,
            self.moved,
            left,
            self.undecodable,
            self.cause,
            bool(self.d["is_active"]),
        )

    def _open(self) -> None:
        amqp_common.close_quietly(self.conn)
        self.conn = None
        try:
            self.conn = pika.BlockingConnection(self.params)
            self.ch = _confirming(self.conn)
        except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
            raise ReplayError(
                f"{self.label}: the AMQP broker {self.broker} refused the login: check the user name and"
                f" password of amqp-def {self.d['def']!r}{self._so_far()}"
            ) from None
        except ssl.SSLCertVerificationError as e:  # it answered: with a certificate not trusted here
            raise ReplayError(
                f"{self.label}: the AMQP broker {self.broker} is not trusted: {_why(e)} (the CA that signed"
                " its certificate goes in [tls] ca_file: server.conf's for the CLI, dashboard.conf's for"
                f" the dashboard){self._so_far()}"
            ) from None
        except AMQP_ERRORS as e:
            raise BrokerUnreachable(
                f"{self.label}: cannot connect to the AMQP broker {self.broker}: "
                f"{_why(e, self.d['amqp'])}{self._so_far()}"
            ) from None

    def _count(self, queue: str) -> int | None:
        """Messages ready in `queue`; None if it does not exist."""
        try:
            return self.ch.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code != 404:
                raise ReplayError(
                    f"{self.label}: the broker refused queue {queue!r}: ({e.reply_code}) {e.reply_text}"
                ) from None
            self.ch = _confirming(self.ch.connection)  # a refused passive declare closed it
            return None
        except AMQP_ERRORS as e:
            raise self._lost(e) from None

    def _one(self) -> bool:
        """Move the message at the parking queue's head; False if the queue is empty."""
        try:
            method, properties, body = self.ch.basic_get(self.parking, auto_ack=False)
        except pika.exceptions.ChannelClosedByBroker as e:  # it answered: a refusal (403: no read)
            raise self._refused(e, f"a get from {self.parking!r}") from None
        except AMQP_ERRORS as e:
            cause = amqp_common.decode_failure(e)
            if cause is None:
                raise self._lost(e) from None
            return self._skip(cause)
        if method is None:
            return False
        try:
            self.ch.basic_publish("", self.queue, body, replayed_properties(properties), mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
            what = (
                "returned it as unroutable"
                if isinstance(e, pika.exceptions.UnroutableError)
                else "refused it"
            )
            try:
                self.ch.basic_nack(method.delivery_tag, requeue=True)
            except AMQP_ERRORS as lost:  # the parked copy comes back unacked all the same
                raise self._lost(lost) from None
            message = printable(properties.message_id or "", 120) or "at the head of the parking queue"
            raise ReplayError(
                f"{self.label}: stopped: the broker {what} when message {message} was published to queue"
                f" {self.queue!r}; it stays parked{self._so_far()}"
            ) from None
        except pika.exceptions.ChannelClosedByBroker as e:  # 403: the user may not write there
            # the channel is closed: the parked copy, unacked, is back where it was
            message = printable(properties.message_id or "", 120) or "at the head of the parking queue"
            raise self._refused(e, f"the publish of message {message} to queue {self.queue!r}") from None
        except AMQP_ERRORS as e:
            raise self._lost(e, unconfirmed=True) from None
        try:
            self.ch.basic_ack(method.delivery_tag)
        except AMQP_ERRORS as e:  # confirmed, not acked: the parked copy comes back, a duplicate
            raise self._lost(e, unconfirmed=True) from None
        self.moved += 1
        return True

    def _skip(self, cause: str) -> bool:
        """pika could not decode the message at the head: move it to the tail as sent, then
        go on over a new connection (True). False when it came round: one alike (byte for byte)
        was moved past before, and the parking queue holds no more than what was moved past
        (what was ahead of it is gone: expired, taken by another replay), so it is not counted
        again and the replay has taken all it could."""
        amqp_common.close_quietly(self.conn)
        self.conn = None
        try:
            moved = amqp_rescue.skip_undecodable(self.params, self.parking)
        except (amqp_rescue.RescueError, OSError) as e:
            raise ReplayError(
                f"{self.label}: stopped at a message pika cannot decode ({cause}), which could not be moved"
                f" past: {e}{self._so_far()}"
            ) from None
        if moved is None:
            raise ReplayError(
                f"{self.label}: stopped: the connection ended on a message pika cannot decode ({cause}), but"
                f" the message at the head of {self.parking!r} decodes now{self._so_far()}"
            )
        self._open()
        if moved.digest in self.skipped and (self._count(self.parking) or 0) <= self.undecodable:
            logger.info(
                "%s: the message pika cannot decode (%s) came round again: %r holds only what this replay"
                " moved past",
                self.label,
                moved.error,
                self.parking,
            )
            return False
        self.skipped.add(moved.digest)
        self.undecodable += 1
        self.cause = moved.error
        logger.info(
            "%s: a message pika cannot decode (%s) stays in %r, moved to its tail",
            self.label,
            moved.error,
            self.parking,
        )
        return True

    def _refused(self, e: pika.exceptions.ChannelClosedByBroker, what: str) -> ReplayError:
        """The broker closed the channel over `what` (its answer, not a broker away): a refusal
        no retry mends until its permissions or the queue change; what was got stays parked."""
        return ReplayError(
            f"{self.label}: stopped: the broker {self.broker} refused {what}: ({e.reply_code})"
            f" {e.reply_text}; it stays parked{self._so_far()}"
        )

    def _lost(self, e: BaseException, unconfirmed: bool = False) -> BrokerUnreachable:
        twice = " (the last one, unconfirmed, may reach the channel twice)" if unconfirmed else ""
        return BrokerUnreachable(
            f"{self.label}: stopped on the AMQP broker {self.broker}: {_why(e)}{self._so_far()}{twice}"
        )

    def _so_far(self) -> str:
        if not (self.moved or self.undecodable):
            return "; nothing moved"
        return f"; {self.moved} moved back to {self.queue!r} before, the rest stay in {self.parking!r}"


def _confirming(conn: pika.BlockingConnection) -> Any:
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def _why(e: BaseException, amqp: dict | None = None) -> str:
    """pika's connection errors in one line: AMQPConnectionError wraps the cause it names
    (`amqp`: the definition connected to, for its handshake_timeout)."""
    if isinstance(e, pika.exceptions.AMQPConnectionError) and e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    return amqp_common.error_text(e, amqp)
