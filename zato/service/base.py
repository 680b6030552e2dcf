"""The Service base class, in Zato's style: subclass it and implement handle(self).

class GetClient(Service):
    name = "crm.get-client"              # optional; or a get_name() static method;
                                         # else "module-name.class-name"
    class SimpleIO:
        input_required = ("id",)
        output_required = ("id", "name")

    def handle(self):
        self.logger.info("cid %s", self.cid)
        self.response.payload = {"id": self.request.input.id, "name": "x"}

`from zato.server.service import Service` is the same class (Zato's import path).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from zato.common import jsonenc
from zato.common.api import CHANNEL, DATA_FORMAT, URL_TYPE, ZATO_OK
from zato.common.errors import ServiceError
from zato.service.logger import service_logger
from zato.service.query import QueryDict
from zato.service.sio import NO_IO, Bunch, IODecl, bunchify
from zato.service.timeutil import TIME
from zato.service.unsupported import SERVICE as UNSUPPORTED_ATTRS
from zato.service.unsupported import refuse_on

# Zato's channel type names (self.channel.type).
HTTP_SOAP, INVOKE, INVOKE_ASYNC, INTERNAL = (
    CHANNEL.HTTP_SOAP,
    CHANNEL.INVOKE,
    CHANNEL.INVOKE_ASYNC,
    CHANNEL.INTERNAL,
)
INVOKE_ASYNC_CALLBACK = CHANNEL.INVOKE_ASYNC_CALLBACK
NEW_INSTANCE = CHANNEL.NEW_INSTANCE


@dataclass(frozen=True)
class SecurityInfo:
    """self.channel.security on a secured HTTP channel: what the caller was checked against."""

    name: str  # the security definition
    type: str  # basic_auth | apikey (Zato's names)
    username: str | None = None  # basic_auth: the user the caller authenticated as


class ChannelInfo(str):
    """self.channel: Zato 3.x's object, `.name`, `.type` and `.security` (None: a channel open to
    any caller), which is also the channel's type as text, as Zato 2.0's self.channel was (its
    docs: "Type of the channel (not its name)"): `self.channel == CHANNEL.AMQP`,
    `'{}'.format(self.channel)` is `amqp`, and JSON writes it as `"amqp"`. Immutable: one is
    shared by every request of a channel."""

    name: str
    type: str
    security: SecurityInfo | None

    def __new__(cls, name: str, type: str, security: SecurityInfo | None = None) -> ChannelInfo:  # noqa: A002
        info = super().__new__(cls, type)
        for key, value in (("name", name), ("type", type), ("security", security)):
            object.__setattr__(info, key, value)
        return info

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"self.channel is read-only (cannot set {key})")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"self.channel is read-only (cannot delete {key})")

    def __getnewargs__(self) -> tuple:  # type: ignore[override]  # copy and pickle make it again
        return (self.name, self.type, self.security)

    def __repr__(self) -> str:
        return f"ChannelInfo(name={self.name!r}, type={self.type!r}, security={self.security!r})"


DEFAULT_CHANNEL = ChannelInfo("invoke", INVOKE)


@functools.lru_cache(maxsize=4096)
def http_channel(name: str, security: SecurityInfo | None = None) -> ChannelInfo:
    """self.channel of an HTTP channel (made once per channel name and security)."""
    return ChannelInfo(name, HTTP_SOAP, security)


_EMPTY: dict = {}
DIRECT = frozenset({INVOKE, INVOKE_ASYNC, INVOKE_ASYNC_CALLBACK})  # invoked by another service
MAX_FORM_FIELDS_KEY = "zato.max_form_fields"  # in the WSGI environ: the server's limit
DEFAULT_MAX_FORM_FIELDS = 1000  # as [limits] max_form_fields


class HTTPData:
    """self.request.http: the HTTP side of a request."""

    def __init__(self, request: Request):
        self._request = request

    method = property(lambda self: self._request.method)
    path = property(lambda self: self._request.path)
    headers = property(lambda self: self._request.headers)
    GET = property(lambda self: self._request.params)  # the query string

    @property
    def user_agent(self) -> str | None:
        """The User-Agent header the caller sent, None without one (as in Zato)."""
        return (self._request.environ or _EMPTY).get("HTTP_USER_AGENT")

    @property
    def POST(self) -> dict:  # noqa: N802 - Zato's name
        """Form fields of an application/x-www-form-urlencoded body; more fields than the
        server's `[limits] max_form_fields` are a BadRequest (400), as the channel's own parse."""
        from zato.common.exception import BadRequest

        if not jsonenc.is_form(self._request.headers.get("Content-Type")):
            return QueryDict()
        max_fields = (self._request.environ or _EMPTY).get(MAX_FORM_FIELDS_KEY, DEFAULT_MAX_FORM_FIELDS)
        text = self._request.raw.decode("utf-8", "replace")
        try:
            return QueryDict.parse(text, max_num_fields=max_fields)
        except ValueError:  # counted from the separators, before parsing
            msg = f"the form has more than {max_fields} fields ([limits] max_form_fields)"
            raise BadRequest("", msg) from None

    @property
    def params(self) -> dict:
        """URL path parameters, then the query string."""
        return {**self._request.params, **self._request.path_params}

    def get_form_data(self) -> dict:
        """Zato 3.2's: the form fields of the body, as POST."""
        return self.POST


class Request:
    """What a service receives: self.request.input / payload / raw_request / http."""

    __slots__ = (
        "payload",
        "raw",
        "method",
        "path",
        "_headers",
        "params",
        "path_params",
        "environ",
        "channel",
        "input",
        "in_reply_to",
        "_meta",
        "_message",
        "cid",
    )

    def __init__(
        self,
        payload: Any = None,  # parsed JSON (data format json), else str, or bytes if not UTF-8
        raw: bytes = b"",
        method: str = "POST",
        path: str = "",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,  # the query string (a QueryDict: getlist too)
        path_params: dict[str, str] | None = None,  # from a channel's /items/{id}
        environ: dict | None = None,
        channel: ChannelInfo = DEFAULT_CHANNEL,
        in_reply_to: str | None = None,  # an invoke_async callback: the CID of the call it answers
        meta: bytes | None = None,  # a channel connector's message: what the broker said of it
    ):
        self.payload, self.raw, self.method, self.path = payload, raw, method, path
        self.in_reply_to = in_reply_to
        self._headers = headers
        self.params = params if params is not None else QueryDict()
        self.path_params = path_params if path_params is not None else _EMPTY
        self.environ = environ
        self.channel = channel
        self.input: Any = Bunch()
        self._meta = meta
        self._message: Any = None
        self.cid = ""  # Zato 4.1's self.request.cid: the invocation's CID, set by the store

    @property
    def data_format(self) -> str:
        """Zato 4.1's self.request.data_format: always JSON here (XML and the others are not)."""
        return DATA_FORMAT.JSON

    @property
    def transport(self) -> str | None:
        """Zato 4.1's self.request.transport: Zato's `plain_http` on an HTTP channel, else None."""
        return URL_TYPE.PLAIN_HTTP if self.channel.type == HTTP_SOAP else None

    @property
    def message(self) -> Any:
        """The message's side (zato.service.messages), read from its metadata on first use."""
        if self._message is None and self._meta is not None:
            from zato.service.messages import parse

            self._message, self._meta = parse(self._meta, self.raw), None
        return self._message

    @property
    def amqp(self) -> Any:
        """Zato's self.request.amqp on an AMQP channel: .msg, .ack(), .reject(); else None."""
        from zato.service.messages import AMQPRequest

        message = self.message
        return message if isinstance(message, AMQPRequest) else None

    @property
    def ibm_mq(self) -> Any:
        """Zato's self.request.ibm_mq (also .wmq) on an IBM MQ channel: the MQMD; else None."""
        from zato.service.messages import IBMMQRequest

        message = self.message
        return message if isinstance(message, IBMMQRequest) else None

    wmq = ibm_mq

    @property
    def settle(self) -> str:
        """What the service asked of its AMQP message: "", "ack", "reject" or "requeue"."""
        amqp = self.amqp if self._message is not None else None
        return amqp.settle if amqp is not None else ""

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = headers_of(self.environ or _EMPTY)
        return self._headers

    @property
    def raw_request(self) -> Any:
        """The request body as received (text when it is UTF-8); for a service invoked directly
        (self.invoke, invoke_async), the Python object it was given, as Zato 2.0's docs say."""
        if not self.raw and self.environ is None and self.channel.type in DIRECT:
            return "" if self.payload is None else self.payload
        try:
            return self.raw.decode("utf-8")
        except UnicodeDecodeError:
            return self.raw

    @property
    def http(self) -> HTTPData:
        return HTTPData(self)

    def bunchified(self) -> Any:
        """Zato's self.request.bunchified(): the parsed payload with attribute access on every
        dict in it (`.customer.address.city`), a copy the service may change."""
        return bunchify(self.payload)


# What the service sees of its request: never how the caller authenticated itself.
HIDDEN_ENV = ("HTTP_AUTHORIZATION", "HTTP_X_ZATO_SECRET", "HTTP_X_ZATO_SIGNATURE")


def without_credentials(environ: dict) -> dict:
    """A copy of a WSGI environ for a service on an authenticated endpoint: no credentials."""
    return {k: v for k, v in environ.items() if k not in HIDDEN_ENV}


class HTTPHeaders(dict):
    """self.request.http.headers: the request's headers under their usual names (`Content-Type`,
    `X-Api-Version`), found whatever the case a service asks in (`headers.get("content-type")`,
    `headers["X-API-VERSION"]`, `"x-api-version" in headers`), as HTTP header names are
    case-insensitive (RFC 9110 5.1) and services written for other frameworks ask in lower case."""

    def _name(self, key: Any) -> Any:
        """The name `key` is kept under, or `key` itself when no header has it."""
        if not isinstance(key, str) or dict.__contains__(self, key):
            return key
        titled = key.title()  # how headers_of names them
        if dict.__contains__(self, titled):
            return titled
        lower = key.lower()
        return next((k for k in self if isinstance(k, str) and k.lower() == lower), key)

    def __getitem__(self, key: Any) -> str:
        return dict.__getitem__(self, self._name(key))

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._name(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, self._name(key), default)


def headers_of(environ: dict) -> HTTPHeaders:
    """HTTP headers from a WSGI environ, Content-Type and Content-Length included."""
    out = HTTPHeaders(
        (k[5:].replace("_", "-").title(), v)
        for k, v in environ.items()
        if k.startswith("HTTP_") and k not in HIDDEN_ENV
    )
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            out[name] = environ[key]
    return out


class Response:
    __slots__ = (
        "payload",
        "status_code",
        "content_type",
        "content_encoding",
        "headers",
        "result",
        "result_details",
    )

    def __init__(self, payload: Any = None):
        self.payload = payload  # dict/list -> JSON, str -> text, bytes -> as is, None -> empty
        self.status_code = 200
        self.content_type: str | None = None  # derived from the payload when None
        self.content_encoding: str | None = None  # Zato's shorthand for a Content-Encoding header
        self.headers: dict[str, str] = {}
        self.result = ZATO_OK  # Zato's: ZATO_ERROR makes the answer an error (zato.service.store)
        self.result_details = ""  # ... whose details the caller gets


def utcnow() -> dt.datetime:
    """Now in UTC, without a tzinfo, as Zato's datetimes are."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Store(Protocol):
    """What a service reaches through the store that runs it (zato.service.store.ServiceStore
    is the implementation; declared here so that base does not import store, which imports base)."""

    outgoing: Any
    kvdb: Any
    cache: Any
    server: Any
    config: Any  # zato.service.user_config.UserConfig
    crypto: Any  # zato.service.crypto.CryptoAPI, or None
    services: dict[str, type[Service]]
    modules: dict[str, tuple[str, tuple[str, ...]]]

    def get(self, name: str) -> type[Service]: ...

    def name_of_impl(self, impl_name: str) -> str: ...

    def invoke(
        self,
        name: str,
        payload: Any = None,
        cid: str | None = None,
        request: Request | None = None,
        chain: tuple[str, ...] = (),
    ) -> Response: ...

    def invoke_async(
        self, name: str, payload: Any = None, cid: str | None = None, callbacks: tuple[str, ...] = ()
    ) -> str: ...


# Services one request may have running inside each other through invoke(): a chain deeper
# than this is a loop (a -> b -> a ...) and stops with its names, not a RecursionError logged
# with a traceback of some 300 KB.
MAX_INVOKE_DEPTH = 50

# Keyword arguments of Zato's invoke() that are never the other service's input.
_INVOKE_KEYS = frozenset({"cid", "target", "set_response_func", "skip_response_elem"})


def _service_name(given: Any) -> str:
    """A service's name from its name, its class or an instance (`callback=self`)."""
    if isinstance(given, str):
        return given
    get_name = getattr(given, "get_name", None)  # a class: its name (Zato's get_name() or `name`)
    name = get_name() if isinstance(given, type) and callable(get_name) else getattr(given, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"{given!r} is not a service nor a service's name")
    return name


def _as_data_format(payload: Any, data_format: Any, target: str) -> Any:
    """Zato's `self.invoke(name, dumps(data), data_format=DATA_FORMAT.JSON)`: JSON text is
    parsed for the other service, as a JSON channel parses a body; any other payload is as given."""
    if data_format != DATA_FORMAT.JSON or not isinstance(payload, (str, bytes, bytearray)):
        return payload
    if not payload.strip():
        return None
    try:
        return jsonenc.loads_strict(bytes(payload) if isinstance(payload, bytearray) else payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        said = "nested too deeply" if isinstance(e, RecursionError) else jsonenc.error_text(e)
        raise ServiceError(
            f"invoke of {target} with data_format='json': the payload is not JSON: {said}"
        ) from None


def _serialized(payload: Any) -> Any:
    """Zato 2.0's invoke(..., serialize=True): the response as the JSON text its caller over
    HTTP would get (a dict, a list, a model...); text or bytes as they are, None as None."""
    if payload is None or isinstance(payload, (str, bytes)):
        return payload
    return jsonenc.dumps(payload)


class Service:
    """Base of every service. One instance per invocation."""

    name: str | None = None  # set by the store to the service's cluster-wide name
    time = TIME
    _zato_io: IODecl = NO_IO  # parsed once by the store (zato.service.sio)
    _zato_finalizes = False  # set by the store: the class has its own finalize_handle
    _zato_verbs: frozenset[str] = frozenset()  # set by the store: X of its handle_X methods
    _zato_chain: tuple[str, ...] = ()  # set by the store: the services this one runs inside, and itself
    impl_name = ""  # set by the store: Zato's module.ClassName of the service
    # Zato's scheduler job type (one_time, interval_based, cron_style) of a service a job
    # invoked, else None; its docs say to check it: there is no scheduler here, so never a job.
    job_type: str | None = None
    # Zato's: milliseconds past which an invocation is slow (Zato keeps those for its
    # web-admin's statistics; here server.log gets a WARNING naming the service and the time).
    slow_threshold: float = 99999
    logger: Any = service_logger("zato.service")  # the store sets zato.service.<name> per class

    def __init__(self, *args: Any, **ignored_kwargs: Any):
        """As Zato's, a service's constructor needs no arguments: a service (or a base class of
        services) may have its own `__init__(self)` that calls `super().__init__()`, and it runs
        once the invocation's CID, request and response are there (the store makes each service
        with Service._zato_new). Given a store, a CID and a request, it is bound to them."""
        if len(args) >= 3:
            self._zato_bind(*args[:3])

    @classmethod
    def _zato_new(cls, store: Store, cid: str, request: Request) -> Service:
        """An instance for one invocation: bound to it, then the class's own __init__ run
        without arguments, as Zato makes its services."""
        service = cls.__new__(cls)
        service._zato_bind(store, cid, request)
        cls.__init__(service)
        return service

    def _zato_bind(self, store: Store, cid: str, request: Request) -> None:
        self._store = store
        self.cid = cid
        self.request = request
        self.response = Response()
        # free for the service's own use during this invocation: a Bunch, as in Zato 3.x
        # (`self.environ.started = ...` in before_handle), and a dict, as in Zato 2.0
        self.environ: Bunch = Bunch()
        self.invocation_time = utcnow()  # Zato's: when it was invoked, in UTC (naive, as Zato's)
        self.handle_return_time: dt.datetime | None = None  # set when handle() returned (UTC)
        self.processing_time = 0  # set before finalize_handle: whole milliseconds
        self.processing_time_raw = dt.timedelta(0)  # ... and the exact time, as Zato gives it

    @classmethod
    def get_name(cls) -> str | None:
        return cls.name

    @property
    def channel(self) -> ChannelInfo:
        return self.request.channel

    @property
    def data_format(self) -> str:
        """Zato's self.data_format, the invocation's data format: JSON here (as the request's)."""
        return self.request.data_format

    @property
    def transport(self) -> str | None:
        """Zato's self.transport: `plain_http` on an HTTP channel, else None (as the request's)."""
        return self.request.transport

    @property
    def in_reply_to(self) -> str | None:
        """In an invoke_async callback: the CID of the call whose response it was given."""
        return self.request.in_reply_to

    @property
    def wsgi_environ(self) -> dict:
        env = self.request.environ
        if not env:
            return {}
        return {k: v for k, v in env.items() if k not in HIDDEN_ENV}

    @property
    def outgoing(self) -> Any:
        """Outgoing connections: amqp, ibm_mq, zmq, plain_http, sql (`self.out` is the same
        object)."""
        return self._store.outgoing

    @property
    def out(self) -> Any:
        """Zato's short name for `self.outgoing` (`self.out.ibm_mq.send(...)`)."""
        return self._store.outgoing

    @property
    def kvdb(self) -> Any:
        """`self.kvdb.conn`: a Redis client on the cluster's Redis."""
        return self._store.kvdb

    @property
    def cache(self) -> Any:
        """Zato's cache API (`self.cache.default.get/set/delete`), shared by the cluster."""
        return self._store.cache

    @property
    def crypto(self) -> Any:
        """Zato's self.crypto: encrypt/decrypt with the cluster's key, hash_secret/verify_hash,
        generate_secret/generate_password (zato.service.crypto)."""
        if self._store.crypto is None:
            raise ServiceError("self.crypto needs the cluster's secret (not available here)")
        return self._store.crypto

    @property
    def config(self) -> Any:
        """Zato's user config: `self.config.FILE.SECTION.KEY` from the server's user-config
        files (zato.service.user_config); `self.config.user.FILE...` is the same."""
        return self._store.config.current()

    @property
    def user_config(self) -> Any:
        """Zato's older accessor: `self.user_config.LABEL.FILE.SECTION.KEY` from the files
        server.conf's [user_config] stanza names (LABEL = path; zato.service.user_config)."""
        return self._store.config.labelled()

    @property
    def patterns(self) -> Any:
        """Zato's patterns: fanout, parallel and invoke_retry (zato.service.patterns)."""
        from zato.service.patterns import Patterns

        return Patterns(self)

    @property
    def server(self) -> Any:
        """The server this service runs on: name, cluster (never a secret)."""
        return self._store.server

    # Zato's hooks, in the order they run: accept, before_handle, validate_input, handle,
    # validate_output, after_handle, finalize_handle. As in Zato, an exception in before_handle,
    # after_handle or finalize_handle is logged and the invocation goes on (the answer stands);
    # one in accept, validate_input or validate_output ends it as handle's own would.

    @staticmethod
    def before_add_to_store(logger: logging.Logger) -> bool:
        """Zato's hook, when the module is loaded: a false answer (or an exception) keeps this
        service out of the store."""
        return True

    @staticmethod
    def after_add_to_store(logger: logging.Logger) -> None:
        """Zato's hook: runs in each worker once the service is in its store."""

    def accept(self) -> bool:
        """Zato's hook: False and nothing else runs; the answer is empty (200)."""
        return True

    def before_handle(self) -> None:
        """Zato's hook: runs before handle(); an exception in it is logged, and handle() runs."""

    def validate_input(self) -> None:
        """Zato's hook: runs right before handle(); raising (BadRequest...) stops it."""

    def handle(self) -> None:
        raise NotImplementedError(f"service {self.name} does not implement handle()")

    def validate_output(self) -> None:
        """Zato's hook: runs right after handle()."""

    def after_handle(self) -> None:
        """Zato's hook: runs after handle() succeeded; an exception in it is logged, and the
        answer stands."""

    def finalize_handle(self) -> None:
        """Zato's hook: runs last, with self.processing_time (ms) and processing_time_raw."""

    # Zato's aids for development (its request and response docs): what came in and what goes
    # out, in the server log, as a dict; keys in `suppress_keys` show as "(suppressed)".

    def log_input(self, user_msg: str = "", level: int = logging.INFO, suppress_keys: Any = None) -> dict:
        """Logs the request's payload, cid, name, channel type and environ; returns what it logged."""
        return self._log_io(user_msg, level, suppress_keys, "request", {})

    def log_output(
        self, user_msg: str = "", level: int = logging.INFO, suppress_keys: Any = ("wsgi_environ",)
    ) -> dict:
        """Logs the response's payload, status and headers so far, with what log_input logs."""
        r = self.response
        return self._log_io(
            user_msg, level, suppress_keys, "response", {"status_code": r.status_code, "headers": r.headers}
        )

    def _log_io(self, user_msg: str, level: int, suppress_keys: Any, container: str, extra: dict) -> dict:
        msg = {f"{container}.payload": getattr(self, container).payload, "channel": self.request.channel.type}
        msg.update(
            cid=self.cid, name=self.name, environ=self.environ, wsgi_environ=self.wsgi_environ, **extra
        )
        for key in suppress_keys or ():
            if key in msg:
                msg[key] = "(suppressed)"
        self.logger.log(level, "%s%s", f"{user_msg} " if user_msg else "", msg)
        return msg

    def invoke(
        self,
        zato_name: Any,  # Zato's name for it: `name=` may be one of the other service's inputs
        payload: Any = None,
        channel: Any = None,
        data_format: Any = None,
        transport: Any = None,
        serialize: bool = False,
        as_bunch: bool = False,
        timeout: float = 0,
        raise_timeout: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Run another service (by name or class) in this process with the same CID (or
        `cid=`); returns its response payload. As in Zato: without a payload, other keyword
        arguments are the payload (`self.invoke("crm.get", client_id=1)`); `as_bunch=True`
        gives attribute access to every dict in the response; `timeout=` seconds bounds the
        call: past it the other service is stopped and gevent.Timeout raised (None returned
        with `raise_timeout=False`). `data_format=DATA_FORMAT.JSON` with a payload given as
        JSON text (`dumps(...)`) gives the other service that JSON parsed, as a JSON channel
        would; `serialize=True` returns the response as JSON text, as Zato 2.0 does (a text
        response as it is); channel and transport are accepted and change nothing (JSON only)."""
        target = _service_name(zato_name)
        self._check_chain(target)
        if not payload:
            payload = {k: v for k, v in kwargs.items() if k not in _INVOKE_KEYS} or payload
        payload = _as_data_format(payload, data_format, target)
        cid = kwargs.get("cid") or self.cid
        if timeout:
            response = self._invoke_within(target, payload, cid, timeout, raise_timeout)
        else:
            response = self._store.invoke(target, payload, cid=cid, chain=self._zato_chain)
        if response is None:
            return None
        if serialize:
            return _serialized(response.payload)
        return bunchify(response.payload) if as_bunch else response.payload

    def invoke_by_impl_name(self, impl_name: str, payload: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Zato 2.0's: self.invoke of the service by its impl_name, `module.ClassName` as it was
        deployed (`self.invoke_by_impl_name("crm_api.GetClient", {"id": 1})`), with invoke's
        other arguments. An impl_name no deployed service has is ServiceNotFound, naming it."""
        return self.invoke(self._store.name_of_impl(impl_name), payload, *args, **kwargs)

    def new_instance(self, service_name: Any, *args: Any, **kwargs: Any) -> Service:
        """Zato 3.2's: another service (by name or class) as an object whose own methods this
        one calls (`self.new_instance("customer.account").create_account()`), in this worker,
        with this invocation's CID, request (payload, input, HTTP side) and self.environ; its
        handle() and hooks do not run, and its self.channel.type is Zato's `new-instance`.
        An unknown name is ServiceNotFound, as for self.invoke. Other arguments are Zato's,
        accepted and ignored."""
        target = _service_name(service_name)
        cls = self._store.get(target)
        req = self.request
        channel = ChannelInfo(req.channel.name, NEW_INSTANCE, req.channel.security)
        http = (req.method, req.path, req._headers, req.params, req.path_params, req.environ)
        request = Request(req.payload, req.raw, *http, channel)
        request.input, request.cid, request.in_reply_to = req.input, self.cid, req.in_reply_to
        other = cls._zato_new(self._store, self.cid, request)
        other.environ = self.environ
        other._zato_chain = (*self._zato_chain, target)
        return other

    def _check_chain(self, target: str) -> None:
        """ServiceError for an invocation that would loop: the service itself (Zato refuses
        that too), or a chain deeper than MAX_INVOKE_DEPTH."""
        if target == self.name:
            raise ServiceError(f"service {target!r} cannot invoke itself")
        chain = self._zato_chain
        if len(chain) >= MAX_INVOKE_DEPTH:
            shown = " -> ".join((*chain[:4], "...", *chain[-2:], target))
            raise ServiceError(f"invocation chain deeper than {MAX_INVOKE_DEPTH} services (a loop?): {shown}")

    def _invoke_within(self, target: str, payload: Any, cid: str, timeout: float, raise_timeout: bool) -> Any:
        """invoke() in a greenlet of its own, stopped after `timeout` seconds."""
        import gevent

        def call() -> tuple[bool, Any]:
            try:
                return True, self._store.invoke(target, payload, cid=cid, chain=self._zato_chain)
            except gevent.GreenletExit:  # stopped on the timeout: ends as asked
                raise
            except BaseException as e:  # noqa: BLE001 - handed to the caller below, not lost
                return False, e  # (a greenlet that raises would print it on the worker's stderr too)

        runner = gevent.spawn(call)
        try:
            done, result = runner.get(timeout=timeout)
        except gevent.Timeout:
            runner.kill()
            self.logger.warning(
                "cid %s: service %s did not answer within %s s; stopped", self.cid, target, timeout
            )
            if raise_timeout:
                raise
            return None
        if not done:
            raise result
        return result

    def lock(self, name: str = "", *args: Any, **kwargs: Any) -> Any:
        """Zato's distributed lock: `with self.lock():` (named after the service) or
        `with self.lock("account-" + no, ttl=30, block=5):` runs its block while no other
        service of the cluster holds a lock of that name. It waits up to `block` seconds (default
        10; 0: not at all) and raises LockTimeout (uncaught: 409) if it could not take it; the
        lock expires after `ttl` seconds (default 20) whatever happens. Zato 2.0's names,
        `expires` and `timeout`, are `ttl` and `block`; so are two positional arguments."""
        ttl = args[0] if args else kwargs.get("ttl", kwargs.get("expires", 20))
        block = args[1] if len(args) > 1 else kwargs.get("block", kwargs.get("timeout", 10))
        kvdb, cluster = self._store.kvdb, getattr(self._store.server, "cluster", None)
        if kvdb is None or not cluster:
            raise ServiceError("self.lock needs the cluster's Redis (not available here)")
        from zato.service.kvdb import ServiceLock

        return ServiceLock(kvdb.conn, cluster, name or self.name or "", ttl, block)

    def sleep(self, seconds: float = 1) -> None:
        """Zato's self.sleep: wait without holding up the worker's other requests."""
        import gevent

        gevent.sleep(seconds)

    def spawn(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Zato's self.spawn (also run_in_thread): fn(*args, **kwargs) in a greenlet of its own,
        returned (`.get()` waits for its result). An exception in it is logged."""
        import gevent

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception:
                self.logger.exception("cid %s: %r, spawned by service %s, failed", self.cid, fn, self.name)
                raise

        return gevent.spawn(run)

    run_in_thread = spawn

    def invoke_async(
        self,
        name: Any,
        payload: Any = None,
        channel: Any = None,
        data_format: Any = None,
        transport: Any = None,
        expiration: Any = None,
        to_json_string: bool = False,
        cid: str = "",
        callback: Any = None,
        zato_ctx: Any = None,
        environ: Any = None,
    ) -> str:
        """Run another service on some server of the cluster, at least once, even if this
        server dies right after; returns the CID of that invocation (`cid`, or a new one).
        As in Zato, `callback` (a service's name or class, `self`, or a list of them) is
        invoked with that service's response payload once it ran; without one, a service
        named `<this service's name>-async-callback` is, if deployed. `to_json_string=True`
        sends the payload as JSON text. `data_format=DATA_FORMAT.JSON` with a payload given as
        JSON text gives the other service that JSON parsed, as self.invoke does (text that is
        not JSON is this service's error, before anything is queued). channel, transport,
        expiration, zato_ctx and environ are accepted and change nothing."""
        target = _service_name(name)
        if to_json_string:
            payload = jsonenc.dumps(payload)
        payload = _as_data_format(payload, data_format, target)
        if callback is None:
            sink = f"{self.name}-async-callback"
            callbacks: tuple[str, ...] = (sink,) if sink in self._store.services else ()
        else:
            given = callback if isinstance(callback, (list, tuple)) else [callback]
            callbacks = tuple(_service_name(c) for c in given)
        return self._store.invoke_async(target, payload, cid or None, callbacks)


refuse_on(Service, "self", UNSUPPORTED_ATTRS)  # self.pubsub and the like: NotSupported naming them
