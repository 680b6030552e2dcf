"""What a service fed by a channel connector sees of its message, under Zato's names.

    self.request.amqp         on an AMQP channel (None elsewhere)
        .msg                  the message, as kombu's Message names it: body, payload
                              (decoded: JSON parsed for application/json), properties
                              (content_type, correlation_id, reply_to, message_id, priority,
                              timestamp...), headers, delivery_info (exchange, routing_key,
                              redelivered, consumer_tag, delivery_tag), delivery_tag
        .ack()                settle it as done, whatever the service does next
        .reject()             do not run it again: it is parked in "<queue>.zato-parked"
                              with the reason "rejected by the service" (where kombu's broker
                              would drop it or dead-letter it, this server loses nothing)
        .reject(requeue=True) run it again later (a delivery counted against max_deliveries)
    self.request.ibm_mq       on an IBM MQ channel (also self.request.wmq): msg_id and
                              correlation_id (bytes, as Zato gives them; b"" for no
                              correlation id), reply_to, reply_to_qmgr, put_date, put_time,
                              timestamp (a UTC datetime of the two), priority, expiry,
                              persistence, format, backout_count, mqmd (every field, ids as
                              hex text), data (the body) and not_converted (a channel
                              with `convert`: why the queue manager returned the body as
                              it was put, e.g. "reason 2119 (MQRC_NOT_CONVERTED)"; "" if not)

The connector sends the metadata beside each body (zato.common.batch, invoke-messages); it is
read from its JSON only when the service asks for it. Values that are not JSON (bytes in a
header, an AMQP timestamp inside a header table) arrive as text (zato.common.jsonenc.dumps_lenient).
A service that settles nothing has its message settled by its answer, as before: acked after a
2xx, run again after a failure, parked after a 400.
"""

from __future__ import annotations

import datetime as dt
import json

from zato.common import jsonenc
from zato.common.errors import ServiceError

AMQP_KIND = "amqp"
IBM_MQ_KIND = "ibm-mq"


class MessageStateError(ServiceError):
    """ack() or reject() of a message the service has already settled the other way (kombu's
    name for it)."""


class AMQPMessage:
    """self.request.amqp.msg."""

    __slots__ = (
        "body",
        "properties",
        "headers",
        "delivery_info",
        "delivery_tag",
        "content_type",
        "content_encoding",
        "_owner",
    )

    def __init__(self, body: bytes, meta: dict):
        props = dict(meta.get("properties") or {})
        self.body = body
        self.headers: dict = props.pop("headers", None) or {}
        self.properties: dict = props
        self.delivery_info: dict = dict(meta.get("delivery_info") or {})
        self.delivery_tag = self.delivery_info.get("delivery_tag")
        self.content_type = props.get("content_type")
        self.content_encoding = props.get("content_encoding")
        self._owner: AMQPRequest | None = None

    # kombu's names on the message itself, the same as self.request.amqp's

    def ack(self) -> None:
        self._request().ack()

    def reject(self, requeue: bool = False) -> None:
        self._request().reject(requeue)

    def requeue(self) -> None:
        self._request().reject(requeue=True)

    def _request(self) -> AMQPRequest:
        if self._owner is None:
            raise MessageStateError("this message is not a channel's: there is nothing to settle")
        return self._owner

    @property
    def payload(self) -> object:
        """kombu's decoded body: JSON parsed when the content type says JSON, else text (bytes
        when it is not UTF-8)."""
        if jsonenc.is_json(self.content_type):
            return json.loads(self.body)
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.body

    def decode(self) -> object:
        return self.payload

    def __repr__(self) -> str:
        tag, props, headers = self.delivery_tag, self.properties, self.headers
        return f"<AMQPMessage delivery_tag={tag} properties={props!r} headers={headers!r}>"


class AMQPRequest:
    """self.request.amqp: the message and what the service asks of it."""

    __slots__ = ("msg", "settle")

    def __init__(self, msg: AMQPMessage):
        self.msg = msg
        msg._owner = self
        self.settle = ""  # "", "ack", "reject" or "requeue" (zato.common.batch.SETTLES)

    def ack(self) -> None:
        self._settle("ack")

    def reject(self, requeue: bool = False) -> None:
        self._settle("requeue" if requeue else "reject")

    def _settle(self, how: str) -> None:
        if self.settle and self.settle != how:
            raise MessageStateError(f"the message was settled already: {self.settle}")
        self.settle = how


IBM_MQ_FIELDS = (
    "reply_to",
    "reply_to_qmgr",
    "put_date",
    "put_time",
    "priority",
    "expiry",
    "persistence",
    "format",
    "backout_count",
)


class IBMMQRequest:
    """self.request.ibm_mq: the MQMD's fields, and the body as `data`."""

    __slots__ = (*IBM_MQ_FIELDS, "msg_id", "correlation_id", "timestamp", "data", "mqmd", "not_converted")

    def __init__(self, body: bytes, meta: dict):
        md = dict(meta.get("mqmd") or {})
        for name in IBM_MQ_FIELDS:
            setattr(self, name, md.get(name))
        self.msg_id = bytes.fromhex(md.get("msg_id") or "")
        correl = bytes.fromhex(md.get("correlation_id") or "")
        self.correlation_id = b"" if not correl.strip(b"\x00") else correl  # MQCI_NONE: none
        self.timestamp = put_timestamp(md.get("put_date"), md.get("put_time"))
        self.mqmd = md
        self.data = body
        # a channel with `convert`: why the queue manager returned it as it was put ('' if not)
        self.not_converted = str(meta.get("not_converted") or "")

    def __repr__(self) -> str:
        return f"<IBMMQRequest {self.mqmd!r}>"


def put_timestamp(put_date: str | None, put_time: str | None) -> dt.datetime | None:
    """The MQMD's PutDate (YYYYMMDD) and PutTime (HHMMSSTH, hundredths), both UTC, as one
    datetime; None when either is missing or malformed."""
    if not put_date or not put_time:
        return None
    try:
        stamp = dt.datetime.strptime(put_date + put_time[:6], "%Y%m%d%H%M%S")
        hundredths = int(put_time[6:8].ljust(2, "0"))  # T and H: tenths and hundredths
        return stamp.replace(microsecond=hundredths * 10000)
    except ValueError:
        return None


def parse(meta: bytes, body: bytes) -> AMQPRequest | IBMMQRequest | None:
    """The message's side of a request from its metadata; None when it is not well formed
    (the body still runs: a message is never failed for its metadata)."""
    try:
        data = jsonenc.loads(meta)
        kind = data["kind"]
    except (ValueError, KeyError, TypeError):
        return None
    try:
        if kind == AMQP_KIND:
            return AMQPRequest(AMQPMessage(body, data))
        if kind == IBM_MQ_KIND:
            return IBMMQRequest(body, data)
    except (TypeError, ValueError, AttributeError):
        return None
    return None
