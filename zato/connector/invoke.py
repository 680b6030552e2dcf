"""Connector -> server: invoke a service on a live server through the internal endpoint.

    POST /zato/internal/invoke/{service}        (several at once: zato.common.batch)
    X-Zato-Epoch: <this holder's epoch>   X-Zato-CID: <cid>
    X-Zato-Stamp: <ms on Redis's clock>-<nonce>   (a new one at each sending: a server takes
                      each nonce once and each stamp within zato.common.signing.STAMP_WINDOW)
    X-Zato-Signature: HMAC over epoch, service, CID, stamp and body with the epoch's key
                      (`zato.common.signing`; the cluster secret itself is never sent)
    X-Zato-Channel: <kind>:<name> of the channel connector (the service's self.channel)

A channel's messages go with their metadata (zato.common.batch, invoke-messages), so the
service sees self.request.amqp / ibm_mq; a server without that endpoint gets the bodies alone.

Servers are taken round-robin from the membership list, except that calls made one at a time
(none other in flight as each starts: an AMQP channel at prefetch 1, an IBM MQ channel with
max_in_flight 1) stay on one server for STAY seconds, then go to the next: a call to the server
that answered the one before costs about 0.1 ms less than one to a server idle meanwhile (its
worker woken, its caches cold), 5-10% of a serial channel's time per message; calls that
overlap go round-robin as before. A server that cannot be reached is
skipped and the next one tried, and goes after the others for a while (zato.connector.reach:
a live member the holder's host cannot reach, a partition between two hosts, cost every call
that tried it first CONNECT_TIMEOUT). A kept connection whose host stops acknowledging what
is sent (the link between the hosts lost meanwhile) fails after LINK_DEAD_AFTER (TCP
keep-alive and TCP_USER_TIMEOUT), and the call is made on the next server (it may have run
there, as a call whose server left the cluster); a slow but live server's host acknowledges,
so its calls keep their whole timeout. Connections are kept alive, pooled per server, and safe to
use from several threads; one idle for longer than the servers' keep-alive (gunicorn's
`keepalive`, 2 s unless server.conf [gunicorn] says otherwise) is closed instead of reused, and
a call that finds a reused one closed by the server is made again on a new connection to the
same server (never "no live server" for that). A call is made again (on the next server,
on a new connection) only while no byte of its answer came: an answer that began and was cut
(its headers, or part of its body, then the connection closed or reset: the server's worker
killed after the service ran, by its timeout or a crash) shows the server took the call and
may have run it, so it is UNUSABLE here, a failed call, made again on neither server. So is
a call whose whole request went on a new connection that the server then closed (or reset)
without a byte of answer (TakenNotAnswered): a worker took it and ended while it ran (os._exit
or a crash in the service, the out-of-memory killer, a kill). Before, that was "cannot be
reached", so a message that ends its worker ran on every server, went back uncounted, and ran
again, ending workers for ever instead of being parked at its max_deliveries. A host that
stops answering altogether (no close, no reset: LINK_DEAD_AFTER) is still "cannot be reached".
Answers: 200 ok, 409 stale epoch (this holder was replaced),
401 (the server refused the call's credentials: the next server is tried, see REFUSED), each
only with the server's X-Zato-Call-Refused (a service's own 401 or 409 is its answer),
anything else a failure of the call. A server that took the call but did not answer within the
timeout (a channel's `timeout`, DEFAULT_TIMEOUT by default) is answered TIMED_OUT here: a
failed call, not "no live server", and not made again on another server (it may still run).

Bodies are kept within the servers' [limits] max_body: a server refuses a longer one from its
Content-Length and closes the connection while it is still being sent, which would look like
a server that cannot be reached. So a body over the limit is answered 413 here without being
sent, and several bodies go in as many batches as keep each within the limit.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import redis

from zato.common import batch
from zato.common.cid import new_cid
from zato.common.errors import ConnectorError, CoordError
from zato.common.signing import REFUSED_HEADER, SIGNATURE_HEADER, STAMP_HEADER, new_stamp, sign
from zato.config.settings import LimitSettings
from zato.connector.reach import Reach
from zato.coord import membership, redis_clock
from zato.odb.limits import CHANNEL_TIMEOUT

logger = logging.getLogger("zato.connector.invoke")
T = TypeVar("T")

MEMBERS_REFRESH = 1.0  # seconds a membership list is reused
STAY = 1.0  # seconds calls made one at a time stay on one server before the next takes them
DEFAULT_TIMEOUT = float(CHANNEL_TIMEOUT)  # seconds a call waits for the answer (a channel: its `timeout`)
# gunicorn's `keepalive` (its default; server.conf [gunicorn] keepalive sets another): seconds a
# server keeps an idle connection open. An idle connection is reused only within it, less a margin.
SERVER_KEEPALIVE = 2.0
KEEPALIVE_MARGIN = 0.5
CONNECT_TIMEOUT = 5.0  # seconds a new connection to a server may take (then the next server)
# Seconds what a call sent may stay unacknowledged by the server's host (TCP_USER_TIMEOUT), and
# about how long an idle kept connection to a host that went away lives (keep-alive probes
# after 1 s idle, every 1 s): the link to that host is lost, not the service slow.
LINK_DEAD_AFTER = 3.0
# While the live servers cannot be read (Redis away), every call tries again: the warning is
# said at the first failure, then this often (with the count), and the recovery once (INFO).
UNREAD_SAY_EVERY = 10.0
# While a call waits for its answer, this often the Invoker looks whether its server is still a
# live member: one that hung (SIGSTOP, a deadlock) or whose host vanished takes the connection
# and never answers, and its membership entry expires within the ttl. Its calls then give up
# (NoServer: the channel gives the message back uncounted, for a live server) instead of
# waiting out the whole timeout, which held a takeover's messages for 30-60 s.
LIVENESS_EVERY = 1.0
BAD_INPUT = 400  # the service refused the message itself (missing or malformed input, BadRequest)
# The server refused the call's credentials (signature, epoch or stamp) before running anything:
# a server of another release or cluster secret, or a call that waited past the stamp's window.
# Not the message's fault, so the next server takes it (stamped anew), and when none does the
# channel gets NoServer: its message goes back uncounted instead of towards being parked.
# Only a 401 a server says is its own (REFUSED_HEADER; a release before it: OLD_REFUSALS) is one:
# a service's own 401 (Zato's Unauthorized) ran, and is the call's failed answer as any other.
REFUSED = 401
# The server refused the call's epoch as stale: a newer holder exists, so this one stops. Only a
# 409 the server says is its own, as above: a service's own 409 (Conflict) is its failed answer.
STALE = 409
CREDENTIALS, STALE_EPOCH = "credentials", "stale"  # REFUSED_HEADER's values (Result.refusal)
# The details of a 401 of a server of a release before REFUSED_HEADER (a rolling upgrade). Such
# a server checks a call's signature first, which this release's never passes there, so it
# never answers this release's connectors with its 409.
OLD_REFUSALS = ("bad or missing X-Zato-Signature", "bad or missing X-Zato-Epoch")
# A 4xx answer to a batch: the server refused the call itself before running any item (an item's
# own answer is inside a 200), so its bodies can go one by one without any running twice.
REFUSED_BEFORE_RUN = 400
# What a batch's 200 answer unusable as a batch's (malformed results, too few) gives each item,
# and what an answer cut after it began (AnswerCut) gives its call: the server may have run it,
# so it is a failed delivery, not run again at once.
UNUSABLE = 502
TOO_LARGE = 413  # over the servers' [limits] max_body: no server takes it, however often sent
UNAVAILABLE = 503  # the server cannot check the epoch now
TIMED_OUT = 504  # the server took the call and did not answer within the timeout (Result.timed_out)
NOT_SENT = "no server (not sent)"  # Result.server of an answer given here


class NoServer(ConnectorError):
    """No live server answered."""


class ServerGone(ConnectorError):
    """The server a call waits on left the cluster's live members (hung or gone)."""


class AnswerCut(ConnectorError):
    """A server began its answer (its first bytes came) and the connection failed before the
    answer was whole: it took the call and may have run the service (the Invoker answers
    UNUSABLE for it, never makes it again)."""


class TakenNotAnswered(AnswerCut):
    """A server took a call (its whole request went on a new connection) and closed or reset
    the connection without a byte of answer: its worker ended while it ran, so it may have run
    the service (answered UNUSABLE, as a cut answer)."""


class NoAnswer(ConnectorError):
    """A server took the call and did not answer within the timeout (the Invoker answers
    TIMED_OUT for it)."""


@dataclass(frozen=True)
class Result:
    status: int
    body: bytes
    server: str
    settle: str = ""  # what the service asked of its message: "", "ack", "reject", "requeue"
    timed_out: bool = False  # no answer within the timeout: the service may still be running
    # The server's refusal of the call, before running it: CREDENTIALS (REFUSED) or STALE_EPOCH
    # (STALE); "" for an answer of the service (its own 401 or 409 too)
    refusal: str = ""

    @property
    def ok(self) -> bool:
        """The service succeeded: any 2xx (a service may answer 201 or 204)."""
        return 200 <= self.status < 300

    @property
    def refused(self) -> str | None:
        """Why the service refused this message as bad input (400), which no retry changes;
        None for any other answer."""
        if self.status != BAD_INPUT:
            return None
        return f"the service refused it as bad input (400) on {self.server}: {self.text}"

    @property
    def stale(self) -> bool:
        """The server refused this holder's epoch: a newer one exists (not a service's 409)."""
        return self.refusal == STALE_EPOCH

    @property
    def credentials_refused(self) -> bool:
        """The server refused the call's credentials (not a service's 401): it ran nothing."""
        return self.refusal == CREDENTIALS

    @property
    def text(self) -> str:
        """The start of the answer, for a log line or a reason."""
        return self.body[:200].decode(errors="replace")


@dataclass(frozen=True)
class Call:
    """What one internal call signs and sends, but its stamp and signature (Invoker._stamped)."""

    signed_as: str
    cid: str
    headers: dict[str, str]


class Invoker:
    """Thread-safe: connectors call `invoke` from several threads at once. Each server has a
    pool of idle keep-alive connections; a call takes one (or opens one), gives it back after
    the answer, so N concurrent calls use at most N connections spread round-robin over the
    live servers."""

    def __init__(
        self,
        client: redis.Redis,
        cluster: str,
        key: bytes,
        epoch: int,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        members: bytes,
        max_body: int = LimitSettings.max_body,
        channel: str = "",
        keepalive: float = SERVER_KEEPALIVE,
        ca_file: str = "",
        tls_only: bool = False,
        progress: Callable[[], None] | None = None,
    ):
        """`key`: this epoch's key, `zato.common.signing.epoch_key(cluster_secret, epoch)`;
        `members`: `zato.coord.signing.member_key(cluster_secret, cluster)`: only servers whose
        membership entries it verifies get calls; `max_body`: the servers' [limits] max_body;
        `channel`: KIND:NAME of the channel connector calling, the service's self.channel;
        `timeout`: seconds to wait for a service's answer once a server took the call;
        `keepalive`: seconds the servers keep an idle connection open (gunicorn's keepalive);
        `ca_file`: what a server that serves TLS (its membership entry says so) is verified
        against ("" : the system's CAs); `tls_only`: a server that serves plain HTTP gets no call
        (this server serves TLS, so the cluster's traffic must not cross the network in clear);
        `progress`: called about every LIVENESS_EVERY s while a call waits for its answer, for a
        connector that invokes from its main loop (zato.connector.beat: a wait for a slow
        service, bounded by `timeout`, is progress, not a hang)."""
        self.client, self.cluster = client, cluster
        self.max_body = max_body
        self._key, self.epoch, self.timeout = key, epoch, timeout
        self._lock = threading.Lock()
        self._member_key = members
        self._servers: list[str] = []
        self._servers_at = -MEMBERS_REFRESH
        self._unread, self._unread_said = 0, -UNREAD_SAY_EVERY  # failed reads of the live servers
        self._next = itertools.count()
        self._busy = 0  # calls in flight
        self._stay, self._stay_until = "", 0.0  # where calls made one at a time go, until when
        self.reach = Reach()
        # idle connections per server, each with when it was given back (monotonic)
        self._idle: dict[str, list[tuple[http.client.HTTPConnection, float]]] = {}
        self.keepalive = keepalive
        self._channel = channel
        self._ca_file, self._tls_only = ca_file, tls_only
        self._tls: set[str] = set()  # addresses of the servers that serve TLS
        self._context: ssl.SSLContext | None = None
        self._plain_said: set[str] = set()
        self._progress = progress

    def servers(self) -> list[str]:
        with self._lock:
            now = time.monotonic()
            if now - self._servers_at >= MEMBERS_REFRESH or not self._servers:
                try:
                    members = self._usable(
                        membership.live_servers(self.client, self.cluster, self._member_key)
                    )
                    self._servers = [m.address for m in members]
                    self._tls = {m.address for m in members if m.tls}
                    self._servers_at = now
                    if self._unread:
                        logger.info("the live servers are read again (%d reads failed before)", self._unread)
                        self._unread, self._unread_said = 0, -UNREAD_SAY_EVERY
                except CoordError as e:
                    self._unread += 1  # each call tries again: said once, then every UNREAD_SAY_EVERY s
                    if now - self._unread_said >= UNREAD_SAY_EVERY:
                        again = f" ({self._unread} failed reads so far)" if self._unread > 1 else ""
                        logger.warning("cannot read the live servers: %s%s", e, again)
                        self._unread_said = now
            return self._servers

    def _usable(self, members: list[membership.Member]) -> list[membership.Member]:
        """`members` but, when this server serves TLS, those that serve plain HTTP (said once)."""
        if not self._tls_only:
            return members
        for m in members:
            if not m.tls and m.address not in self._plain_said:
                self._plain_said.add(m.address)
                logger.error(
                    "server %s at %s serves plain HTTP while this server serves TLS ([tls] cert): it gets"
                    " no calls from this server's connectors; set [tls] cert in its server.conf",
                    m.name, m.address,
                )  # fmt: skip
        return [m for m in members if m.tls]

    def invoke(
        self, service: str, body: bytes, content_type: str, cid: str | None = None, meta: bytes | None = None
    ) -> Result:
        """Call `service` on one live server; NoServer when none could be reached. A body over
        max_body is answered TOO_LARGE here, not sent. `meta`: the message's metadata
        (zato.service.messages), sent beside the body."""
        if meta is not None:
            return self.invoke_messages(service, [(meta, body)], content_type)[0]
        if len(body) > self.max_body:
            limit = f"the servers' limit of {self.max_body} ([limits] max_body)"
            return Result(TOO_LARGE, f"the message of {len(body)} bytes is over {limit}".encode(), NOT_SENT)
        call = self._signed(service, cid or new_cid(), content_type)
        return self._call("/zato/internal/invoke/" + quote(service, safe=""), body, call)

    def invoke_many(self, service: str, bodies: Sequence[bytes], content_type: str) -> list[Result]:
        """Invoke `service` once per body, in one call to one server (zato.common.batch); a
        Result per body, in order. A 409 or 503 answers for every body. A 4xx, the server's
        refusal of the call before running any item (an older server without the endpoint:
        404; a body too large: 413), makes the calls again one body at a time, so a message is
        never failed for its company; an answer that may come after the items ran (a 500, a
        malformed batch answer) is a failure of each body's own, never run again at once.
        Bodies that together would be over max_body go in several calls, each within
        it (a body over it alone is answered TOO_LARGE). NoServer when no server could be
        reached."""
        if len(bodies) == 1:
            return [self.invoke(service, bodies[0], content_type)]
        parts = within(bodies, self.max_body)
        if len(parts) > 1:
            return [result for part in parts for result in self.invoke_many(service, part, content_type)]
        cid, body = new_cid(), batch.encode_items(bodies)
        call = self._signed(batch.batch_service(service), cid, "application/octet-stream")
        call.headers[batch.ITEMS_TYPE_HEADER] = content_type
        answer = self._call(batch.BATCH_PREFIX + quote(service, safe=""), body, call)
        return self._results(answer, cid, bodies, service, content_type)

    def invoke_messages(
        self, service: str, messages: Sequence[tuple[bytes, bytes]], content_type: str
    ) -> list[Result]:
        """invoke_many of (metadata, body) pairs: the service sees each message's metadata
        (self.request.amqp / ibm_mq) and a Result says what it asked of its message (settle).
        A message within max_body alone but over it with its metadata goes without it, as
        does every message to a server that does not know this endpoint."""
        parts = within(messages, self.max_body, size=lambda pair: item_size(pair[0]) + item_size(pair[1]))
        if len(parts) > 1:
            return [result for part in parts for result in self.invoke_messages(service, part, content_type)]
        if len(messages) == 1 and item_size(messages[0][0]) + item_size(messages[0][1]) > self.max_body:
            size = len(messages[0][1])
            logger.info("a message of %d bytes goes without its metadata (over max_body with it)", size)
            return [self.invoke(service, messages[0][1], content_type)]
        cid, body = new_cid(), batch.encode_messages(messages)
        call = self._signed(batch.messages_service(service), cid, "application/octet-stream")
        call.headers[batch.ITEMS_TYPE_HEADER] = content_type
        answer = self._call(batch.MESSAGES_PREFIX + quote(service, safe=""), body, call)
        return self._results(answer, cid, [one for _, one in messages], service, content_type)

    def _results(
        self, answer: Result, cid: str, bodies: Sequence[bytes], service: str, content_type: str
    ) -> list[Result]:
        """The per-body results of a batch's answer. A 4xx is the server's refusal of the call
        before it ran any item (404: a server older than the endpoint; 400 "malformed batch",
        405, 408, 413: the call itself): the bodies go one by one. Any other answer that is not
        a batch's (a 500, a 200 whose results are malformed or missing) may come after the items
        ran: each body's Result is a failure of its own (UNUSABLE for a 200), which its channel
        counts and retries with its message's metadata, instead of running it again at once."""
        if answer.stale or answer.status == UNAVAILABLE or answer.timed_out:
            return [answer] * len(bodies)  # (timed out: they may still run; not sent again here)
        if answer.status == 200:
            try:
                rows = batch.decode_results(answer.body, len(bodies))
                server = answer.server
                return [Result(status, detail.encode(), server, settle) for status, detail, settle in rows]
            except batch.BatchError as e:
                return self._may_have_run(answer, cid, len(bodies), f"a batch answer it sent: {e}")
        if not REFUSED_BEFORE_RUN <= answer.status < REFUSED_BEFORE_RUN + 100:
            return self._may_have_run(answer, cid, len(bodies), f"{answer.status}: {answer.text}")
        what = f"server {answer.server} answered a batch with {answer.status}"
        logger.info("cid %s: %s; invoking one by one", cid, what)
        return [self.invoke(service, one, content_type) for one in bodies]

    @staticmethod
    def _may_have_run(answer: Result, cid: str, n: int, what: str) -> list[Result]:
        """A failed Result for each of `n` bodies whose batch `answer` cannot be used, though
        the server may have run them: not run again here."""
        status = answer.status if answer.status >= 500 else UNUSABLE  # never an ok one
        text = f"no usable answer to its batch ({what}); it may have run there, so not run again at once"
        logger.warning(
            "cid %s: server %s gave no usable answer to a batch of %d (%s): they may have run there, so"
            " each is a failed delivery of its own, not run again at once",
            cid, answer.server, n, what,
        )  # fmt: skip
        return [Result(status, text.encode(), answer.server)] * n

    def _signed(self, signed_as: str, cid: str, content_type: str) -> Call:
        """A call signed as `signed_as` under this epoch: stamped and signed at each sending."""
        headers = {"X-Zato-Epoch": str(self.epoch), "X-Zato-CID": cid, "Content-Type": content_type}
        if self._channel:
            headers["X-Zato-Channel"] = self._channel
        return Call(signed_as, cid, headers)

    def _stamped(self, call: Call, body: bytes) -> dict[str, str]:
        """The headers of one sending of `call`: a stamp of its own (its time on Redis's clock
        and a new nonce), signed with this epoch's key. A server takes a stamp once, so a call
        made again (on a new connection, on another server) is stamped again."""
        stamp = new_stamp(redis_clock.estimate(self.client))
        signature = sign(self._key, self.epoch, call.signed_as, call.cid, stamp, body)
        return {**call.headers, STAMP_HEADER: stamp, SIGNATURE_HEADER: signature}

    def _call(self, path: str, body: bytes, call: Call) -> Result:
        """POST to one live server, the next one when it cannot be reached. A server that took
        the call and did not answer within the timeout is not "no live server": the answer is
        TIMED_OUT (timed_out), and the call is not made again elsewhere (it may still run)."""
        servers = self.servers()
        if not servers:
            raise NoServer("no live server in the cluster")
        now = time.monotonic()
        with self._lock:
            start = self._first(servers, now)
            self._busy += 1
        try:
            return self._call_from(path, body, call, servers, start, now)
        finally:
            with self._lock:
                self._busy -= 1

    def _first(self, servers: list[str], now: float) -> int:
        """Where a call starts in `servers` (under the lock): the next in turn, or, for a call
        with no other in flight, the server calls made one at a time stay on (STAY)."""
        alone = self._busy == 0
        if alone and now < self._stay_until and self._stay in servers:
            return servers.index(self._stay)
        start = next(self._next)
        if alone:
            self._stay, self._stay_until = servers[start % len(servers)], now + STAY
        return start

    def _move_on(self, address: str) -> None:
        """A call to `address` failed (an error answer, no answer in time): calls made one at a
        time stay there no longer. Else a server whose services fail (a bad deployment) would
        take every try of a message redelivered at once, and park it, where round-robin gives
        the next try to another server."""
        with self._lock:
            if self._stay == address:
                self._stay_until = 0.0

    def _call_from(
        self, path: str, body: bytes, call: Call, servers: list[str], start: int, now: float
    ) -> Result:
        errors = []
        for address in self.reach.order(servers, start, now):
            try:
                result = self._post(address, path, body, call)
                if result.credentials_refused:  # before the service ran: no server for this call
                    errors.append(f"{address}: refused the call's credentials (401: {result.text})")
                    pause = self.reach.failed(address, time.monotonic())
                    logger.warning(
                        "server %s refused this connector's credentials (401: %s): a server of another"
                        " release or cluster secret, or a call delayed past the stamp's window; the next"
                        " server takes the call, and %s is tried after the others for %g s",
                        address, result.text, address, pause,
                    )  # fmt: skip
                    continue
                self.reach.answered(address)
                if not result.ok:
                    self._move_on(address)
                return result
            except AnswerCut as e:
                self.reach.answered(address)
                self._move_on(address)
                if isinstance(e, TakenNotAnswered):
                    what = "took the call and closed the connection without answering (its worker ended)"
                    cut = f"the server closed the connection without an answer ({e}): its worker ended"
                else:
                    what = "began its answer and the connection failed before its end"
                    cut = f"the answer was cut ({e})"
                logger.warning(
                    "cid %s: server %s %s (%s): the server took the call and may have run it, so it is a"
                    " failed delivery, not made again on another server",
                    call.cid, address, what, e,
                )  # fmt: skip
                text = f"{cut}; it may have run there, so not run again at once"
                return Result(UNUSABLE, text.encode(), address)
            except NoAnswer:
                self._move_on(address)
                text = f"the service did not answer within {self.timeout:g} s"
                return Result(TIMED_OUT, text.encode(), address, timed_out=True)
            except ServerGone:
                with self._lock:
                    self._servers_at = -MEMBERS_REFRESH
                raise NoServer(
                    f"server {address} left the cluster while the call waited for its answer (hung or"
                    " gone: its membership entry expired)"
                ) from None
            except (OSError, http.client.HTTPException) as e:
                self._forget(address)
                why = f"{type(e).__name__}: {e}"
                if isinstance(e, ssl.SSLError):
                    from zato.common.tls import client_error

                    why = client_error(e, self._ca_file)
                errors.append(f"{address}: {why}")
                pause = self.reach.failed(address, time.monotonic())
                logger.warning(
                    "server %s cannot be reached from here (%s); the next server takes the call,"
                    " and %s is tried after the others for %g s",
                    address, why, address, pause,
                )  # fmt: skip
        with self._lock:
            self._servers_at = -MEMBERS_REFRESH  # re-read membership before the next call
        raise NoServer("no live server answered (" + "; ".join(errors) + ")")

    def _post(self, address: str, path: str, body: bytes, call: Call) -> Result:
        """One call to `address`. A reused keep-alive connection the server closed meanwhile
        (its keepalive ran out: BrokenPipe, ConnectionReset, RemoteDisconnected) is no sign of
        a server gone: the call is made once more on a new connection to the same server. Not
        so once the answer began (AnswerCut): the server took the call."""
        conn, reused = self._checkout(address)
        try:
            return self._send(address, conn, path, body, call, fresh=not reused)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            if not reused:
                raise
        conn = self._connect(address)
        return self._send(address, conn, path, body, call, fresh=True)

    def _send(
        self, address: str, conn: http.client.HTTPConnection, path: str, body: bytes, call: Call, fresh: bool
    ) -> Result:
        """One sending of `call` on `conn`. Once the first bytes of the answer came, a failure
        before its end (a body cut: IncompleteRead, a reset; its headers cut) is AnswerCut:
        the server took the call and may have run it (its worker killed after the service ran,
        by its timeout or a crash). On a `fresh` connection (not one kept from an earlier call,
        which the server may have closed as idle just before this one came), the end or a reset
        of the connection after the whole request went and before any answer is TakenNotAnswered:
        a worker took it and ended while it ran."""
        began = sent = False
        try:
            conn.request("POST", path, body=body, headers=self._stamped(call, body))
            sent = True
            began = self._await_answer(address, conn)
            resp = conn.getresponse()
            data = resp.read()
        except ServerGone:
            conn.close()
            raise
        except TimeoutError as e:
            conn.close()
            if e.errno is None:  # the socket's timeout: the server took the call, no answer in time
                raise NoAnswer from None
            if began:
                raise AnswerCut(f"{type(e).__name__}: {e}") from e
            raise  # ETIMEDOUT: its host stopped acknowledging (LINK_DEAD_AFTER): the link is lost
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            if began:
                raise AnswerCut(f"{type(e).__name__}: {e}") from e
            if sent and fresh and isinstance(e, (ConnectionResetError, ssl.SSLEOFError)):
                raise TakenNotAnswered(f"{type(e).__name__}: {e}") from e
            raise
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._checkin(address, conn)
        refusal = _refusal(resp.status, resp.getheader(REFUSED_HEADER), data)
        return Result(resp.status, data, address, refusal=refusal)

    def _await_answer(self, address: str, conn: http.client.HTTPConnection) -> bool:
        """Until the first byte of the answer is there (True) or the server closed the
        connection without one (False): NoAnswer after the timeout, ServerGone once `address`
        is no longer a live member (checked every LIVENESS_EVERY s)."""
        sock = conn.sock
        if sock is None:
            return False
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoAnswer
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return True
            readable, _, _ = select.select([sock], [], [], min(left, LIVENESS_EVERY))
            if readable:  # a byte of the answer, or the end of the connection (b"")
                return _peek(sock)
            if self._progress is not None:
                self._progress()
            live = self.servers()  # none at all: entries lost by Redis, not every server gone
            if live and address not in live:
                raise ServerGone(address)

    def _checkout(self, address: str) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to `address` (reused: True) or a new one. Idle ones the server
        may have closed by now (idle longer than its keep-alive, less a margin) are dropped."""
        now = time.monotonic()
        stale = []
        found = None
        with self._lock:
            idle = self._idle.get(address) or []
            while idle:
                conn, since = idle.pop()
                if now - since < self.keepalive - KEEPALIVE_MARGIN:
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            conn.close()
        if found is not None:
            return found, True
        return self._connect(address), False

    def _connect(self, address: str) -> http.client.HTTPConnection:
        """A new connection to `address`; an OSError when it cannot be reached."""
        host, _, port = address.rpartition(":")
        timeout = min(CONNECT_TIMEOUT, self.timeout)
        if address in self._tls:
            if self._context is None:
                from zato.common.tls import client_context

                self._context = client_context(self._ca_file)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, int(port), timeout=timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        conn.connect()  # an OSError here: the server cannot be reached (the next one is tried)
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)  # from here on: how long the answer may take
            watch_link(conn.sock)
        return conn

    def _checkin(self, address: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(address, []).append((conn, time.monotonic()))

    def _forget(self, address: str) -> None:
        """Close the idle connections to a server that failed."""
        with self._lock:
            idle = self._idle.pop(address, [])
        for conn, _ in idle:
            conn.close()

    def close(self) -> None:
        with self._lock:
            addresses = list(self._idle)
        for address in addresses:
            self._forget(address)


def _refusal(status: int, said: str | None, body: bytes) -> str:
    """Result.refusal of an answer: what REFUSED_HEADER says on a 401 or 409; a 401 without
    it is a server of a release before it (a rolling upgrade) refusing the credentials when
    its envelope's details say so (OLD_REFUSALS); else "": the service's own answer."""
    if status == STALE:
        return STALE_EPOCH if said == STALE_EPOCH else ""
    if status != REFUSED:
        return ""
    if said is not None:
        return CREDENTIALS if said == CREDENTIALS else ""
    try:
        details = json.loads(body)["zato_env"]["details"]
    except (ValueError, TypeError, KeyError):
        return ""
    return CREDENTIALS if isinstance(details, str) and details.startswith(OLD_REFUSALS) else ""


def _peek(sock: socket.socket) -> bool:
    """Whether the first byte of an answer is there (False: the connection ended). Over TLS,
    the socket's own bytes are looked at (a TLS record), not the answer's: the servers send
    nothing else before it (no session tickets: zato.server.app.tls_context)."""
    return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK))  # the plain socket's recv, for an SSLSocket too


def watch_link(sock: socket.socket, dead_after: float = LINK_DEAD_AFTER) -> None:
    """Make a connection fail once its peer's host stops acknowledging for `dead_after` s,
    idle (keep-alive probes) or not (TCP_USER_TIMEOUT: data sent and never acknowledged);
    without it a call on a kept connection to a host cut off meanwhile waited its whole
    timeout. A live host acknowledges at once, however slow its service."""
    idle = max(1, int(dead_after / 3))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(dead_after * 1000))


def item_size(body: bytes) -> int:
    """The bytes of `body` as an item of a batch: b"<length>:<bytes>,"."""
    return len(body) + len(str(len(body))) + 2


def within(bodies: Sequence[T], limit: int, size: Callable[[Any], int] = item_size) -> list[list[T]]:
    """`bodies` in order, cut into runs whose batch (zato.common.batch) is at most `limit`
    bytes; a body whose item alone is over it makes a run of its own. `size`: the bytes
    one takes in the batch."""
    parts: list[list[T]] = [[]]
    total = 0
    for body in bodies:
        item = size(body)
        if parts[-1] and total + item > limit:
            parts.append([])
            total = 0
        parts[-1].append(body)
        total += item
    return parts
