"""The WSGI application of a server: /zato/ping, the internal invoke endpoint, the admin API
and user HTTP channels. Every response carries X-Zato-CID; errors use Zato's envelope."""

from __future__ import annotations

import functools
import hmac
import io
import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import gevent
import redis

from zato.common import batch, jsonenc
from zato.common.api import CHANNEL
from zato.common.cid import is_cid, new_cid
from zato.common.errors import (
    CoordError,
    CoordUnavailable,
    InputError,
    ODBError,
    OutgoingNotFound,
    ServiceNotFound,
    ZatoError,
)
from zato.common.exception import Reportable
from zato.common.jsonenc import is_form, is_json
from zato.common.log import CID
from zato.common.signing import REFUSED_HEADER, parse_stamp, verify
from zato.coord.client import refuses_writes
from zato.coord.signing import member_key
from zato.odb.api import HTTP_METHODS, ChannelRecord
from zato.server import access_log, fatal, metrics, rejections, service_response
from zato.server import body as bodies
from zato.server.channel_security import Refused, basic_auth, said_user
from zato.server.internal_gate import InternalGate
from zato.server.readiness import READY_PATH, DrainFlag, not_ready_reason, ready_body
from zato.server.slow_readers import SlowReaders
from zato.server.worker import Worker
from zato.service.base import (
    INTERNAL,
    MAX_FORM_FIELDS_KEY,
    ChannelInfo,
    Request,
    Response,
    SecurityInfo,
    http_channel,
    without_credentials,
)
from zato.service.query import QueryDict
from zato.service.unsupported import NotSupported

logger = logging.getLogger("zato.http")

PING_PATH = "/zato/ping"
INTERNAL_PREFIX = "/zato/internal/"  # connectors -> servers
INVOKE_PREFIX = "/zato/internal/invoke/"
ADMIN_PREFIX = "/zato/admin"
ADMIN_INVOKE = "/zato/admin/invoke"  # Zato's AnyServiceInvoker (zato/server/zato_invoke.py)
API_INVOKE_PREFIX = "/zato/api/invoke/"  # Zato's APIClient
JSON = "application/json"
REPLAYED = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))  # idempotent (RFC 9110)
STATUS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
# A method outside HTTP_METHODS (what a channel can be created for) is answered 501 on channel
# paths and labelled OTHER_METHOD in metrics: a label a client chose would make a new series
# with every new method (4,000 made-up methods grew /metrics from 8 KB to 178 KB).
OTHER_METHOD = "other"
METRICS_REALM = 'Basic realm="Zato metrics"'  # a scrape without [metrics] credentials is asked for them
# On the 401s and 409s of internal calls refused before anything ran, unlike a service's own
CALL_REFUSED, CALL_STALE = [(REFUSED_HEADER, "credentials")], [(REFUSED_HEADER, "stale")]

StartResponse = Callable[..., Any]


class HTTPError(ZatoError):
    """Answer the request being served with `status` and `detail` in Zato's error envelope."""

    def __init__(self, status: int, detail: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or []


PING_HEAD = b'{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "'
PING_TAIL = b'"}, "zato_ping_response": {"pong": "zato"}}'


def ping_body(cid: str) -> bytes:
    """Zato's exact /zato/ping answer (the same bytes json.dumps would give)."""
    return PING_HEAD + cid.encode() + PING_TAIL


def error_body(cid: str, detail: str) -> bytes:
    return json.dumps({"zato_env": {"details": detail, "result": "ZATO_ERROR", "cid": cid}}).encode()


def render(payload: Any, content_type: str | None) -> tuple[bytes, str]:
    """A service's response payload as (body, content type)."""
    if payload is None:
        return b"", content_type or "text/plain; charset=utf-8"
    if isinstance(payload, bytes):
        return payload, content_type or "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode("utf-8"), content_type or "text/plain; charset=utf-8"
    return jsonenc.dumps(payload).encode("utf-8"), content_type or JSON


def parse_payload(raw: bytes, as_json: bool, allow_nan: bool = False) -> Any:
    """A request body as JSON (or text). A client's NaN or Infinity is malformed JSON (no JSON
    parser reads it, and the service's answer holding it could not be written); `allow_nan`
    is for connectors' messages, which their brokers' clients parse as Python does."""
    if as_json:
        if not raw.strip():
            return None
        try:
            return json.loads(raw) if allow_nan else jsonenc.loads_strict(raw)
        except (ValueError, UnicodeDecodeError) as e:  # also integers over 4300 digits
            raise HTTPError(400, f"malformed JSON in the request body: {jsonenc.error_text(e)}") from None
        except RecursionError:
            raise HTTPError(400, "JSON in the request body is nested too deeply") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


FORM = jsonenc.FORM_TYPE


def channel_payload(raw: bytes, environ: dict, as_json: bool, max_fields: int = 1000) -> Any:
    """A channel's payload: on a JSON channel, form fields (a dict, so SimpleIO input reads
    them), else JSON; on a text channel, the text whatever its Content-Type says, as Zato gives
    a channel without a data format (its "Other data formats" docs send CSV with `curl -d`,
    which labels it a form, and split self.request.payload). On a JSON channel, a body that
    opens with { or [ is JSON whatever its Content-Type says: `curl -d '{...}'` labels it a
    form, and a real form encoder escapes both characters. A form of more than `max_fields`
    fields is a 400 on either, decided before any is parsed (4 MiB of `a&a&...` took a worker
    1.3 s of CPU and 170 MB to parse)."""
    content_type = environ.get("CONTENT_TYPE", "")
    if raw and as_json and content_type.lower().startswith("multipart/") and not _looks_json(raw):
        # before: 400 "malformed JSON in the request body" for a browser's or curl -F's upload
        raise HTTPError(
            415,
            f"a {content_type.split(';')[0].strip()} body is not taken here: send JSON, or a form as {FORM}",
        )
    if raw and is_form(content_type) and not (as_json and _looks_json(raw)):
        text = raw.decode("utf-8", "replace")
        try:
            fields = QueryDict.parse(text, max_num_fields=max_fields)
        except ValueError:  # counted from the separators, before parsing
            raise HTTPError(
                400, f"the form has more than {max_fields} fields ([limits] max_form_fields)"
            ) from None
        if as_json:
            return fields
    return parse_payload(raw, as_json)


def _looks_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site(environ: dict) -> str | None:
    """Why a request comes from another site's web page, or None. A browser that once logged in
    to the admin API with HTTP Basic Auth sends those credentials with any request to it, also
    one a page of another site makes it send (a form posting a module's source to
    /zato/admin/deploy: cross-site request forgery). Browsers say where a request comes from
    (Sec-Fetch-Site; older ones send Origin with a POST); curl, the CLI and zato-client send
    neither, so they are never refused."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site: {site}"
    origin = environ.get("HTTP_ORIGIN")
    if origin is None or _origin_host(origin) == environ.get("HTTP_HOST", "").lower():
        return None
    return f"Origin: {origin[:100]}"


def _origin_host(origin: str) -> str | None:
    """An Origin's host and port, lower-case; None for one that cannot be read (an unclosed [ of
    an IPv6 address: urlsplit raises ValueError), which is then no site of ours."""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return None


def refuse_cross_site(environ: dict, cid: str, what: str) -> None:
    """A 403 for a request from another site's web page (cross_site), logged."""
    why = cross_site(environ)
    if why is not None:
        logger.warning(
            "cid %s: %s: refused a request from another site's web page (%s) from %s",
            cid,
            what,
            why,
            bodies.peer(environ),
        )
        raise HTTPError(403, f"{what} takes no requests from other sites' web pages ({why})")


def as_text(wsgi_str: str) -> str:
    """WSGI gives the path as latin-1 text of its bytes: the path as real (UTF-8) text."""
    return wsgi_str.encode("latin-1").decode("utf-8", "replace") if not wsgi_str.isascii() else wsgi_str


NO_BODY = (204, 304)  # statuses whose responses carry no content
# What a service's use of Redis raises while Redis cannot be reached: through our own API
# (zato.coord.client.translate), or through self.kvdb.conn, which is redis-py itself.
REDIS_AWAY = (CoordUnavailable, redis.ConnectionError, redis.TimeoutError)
REDIS_AWAY_SAID = "the cluster's Redis is not available; try again later"
AWAY_BURST = 5  # requests answered 503 for an outage said in full per interval, in each worker


def _failed(service: str, cid: str) -> HTTPError:
    """A failing service's 500, logged with the traceback being handled; the client learns no more."""
    logger.exception("cid %s: service %s failed", cid, service)
    return _failed_answer(service, cid)


def _failed_answer(service: str, cid: str) -> HTTPError:
    """A failing service's 500, for a failure the caller has logged in its own words."""
    return HTTPError(500, f"service {service} failed; see the server log for cid {cid}")


def _checked_status(value: object, service: str, cid: str, how: str) -> int:
    """A status a service gave (service_response.status_of), else its 500, logged naming the
    service, `how` it gave it and the value."""
    status = service_response.status_of(value)
    if status is None:
        said = "not a whole number 200-599 (a final HTTP status; 1xx ones are interim, no answer's)"
        logger.error("cid %s: service %s %s %.100r, %s", cid, service, how, value, said)
        raise _failed_answer(service, cid)
    return status


# A channel connector's kind (X-Zato-Channel: KIND:NAME) as Zato's self.channel.type.
CONNECTOR_CHANNEL_TYPES = {
    "amqp-channel": CHANNEL.AMQP,
    "zmq-channel": CHANNEL.ZMQ,
    "ibm-mq-channel": CHANNEL.IBM_MQ,
}
_INTERNAL_CHANNEL = ChannelInfo("internal", INTERNAL)


@functools.lru_cache(maxsize=1024)
def connector_channel(header: str) -> ChannelInfo:
    """self.channel of a message a channel connector hands over: its definition's name and
    Zato's type for it (amqp, zmq, websphere-mq); anything else is the internal channel."""
    kind, _, name = header.partition(":")
    kind_type = CONNECTOR_CHANNEL_TYPES.get(kind)
    if kind_type is None or not name or len(name) > 200 or not name.isprintable():
        return _INTERNAL_CHANNEL
    return ChannelInfo(name, kind_type)


class ServerApp:
    """The WSGI callable of one worker."""

    def __init__(
        self,
        worker: Worker,
        admin_app: Any = None,
        draining: DrainFlag | None = None,
        running: fatal.Running | None = None,
    ):
        from zato.server.zato_invoke import InvokeAPI  # it builds on this module

        self.worker = worker
        self.admin_app = admin_app
        self.internal_gate = InternalGate(worker.redis, worker.settings.cluster)  # stamps and epochs
        self.draining = draining or DrainFlag()
        self.limits = worker.settings.limits
        self.invoke_api = InvokeAPI(self)
        self.access_log = worker.settings.access_log
        self.running = running  # the requests in flight, for the arbiter if this worker ends
        self.warned_headers: set[tuple[str, str]] = set()  # (service, header) said to be dropped
        every = worker.settings.client_warning_interval  # [logging], 60 s by default
        self.malformed_said = bodies.Throttled(every)  # malformed bodies: one warning per `every` at most
        self.gone_said = bodies.Throttled(every)  # clients gone mid-body: the same
        self.slow_said = bodies.Throttled(every)  # bodies slower than body_timeout (408): the same
        # requests answered 503 because Redis or the ODB is away: at request rate, a few per `every`
        self.away_said = bodies.Throttled(every, burst=AWAY_BURST)
        self.rejections = rejections.Rejections(every)  # rejected credentials: a few per `every`
        self.slow_readers = SlowReaders(self.limits.send_timeout, every)  # answers never taken: closed

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        self.slow_readers.guard(environ, start_response)
        answer = self._answer(environ, start_response)
        if environ.get("REQUEST_METHOD") == "HEAD":  # the headers a GET gets, with no body (RFC 9110)
            return bodies.without_body(answer)
        return answer

    def _answer(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == PING_PATH:
            cid = new_cid()
            return self._send(start_response, 200, ping_body(cid), JSON, cid)
        if path == READY_PATH:
            return self._ready(start_response)
        if path == metrics.METRICS_PATH:
            return self._metrics(environ, start_response)
        supplied = environ.get("HTTP_X_ZATO_CID", "")
        cid = supplied if is_cid(supplied) else new_cid()
        environ[MAX_FORM_FIELDS_KEY] = self.limits.max_form_fields  # self.request.http.POST's limit
        token = CID.set(cid)  # log records of this request carry its CID
        in_flight = metrics.instruments().in_flight
        in_flight.inc()
        logged = self.access_log and not path.startswith(INTERNAL_PREFIX)  # not the connectors' calls
        answer = access_log.Answer(start_response) if logged else None
        running, begun = self.running, None
        try:
            if running is not None:
                method = environ.get("REQUEST_METHOD", "")
                # a load balancer's replay of a request that ended a worker: only idempotent methods
                # are replayed (etc/haproxy.cfg), so only they are looked up
                if method in REPLAYED and cid == supplied and running.ended_a_worker(cid):
                    return self._ended_a_worker(answer.start if answer else start_response, cid)
                begun = running.begin(cid, method, path)
            return self._serve(environ, answer.start if answer else start_response, path, cid)
        finally:
            if running is not None and begun is not None:
                running.end(begun)
            in_flight.dec()
            CID.reset(token)
            if answer is not None:
                answer.log(environ, cid)

    def _serve(self, environ: dict, start_response: StartResponse, path: str, cid: str) -> Iterable[bytes]:
        instruments = metrics.instruments()
        requests = instruments.requests
        try:
            # a service's name in a path: as_text, so ex.żółw (sent %-escaped UTF-8) is ex.żółw
            if path.startswith(INVOKE_PREFIX):
                instruments.child(requests, "internal").inc()
                return self._internal(environ, start_response, as_text(path[len(INVOKE_PREFIX) :]), cid)
            if path.startswith(batch.BATCH_PREFIX):
                instruments.child(requests, "internal").inc()
                service = as_text(path[len(batch.BATCH_PREFIX) :])
                return self._internal_batch(environ, start_response, service, cid)
            if path.startswith(batch.MESSAGES_PREFIX):
                instruments.child(requests, "internal").inc()
                service = as_text(path[len(batch.MESSAGES_PREFIX) :])
                return self._internal_batch(environ, start_response, service, cid, messages=True)
            if path == ADMIN_INVOKE:  # Zato's own clients' endpoints: served, so counted (before: not)
                instruments.child(requests, "invoke").inc()
                return self.invoke_api.admin_invoke(environ, start_response, cid)
            if path.startswith(API_INVOKE_PREFIX):
                instruments.child(requests, "invoke").inc()
                name = as_text(path[len(API_INVOKE_PREFIX) :])
                return self.invoke_api.api_invoke(environ, start_response, name, cid)
            if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
                instruments.child(requests, "admin").inc()
                return self._admin(environ, start_response, cid)
            instruments.child(requests, "channel").inc()
            return self._channel(environ, start_response, path, cid)
        except HTTPError as e:
            return self._send(start_response, e.status, error_body(cid, e.detail), JSON, cid, e.headers)
        except bodies.BodyError as e:
            if isinstance(e, bodies.Malformed):
                self._said_malformed(environ, path, cid, e)
            elif e.status == 408:
                self._said_slow(environ, path, cid, e)
            bodies.close_connection(start_response)
            answer = self._send(start_response, e.status, error_body(cid, e.detail), JSON, cid)
            if e.status in (413, 501):  # the rest of the body is read and dropped after the answer
                return bodies.Lingering(answer, environ["wsgi.input"], self.limits.body_timeout)
            return answer
        except bodies.ClientGone as e:
            self._said_gone(environ, path, cid, e)
            instruments.clients_gone.inc()  # after its line: a count read says that line was written
            bodies.close_connection(start_response)
            return self._send(start_response, 400, error_body(cid, "incomplete request body"), JSON, cid)
        except Exception:  # noqa: BLE001 - never a traceback to the client
            logger.exception("cid %s: unexpected error serving %s", cid, path)
            return self._send(start_response, 500, error_body(cid, "internal server error"), JSON, cid)

    def _said_malformed(self, environ: dict, path: str, cid: str, e: bodies.Malformed) -> None:
        """Bodies that break HTTP's framing: any client can send them, before any credentials
        (each is in the access log with its 400)."""
        addr = bodies.peer(environ)
        self._say_throttled(
            self.malformed_said, cid, "%s %s from %s answered 400: %s", environ, path, addr, e.detail
        )

    def _said_slow(self, environ: dict, path: str, cid: str, e: bodies.BodyError) -> None:
        """Bodies that did not arrive within body_timeout: any client can send a body slowly,
        a byte at a time, and hold a connection of the worker until then."""
        addr = bodies.peer(environ)
        what = "%s %s from %s answered 408: %s ([limits] body_timeout); connection closed"
        self._say_throttled(self.slow_said, cid, what, environ, path, addr, e.detail)

    def _said_gone(self, environ: dict, path: str, cid: str, e: bodies.ClientGone) -> None:
        """Clients that left mid-body: any client can open and drop connections in a loop (each
        is counted in zato_server_clients_gone_total)."""
        self._say_throttled(self.gone_said, cid, "client went away during %s %s: %s", environ, path, e)

    @staticmethod
    def _say_throttled(
        said: bodies.Throttled, cid: str, what: str, environ: dict, path: str, *args: object
    ) -> None:
        """One WARNING line per `said.every` seconds at most of `what` (its first two %s: the
        request's method and path), the next one saying how many went unsaid; nothing is
        formatted meanwhile."""
        unsaid = said.due()
        if unsaid is None:
            return
        method = bodies.one_line(environ.get("REQUEST_METHOD", ""), 40)
        logger.warning(
            f"cid %s: {what} (said {said.how_often} at most in each worker; %d more since the last time)",
            cid,
            method,
            bodies.one_line(as_text(path)),
            *args,
            unsaid,
        )

    def said_away(self, cid: str, what: str, *args: object) -> None:
        """A request answered 503 because the cluster's Redis or the ODB is away: each client's
        request would be a line (1,000 a second under load), so said in full AWAY_BURST times
        per [logging] client_warning_interval at most in each worker, the next line saying how
        many went unsaid (each is in the access log with its 503 and CID; the process's own lines
        say the outage: zato.coord.health)."""
        unsaid = self.away_said.due()
        if unsaid is None:
            return
        logger.error(
            f"cid %s: {what}; answered 503 (said {self.away_said.how_often} at most in each worker;"
            " %d more since the last time)",
            cid,
            *args,
            unsaid,
        )

    def _ended_a_worker(self, start_response: StartResponse, cid: str) -> list[bytes]:
        detail = (
            f"this request was running, alone, when a worker of server {self.worker.settings.name} ended "
            "(see that server's log for its CID); it is not run again"
        )
        logger.warning("cid %s: not run: it was running, alone, when a worker of this server ended", cid)
        return self._send(start_response, 500, error_body(cid, detail), JSON, cid)

    def _metrics(self, environ: dict, start_response: StartResponse) -> list[bytes]:
        cid = new_cid()
        s = self.worker.settings
        if s.metrics_password and not self._scrape_allowed(environ, cid):
            body = error_body(cid, "wrong or missing credentials ([metrics] in the server's server.conf)")
            return self._send(start_response, 401, body, JSON, cid, [("WWW-Authenticate", METRICS_REALM)])
        key = member_key(s.cluster_secret, s.cluster)  # count only members signed for this cluster
        accept = environ.get("HTTP_ACCEPT", "")
        body, ctype = metrics.exposition(
            self.worker.redis, s.cluster, key, accept, self.worker.defined_connectors
        )
        return self._send(start_response, 200, body, ctype, cid)

    def _scrape_allowed(self, environ: dict, cid: str) -> bool:
        """A scrape of a server with a [metrics] password must send [metrics] username and
        password (HTTP Basic); other credentials are rejected as the admin API's are: said a
        few times an interval, each counted."""
        s = self.worker.settings
        user, password = basic_auth(environ.get("HTTP_AUTHORIZATION", ""))
        ok_user = hmac.compare_digest(user.encode(), s.metrics_username.encode())
        ok_password = hmac.compare_digest(password.encode(), s.metrics_password.encode())
        if user and ok_user and ok_password:
            return True
        what = "/metrics: rejected credentials for user %r from %s"
        self.rejections.say(rejections.METRICS, cid, what, said_user(user), bodies.peer(environ))
        return False

    @staticmethod
    def _send(
        start_response: StartResponse,
        status: int,
        body: bytes,
        ctype: str,
        cid: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        if status in NO_BODY or 100 <= status < 200:  # RFC 9110: no content, so no Content-Type either
            start_response(STATUS.get(status, f"{status} Unknown"), [("X-Zato-CID", cid), *(extra or [])])
            return [b""]
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), ("X-Zato-CID", cid)]
        start_response(STATUS.get(status, f"{status} Unknown"), headers + (extra or []))
        return [body]

    def _run(self, service: str, request: Request, cid: str) -> Response:
        try:
            response = self.worker.store.run(service, cid, request)
        except ServiceNotFound:
            if service in self.worker.store.services:  # the service asked for one that is not there
                raise _failed(service, cid) from None
            raise HTTPError(404, f"no such service: {service}") from None
        except InputError as e:
            raise HTTPError(400, str(e)) from None
        except OutgoingNotFound as e:  # the cluster's configuration, not the client's request: a 500
            used_by = e.service or service
            if used_by != service:
                used_by += f" (invoked by {service})"
            logger.warning(
                "cid %s: service %s: %s (not defined, or not active); answered 500", cid, used_by, e
            )
            raise HTTPError(500, str(e)) from None
        except NotSupported as e:  # a Zato API left out on purpose: the service's 500, naming it
            used_by = e.service or service
            if used_by != service:
                used_by += f" (invoked by {service})"
            logger.warning("cid %s: service %s: %s; answered 500", cid, used_by, e)
            raise HTTPError(500, str(e)) from None
        except ODBError as e:  # an outgoing connection never read before, while the ODB is away
            self.said_away(cid, "service %s: %s", service, e)
            raise HTTPError(503, "the configuration database is not available; try again later") from None
        except REDIS_AWAY as e:  # self.cache, self.lock, invoke_async or self.kvdb while Redis is away
            self.said_away(cid, "service %s: the cluster's Redis is not available: %s", service, e)
            raise HTTPError(503, REDIS_AWAY_SAID) from None
        except Reportable as e:  # Zato's Reportable(cid, msg, status) or a subclass of a fixed status
            status = _checked_status(e.status, service, cid, f"raised {type(e).__name__} with status")
            if status >= 500:
                logger.exception("cid %s: service %s failed", cid, service)
            headers = self._checked_headers(dict(e.headers), service, cid).send if e.headers else []
            raise HTTPError(
                status, e.msg or STATUS.get(status, f"{status} HTTP {status}")[4:], headers
            ) from None
        except Exception as e:  # noqa: BLE001 - a failing service is a 500, logged with its traceback
            refusal = refuses_writes(e)  # self.lock or self.kvdb.conn while Redis refuses writes
            if refusal:
                self.said_away(cid, "service %s: the cluster's Redis refuses writes (%s)", service, refusal)
                raise HTTPError(503, REDIS_AWAY_SAID) from None
            raise _failed(service, cid) from None
        response.status_code = _checked_status(
            response.status_code, service, cid, "set self.response.status_code to"
        )
        return response

    def _headers(self, response: Response, service: str, cid: str) -> list[tuple[str, str]]:
        """The service's own headers to send; a Content-Type header becomes its content type,
        and self.response.content_encoding is a Content-Encoding header (checked as the others)."""
        given = response.headers
        if response.content_encoding is not None:
            given = {**given, "Content-Encoding": response.content_encoding}
        if not given:
            return []
        checked = self._checked_headers(given, service, cid)
        if checked.content_type is not None:
            response.content_type = checked.content_type
        return checked.send

    def _checked_headers(self, given: dict, service: str, cid: str) -> service_response.Headers:
        """Headers a service gave, sorted out (zato.server.service_response): one HTTP cannot
        carry is the service's 500; one the server sets itself is dropped, said once per
        service and header in each worker."""
        checked = service_response.service_headers(given)
        if checked.problem:
            logger.error("cid %s: service %s set %s", cid, service, checked.problem)
            raise _failed_answer(service, cid)
        for name in checked.dropped:
            said = (service, name.lower())
            if said not in self.warned_headers:
                self.warned_headers.add(said)
                logger.warning(
                    "service %s set response header %s, which the server sets itself; it is dropped "
                    "(said once per service and header)",
                    service,
                    name,
                )
        return checked

    @staticmethod
    def _render(response: Response, service: str, cid: str) -> tuple[bytes, str]:
        """The response's body and type; a payload JSON cannot hold (a set, an object, NaN) is
        the service's failure: a 500, logged with the service's name and the reason."""
        try:
            return render(response.payload, response.content_type)
        except UnicodeEncodeError as e:  # a str payload: a ValueError, but JSON is not what failed
            logger.error(
                "cid %s: service %s answered with text UTF-8 cannot hold (%s: a lone surrogate, such as"
                " a JSON \\ud800 escape it was sent, is half a character)",
                cid,
                service,
                e,
            )
            raise _failed_answer(service, cid) from None
        except (TypeError, ValueError) as e:
            logger.error("cid %s: service %s answered with a payload that is not JSON: %s", cid, service, e)
            raise _failed_answer(service, cid) from None

    def _reply(
        self,
        start_response: StartResponse,
        response: Response,
        body: bytes,
        ctype: str,
        cid: str,
        extra: list[tuple[str, str]],
    ) -> list[bytes]:
        """The answer of a service, with `extra`, its own headers as _headers sorted them out."""
        return self._send(start_response, response.status_code, body, ctype, cid, extra)

    def _ready(self, start_response: StartResponse) -> list[bytes]:
        """Readiness: 200 once this worker loaded its services, 503 while starting or draining."""
        cid = new_cid()
        reason = not_ready_reason(self.worker.loaded, self.draining.is_set())
        if reason:
            return self._send(start_response, 503, error_body(cid, reason), JSON, cid)
        return self._send(start_response, 200, ready_body(cid), JSON, cid)

    def _wait_loaded(self) -> None:
        """A request that reaches a worker still loading waits for it (bounded), never a 404."""
        if not self.worker.wait_loaded(self.worker.settings.deploy_timeout):
            raise HTTPError(503, "the server is starting: its services are not loaded yet")

    # User channels

    def _channel(self, environ: dict, start_response: StartResponse, path: str, cid: str) -> list[bytes]:
        self._wait_loaded()
        path = as_text(path)  # as channels' paths are kept (zato.odb.api.canonical_url_path)
        found = self.worker.channels.match(path)
        method = environ.get("REQUEST_METHOD", "GET")
        instruments = metrics.instruments()
        counter = instruments.channel_requests
        if method not in HTTP_METHODS:  # RFC 9110 15.6.2: a method the server does not implement
            any_method = found[0].get(None) if found else None
            if any_method is not None:  # the channel it would have run: counted, the method as "other"
                instruments.child(counter, any_method.name, OTHER_METHOD, "501").inc()
            said = bodies.one_line(method, 40)
            raise HTTPError(501, f"method {said} is not implemented; channels take {' '.join(HTTP_METHODS)}")
        if found is None:
            raise HTTPError(404, f"no channel serves {path}")
        by_method, params = found
        ch = by_method.get(method) or by_method.get(None)
        if ch is None and method == "HEAD":  # HEAD wherever GET is (RFC 9110); gunicorn sends no body
            ch = by_method.get("GET")
        if ch is None:
            allowed = {m for m in by_method if m} | ({"HEAD"} if "GET" in by_method else set())
            raise HTTPError(
                405, f"method {method} is not allowed for {path}", [("Allow", ", ".join(sorted(allowed)))]
            )
        try:
            security = None
            if ch.security:
                security, hidden = self._secured(ch, environ, cid)
                environ["zato.user"] = security.username or security.name  # for the access log
                # the caller's credentials are not the service's to see: Authorization (HTTP Basic)
                # and an API key's header, also in self.request.environ (before, Basic's was there)
                environ = {k: v for k, v in without_credentials(environ).items() if k != hidden}
            raw = self._body(environ, ch.max_body)  # the channel's own limit when it has one
            query = environ.get("QUERY_STRING")
            request = Request(
                payload=channel_payload(raw, environ, ch.data_format == "json", self.limits.max_form_fields),
                raw=raw,
                method=method,
                path=path,
                params=QueryDict.parse(query or ""),
                path_params=params or None,
                environ=environ,
                channel=http_channel(ch.name, security),
            )
            response = self._run(ch.service, request, cid)
            extra = self._headers(response, ch.service, cid)
            text = isinstance(response.payload, str)
            if text and ch.data_format == "json" and response.content_type is None:
                response.content_type = JSON  # as Zato: a JSON channel answers JSON, dumps()'d text too
            body, ctype = self._render(response, ch.service, cid)
        except (HTTPError, bodies.BodyError) as e:  # a refused body (413, 408, malformed) too
            instruments.child(counter, ch.name, method, str(e.status)).inc()
            raise
        except bodies.ClientGone:  # answered 400 (_serve), if the client is still there to read it
            instruments.child(counter, ch.name, method, "400").inc()
            raise
        except Exception:  # answered 500 (_serve)
            instruments.child(counter, ch.name, method, "500").inc()
            raise
        instruments.child(counter, ch.name, method, str(response.status_code)).inc()
        return self._reply(start_response, response, body, ctype, cid, extra)

    def _secured(self, ch: ChannelRecord, environ: dict, cid: str) -> tuple[SecurityInfo, str | None]:
        """What the caller of a secured channel authenticated as; a 401 if it did not."""
        try:
            return self.worker.guard.check(ch.name, str(ch.security), environ)
        except Refused as e:
            if e.reason:  # else the channel refuses everyone, which was said once
                addr = bodies.peer(environ)
                what = "HTTP channel %s: rejected credentials (%s) from %s"
                self.rejections.say(rejections.CHANNEL, cid, what, ch.name, e.reason, addr, channel=ch.name)
            raise HTTPError(401, e.detail, e.headers) from None
        except ODBError as e:
            logger.error("HTTP channel %s: cannot read its security definition: %s", ch.name, e)
            detail = "cannot check credentials now: the configuration database is not available"
            raise HTTPError(503, detail) from None

    # Connectors -> server

    def _internal(self, environ: dict, start_response: StartResponse, service: str, cid: str) -> list[bytes]:
        raw = self._checked_internal(environ, service, service, cid)
        request = self._internal_request(environ, raw, is_json(environ.get("CONTENT_TYPE", "")))
        response = self._run(service, request, cid)
        extra = self._headers(response, service, cid)
        return self._reply(start_response, response, *self._render(response, service, cid), cid, extra)

    def _internal_batch(
        self, environ: dict, start_response: StartResponse, service: str, cid: str, messages: bool = False
    ) -> list[bytes]:
        """Several invocations of `service` in one call (zato.common.batch): checked once,
        each item run as its own invocation with its own CID, concurrently. `messages`: each
        body comes after its message's metadata, and a result says what the service asked
        of its message (self.request.amqp.ack() / reject())."""
        signed_as = batch.messages_service(service) if messages else batch.batch_service(service)
        raw = self._checked_internal(environ, service, signed_as, cid)
        try:
            if messages:
                items: list[tuple[bytes | None, bytes]] = list(batch.decode_messages(raw))
            else:
                items = [(None, item) for item in batch.decode_items(raw)]
        except batch.BatchError as e:
            raise HTTPError(400, f"malformed batch: {e}") from None
        as_json = is_json(environ.get(batch.ITEMS_ENVIRON, ""))
        results: list[tuple[int, str, str]] = [(500, "not run", "")] * len(items)

        def one(i: int) -> None:
            item_cid = cid if len(items) == 1 else new_cid()  # a lone message keeps the call's CID
            token = CID.set(item_cid)
            meta, body = items[i]
            request: Request | None = None
            try:
                request = self._internal_request(environ, body, as_json, meta)
                response = self._run(service, request, item_cid)
                detail = ""
                if not 200 <= response.status_code < 300:  # the service set it: say what it answered
                    rendered = self._render(response, service, item_cid)[0]
                    detail = rendered[:500].decode(errors="replace")
                results[i] = (response.status_code, detail, request.settle)
            except HTTPError as e:  # a service that acked its message and then failed: still acked
                results[i] = (e.status, e.detail, request.settle if request else "")
            except Exception:  # noqa: BLE001 - one item's bug is that item's 500, the others stand
                logger.exception("cid %s: item %d of a batch for %s failed", item_cid, i + 1, service)
                detail = f"internal server error; see the server log for cid {item_cid}"
                results[i] = (500, detail, request.settle if request else "")
            finally:
                CID.reset(token)

        if len(items) == 1:
            one(0)
        else:
            gevent.joinall([gevent.spawn(one, i) for i in range(len(items))])
        return self._send(start_response, 200, batch.encode_results(results), JSON, cid)

    def _checked_internal(self, environ: dict, service: str, signed_as: str, cid: str) -> bytes:
        """The body of an internal call whose signature and epoch hold; HTTPError otherwise."""
        if environ.get("REQUEST_METHOD") != "POST":
            raise HTTPError(405, "the internal invoke endpoint accepts POST only", [("Allow", "POST")])
        addr, said_service = bodies.peer(environ), bodies.one_line(service)
        try:
            epoch = self._epoch(environ)
        except HTTPError:
            what = "internal invoke of %s refused: bad or missing X-Zato-Epoch from %s"
            self.rejections.say(rejections.INTERNAL, cid, what, said_service, addr)
            raise
        raw = self._body(environ)
        signature = environ.get("HTTP_X_ZATO_SIGNATURE", "")
        call_cid = environ.get("HTTP_X_ZATO_CID", "")
        stamp = environ.get("HTTP_X_ZATO_STAMP", "")
        secret = self.worker.settings.cluster_secret
        if not signature or not verify(secret, signature, epoch, signed_as, call_cid, stamp, raw):
            what = "internal invoke of %s refused: bad or missing X-Zato-Signature for epoch %d from %s"
            self.rejections.say(rejections.INTERNAL, cid, what, said_service, epoch, addr)
            raise HTTPError(401, "bad or missing X-Zato-Signature", CALL_REFUSED)
        parsed = parse_stamp(stamp)
        if parsed is None:  # signed, so from a connector of another version (v1 signs no stamp)
            what = "internal invoke of %s refused: bad or missing X-Zato-Stamp from %s"
            self.rejections.say(rejections.INTERNAL, cid, what, said_service, addr)
            detail = "bad or missing X-Zato-Stamp (MILLISECONDS-NONCE, signed with the call)"
            raise HTTPError(401, detail, CALL_REFUSED)
        self._wait_loaded()
        try:
            admission = self.internal_gate.admit(*parsed)
        except CoordError as e:
            logger.error("cid %s: cannot check the call's stamp and epoch: %s", cid, e)
            raise HTTPError(
                503,
                "cannot check the call's stamp and the lease epoch (Redis away, or its epoch unreadable)",
            ) from None
        if admission.refusal:
            what = "internal invoke of %s refused: %s (from %s)"
            self.rejections.say(rejections.INTERNAL, cid, what, said_service, admission.refusal, addr)
            raise HTTPError(401, f"call refused: {admission.refusal}", CALL_REFUSED)
        if epoch < admission.newest:
            newest = admission.newest
            logger.warning("cid %s: refused stale action %s: epoch %d < %d", cid, service, epoch, newest)
            raise HTTPError(409, f"stale epoch {epoch}; the newest is {newest}", CALL_STALE)
        return raw

    @staticmethod
    def _internal_request(environ: dict, raw: bytes, as_json: bool, meta: bytes | None = None) -> Request:
        return Request(
            payload=parse_payload(raw, as_json, allow_nan=True),  # as the connector's own check took it
            raw=raw,
            method="POST",
            path=environ.get("PATH_INFO", ""),
            environ=without_credentials(environ),
            channel=connector_channel(environ.get("HTTP_X_ZATO_CHANNEL", "")),
            meta=meta,
        )

    def _body(self, environ: dict, max_body: int | None = None) -> bytes:
        limit = self.limits.max_body if max_body is None else max_body
        return bodies.read_body(environ, limit, self.limits.body_timeout)

    @staticmethod
    def _epoch(environ: dict) -> int:
        """The epoch a call is signed under: part of its credentials (the signature's key is
        derived from it), so one missing or not a whole number is a 401, as a missing signature
        is (before: 400, which a connector takes for the service refusing the message itself)."""
        raw = environ.get("HTTP_X_ZATO_EPOCH", "").strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 15):
            raise HTTPError(
                401,
                "bad or missing X-Zato-Epoch (the lease epoch the call is signed under: a whole number)",
                CALL_REFUSED,
            )
        return int(raw)

    # Admin API

    def _admin(self, environ: dict, start_response: StartResponse, cid: str) -> Iterable[bytes]:
        user = self._check_admin(environ, cid)
        if environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS:
            refuse_cross_site(environ, cid, "the admin API")
        environ["zato.user"] = user  # for the access log
        if self.admin_app is None:
            raise HTTPError(503, "the admin API is not available")
        environ = dict(environ)
        raw = self._body(environ)  # within [limits], so bottle never reads a socket itself
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + ADMIN_PREFIX
        environ["PATH_INFO"] = environ["PATH_INFO"][len(ADMIN_PREFIX) :] or "/"
        environ["zato.cid"], environ["zato.admin_user"] = cid, user

        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("X-Zato-CID", cid)], exc_info)

        return self.admin_app(environ, start)

    def _check_admin(self, environ: dict, cid: str) -> str:
        settings = self.worker.settings
        user, password = basic_auth(environ.get("HTTP_AUTHORIZATION", ""))
        ok_user = hmac.compare_digest(user.encode(), settings.admin_username.encode())
        ok_password = hmac.compare_digest(password.encode(), settings.admin_password.encode())
        if not (user and ok_user and ok_password):
            what = "admin API: rejected credentials for user %r from %s"
            self.rejections.say(rejections.ADMIN, cid, what, said_user(user), bodies.peer(environ))
            raise HTTPError(
                401, "wrong or missing credentials", [("WWW-Authenticate", 'Basic realm="Zato admin API"')]
            )
        return user
