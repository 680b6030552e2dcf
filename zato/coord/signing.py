"""Signed entries: proof that a Redis entry was written by a holder of the cluster secret.

The signing key is derived from the cluster secret and the cluster name (HMAC-SHA256 with a
fixed label), so the secret itself is never used as a key for anything else, and an entry of
one cluster never verifies in another cluster that shares the same secret. An entry is a JSON
object; its signature is the HMAC of the object's other fields in canonical JSON (sorted keys,
no spaces), stored in the field "sig". Fields a newer version adds are signed too.
"""

from __future__ import annotations

import hashlib
import hmac
import json

SIG = "sig"
_LABEL = b"zato-ha member entry v1\x00"


def member_key(cluster_secret: str, cluster: str) -> bytes:
    """The key that signs membership entries of `cluster`."""
    return _derived(cluster_secret, _LABEL, cluster, "member entries")


def _derived(cluster_secret: str, label: bytes, cluster: str, what: str) -> bytes:
    """A key of one purpose (`label`) and one cluster, derived from the cluster secret; the
    secret itself signs nothing, so a process given one key can make no other."""
    if not cluster_secret:
        raise ValueError(f"a cluster secret is required to sign or verify {what}")
    return hmac.new(cluster_secret.encode(), label + cluster.encode(), hashlib.sha256).digest()


def _mac(key: bytes, doc: dict) -> str:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, doc: dict) -> str:
    """`doc` as JSON text with its signature added."""
    unsigned = {k: v for k, v in doc.items() if k != SIG}
    return json.dumps({**unsigned, SIG: _mac(key, unsigned)})


def verified(key: bytes, doc: dict) -> dict | None:
    """The fields of `doc` without its signature if the signature checks, else None."""
    sig = doc.get(SIG)
    if not isinstance(sig, str):
        return None
    unsigned = {k: v for k, v in doc.items() if k != SIG}
    return unsigned if hmac.compare_digest(sig, _mac(key, unsigned)) else None


# invoke_async calls (zato.coord.async_invoke, self.patterns' targets and callbacks): the queue is
# plain Redis, so a call carries a signature that only a holder of the cluster secret makes, and
# a worker runs only calls that verify. Not signed: "deaths" (counted by the reapers, which
# rewrite the call: a Redis writer changing it can only park a call, or run one once more, as
# deleting or copying it can), and the payload of a call marked OUTCOMES (a fan-out's final
# callback, whose payload Redis itself assembles from the outcomes it keeps: zato.coord.patterns).
_CALL_LABEL = b"zato-ha async call v1\x00"
CALL_UNSIGNED = ("deaths",)
OUTCOMES = "outcomes"  # signed: True on a call whose payload Redis fills in


def call_key(cluster_secret: str, cluster: str) -> bytes:
    """The key that signs invoke_async calls of `cluster` (not the member entries' key)."""
    return _derived(cluster_secret, _CALL_LABEL, cluster, "invoke_async calls")


def _call_fields(doc: dict) -> dict:
    skip = {SIG, *CALL_UNSIGNED, *(("payload",) if doc.get(OUTCOMES) is True else ())}
    return {k: v for k, v in doc.items() if k not in skip}


def sign_call(key: bytes, text: str) -> dict:
    """The call whose JSON is `text`, read back as every reader reads it, with its signature."""
    doc = json.loads(text)
    return {**doc, SIG: _mac(key, _call_fields(doc))}


def queued_call(key: bytes, call: dict) -> str:
    """`call` as it is queued: JSON with its signature. TypeError or ValueError when its
    payload is not JSON (zato.common.jsonenc), or not JSON that reads back."""
    from zato.common import jsonenc

    return json.dumps(sign_call(key, jsonenc.dumps(call)))


def call_verified(key: bytes, doc: dict) -> bool:
    """Whether the call `doc` (parsed) carries the signature of `key` over what it signs."""
    sig = doc.get(SIG)
    return isinstance(sig, str) and hmac.compare_digest(sig, _mac(key, _call_fields(doc)))


# Outgoing messages (zato.coord.queues, zato.connector.ibmmq_outgoing): what a service sends
# through an AMQP or IBM MQ outgoing connection waits in plain Redis, and its connector publishes
# it with the connection's broker credentials to the exchange and routing key (IBM MQ: queue)
# the message names. So each carries a signature only a holder of the cluster secret makes (the
# servers; the connectors get the derived key alone, never the secret), and a connector publishes
# only messages that verify. The signature is over the message's exact text (its kind too: an
# AMQP message moved to an IBM MQ queue does not verify), so whatever moves the text as it is
# (a rename's hand-over, a replay of parked messages) keeps it, and checking it costs one HMAC,
# no parsing: the text is `{"sig": "HEX", ` followed by the rest of the unsigned JSON object.
_OUT_LABEL = b"zato-ha outgoing message v1\x00"
_OUT_HEAD = '{"sig": "'
_OUT_SIG_LEN = 64  # hex digits of an HMAC-SHA256
_OUT_REST = len(_OUT_HEAD) + _OUT_SIG_LEN + len('", ')


def outgoing_key(cluster_secret: str, cluster: str) -> bytes:
    """The key that signs outgoing messages of `cluster` (not the member entries' nor the
    invoke_async calls' key); the outgoing connectors get it through their environment."""
    return _derived(cluster_secret, _OUT_LABEL, cluster, "outgoing messages")


def _out_start(key: bytes, kind: str) -> hmac.HMAC:
    """The HMAC of an outgoing message of queue kind `kind` as far as its text's "{"."""
    return hmac.new(key, kind.encode() + b"\x00{", hashlib.sha256)


def _out_mac(start: hmac.HMAC, rest: str) -> str:
    """The hex HMAC of kind, then the unsigned object's text: "{" + `rest` (`start`: _out_start)."""
    mac = start.copy()
    mac.update(rest.encode("utf-8", "surrogatepass"))
    return mac.hexdigest()


def sign_outgoing(key: bytes, kind: str, text: str) -> str:
    """The JSON object `text` (as json.dumps writes it: "{" then at least one field) of an
    outgoing message of queue kind `kind` (amqp, ibm-mq), signed: as it is queued."""
    if not text.startswith("{") or text.startswith("{}"):
        raise ValueError("an outgoing message is a JSON object with at least one field")
    rest = text[1:]
    return f'{_OUT_HEAD}{_out_mac(_out_start(key, kind), rest)}", {rest}'


def resign_outgoing(key: bytes, kind: str, raw: str) -> str | None:
    """The stored message `raw` signed with `key` (any signature it has replaced: one of another
    cluster secret's key); None when it is not a JSON object's text sign_outgoing takes. For an
    operator who checked that unsigned messages are the cluster's own (zato conn replay-parked
    --sign): it makes anything a message."""
    if raw.startswith(_OUT_HEAD) and raw[_OUT_REST - 3 : _OUT_REST] == '", ':
        raw = "{" + raw[_OUT_REST:]
    try:
        return sign_outgoing(key, kind, raw)
    except ValueError:
        return None


def outgoing_signed(key: bytes, kind: str, raw: str) -> bool:
    """Whether the queued message `raw` of queue kind `kind` was signed with `key`
    (sign_outgoing), byte for byte. A connector checking every message: OutgoingCheck."""
    return OutgoingCheck(key, kind)(raw)


class OutgoingCheck:
    """outgoing_signed(key, kind, raw) as check(raw), the HMAC's keyed start made once (the
    outgoing connectors check every message they take)."""

    def __init__(self, key: bytes, kind: str):
        self._start = _out_start(key, kind)

    def __call__(self, raw: str) -> bool:
        if not raw.startswith(_OUT_HEAD) or raw[_OUT_REST - 3 : _OUT_REST] != '", ':
            return False
        sig = raw[len(_OUT_HEAD) : _OUT_REST - 3]
        if not sig.isascii():  # compare_digest takes ASCII text only
            return False
        return hmac.compare_digest(sig, _out_mac(self._start, raw[_OUT_REST:]))
