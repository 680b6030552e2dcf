"""The services a worker carries: internal ones plus every deployed module, by name.

Deployed module sources come from the ODB; `load_source` turns one into service classes
and is also what `deploy` uses to validate a module before storing it.
"""

from __future__ import annotations

import datetime
import importlib.abc
import importlib.util
import linecache
import logging
import os
import re
import sys
import time
import types
from typing import Any

from zato.common import service_name as service_name_rule
from zato.common.api import ZATO_ERROR, ZATO_OK
from zato.common.cid import new_cid
from zato.common.errors import DeployError, OutgoingNotFound, ServiceError, ServiceNotFound
from zato.common.exception import MethodNotAllowed, Reportable
from zato.service.base import HTTP_SOAP, Request, Response, Service, utcnow
from zato.service.call_scope import call_scope
from zato.service.logger import service_logger
from zato.service.sio import Payload, io_of, parse_input, render_output
from zato.service.unsupported import SERVER as UNSUPPORTED_SERVER
from zato.service.unsupported import NotSupported, refuse_on
from zato.service.user_config import UserConfig

_aborted: list[float] = []  # set by worker_aborted(): the worker's timeout, once gunicorn aborts it


def worker_aborted(timeout: float) -> None:
    """gunicorn's worker_abort hook, in the worker: the arbiter found it hung (a service ran past
    `timeout` seconds without yielding) and the SystemExit coming next is gunicorn's, not the
    service's own sys.exit()."""
    _aborted[:] = [timeout]


logger = logging.getLogger(__name__)

# What users' code may raise that must not end the worker: also sys.exit() (SystemExit) and
# KeyboardInterrupt. Not GreenletExit, nor a gevent.Timeout the server set around the code.
USER_CODE_ERRORS = (Exception, SystemExit, KeyboardInterrupt)

MODULE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VERB_PREFIX = "handle_"  # Zato's REST verb methods: handle_GET, handle_POST...
# Packages a Zato server has installed and Zato's docs import in services, which this one has not:
# what to use instead, said when a module importing one is refused.
NOT_INSTALLED = {
    "bunch": "Zato installs the bunch package, this server does not: use self.request.bunchified() "
    "for the payload with attribute access, or Bunch from zato.server.service",
    "lxml": "Zato installs lxml for its XML data format, this server does not: it takes JSON only "
    "(docs/zato-compat.md); a service that uses lxml on its own needs it installed where the server runs",
    "anyjson": "Zato installs anyjson, this server does not: use the standard json module "
    "(from json import dumps, loads)",
}
# Python 2's standard modules that Python 3 renamed: Zato 2.0's services ran on Python 2.7 (its
# docs' own examples `import httplib`); a module importing one is told the new name, not to
# deploy a module of that name first.
PYTHON2_MODULES = {
    "httplib": "http.client",
    "urllib2": "urllib.request",
    "urlparse": "urllib.parse",
    "StringIO": "io",
    "cStringIO": "io",
    "cPickle": "pickle",
    "ConfigParser": "configparser",
    "Queue": "queue",
    "HTMLParser": "html.parser",
    "Cookie": "http.cookies",
    "cookielib": "http.cookiejar",
    "xmlrpclib": "xmlrpc.client",
    "SocketServer": "socketserver",
    "BaseHTTPServer": "http.server",
    "__builtin__": "builtins",
    "thread": "_thread",
    "commands": "subprocess",
    "anydbm": "dbm",
    "repr": "reprlib",
    "copy_reg": "copyreg",
    "htmlentitydefs": "html.entities",
}
DEPLOYED_PREFIX = "zato_deployed."  # sys.modules namespace of deployed modules
INTERNAL_PREFIX = "zato."  # service names reserved for the server's own services (zato.ping...)


def check_not_internal(module: str, name: str) -> None:
    """DeployError if a deployed module's service would define or replace an internal one."""
    if name.startswith(INTERNAL_PREFIX) or name == "zato":
        raise DeployError(
            f"module {module}: service {name!r} is in the internal namespace {INTERNAL_PREFIX}*,"
            " which deployed modules cannot use"
        )


def check_usable_name(module: str, name: str) -> None:
    """DeployError, one line, for a service name nothing could ever invoke (a channel, zato
    service invoke, /zato/api/invoke/{service}): whitespace, control characters, "/"... (the
    rule: zato.common.service_name). Checked when a module is deployed, not when a server loads
    one stored before."""
    why = service_name_rule.why_not(name)
    if why is not None:
        raise DeployError(
            f"module {module}: service name {name!r} cannot be used: {why}"
            f" (a service name is {service_name_rule.RULE}; set the class's name = '...')"
        )


# Where a new word begins in a CamelCase name, as Zato splits it: a capital after a lower-case
# letter (getClient), or a capital followed by a lower-case letter (the end of an acronym:
# HTTPThing -> HTTP Thing), but never the first letter. A digit does not end a word (V2API).
_WORD_START = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<!^)(?=[A-Z][a-z])")


def _words(identifier: str) -> str:
    return "-".join(re.split(_WORD_START, identifier)).lower()


def dashed(identifier: str) -> str:
    """A module's part of a service name, as Zato makes it: my_crm_api -> my-crm-api,
    MyModule -> my-module."""
    return _words(identifier).replace("_", "-")


def class_part(identifier: str) -> str:
    """A class's part of a service name, as Zato makes it: HTTPThing -> http-thing,
    GetXMLData -> get-xml-data; an underscore stays (get_client -> get_client, Get_Client ->
    get_client)."""
    return _words(identifier).replace("_-", "_")


def service_name(module: str, cls: type[Service]) -> str:
    """A class's `name`, else what its own get_name() returns, else module-name.class-name."""
    own = cls.__dict__.get("name")
    if not (isinstance(own, str) and own) and "get_name" in cls.__dict__:
        own = cls.get_name()
    return own if isinstance(own, str) and own else f"{dashed(module)}.{class_part(cls.__name__)}"


def prepare(cls: type[Service], name: str) -> None:
    """Fix a service class's name and parse its I/O declaration once (not per request)."""
    try:
        decl = io_of(cls)
    except (ServiceError, TypeError, NameError) as e:
        raise DeployError(f"service {name}: bad I/O declaration: {e}") from None
    cls.name = name
    cls._zato_io = decl
    cls._zato_finalizes = cls.finalize_handle is not Service.finalize_handle  # timed only if so
    cls._zato_verbs = verbs_of(cls)
    threshold = cls.slow_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise DeployError(f"service {name}: slow_threshold {threshold!r} is not a number of milliseconds")
    cls.logger = service_logger(f"zato.service.{name}")
    cls.impl_name = f"{cls.__module__.removeprefix(DEPLOYED_PREFIX)}.{cls.__qualname__}"


def verbs_of(cls: type[Service]) -> frozenset[str]:
    """The HTTP methods a service has Zato's REST verb methods for (handle_GET, handle_POST...)."""
    names = (n for n in dir(cls) if n.startswith(VERB_PREFIX) and n[len(VERB_PREFIX) :].isupper())
    return frozenset(n[len(VERB_PREFIX) :] for n in names if callable(getattr(cls, n)))


def handler_of(service: Service, request: Request) -> Any:
    """What runs a request: handle(), or on an HTTP channel the service's REST verb method for
    the request's method (HEAD: handle_HEAD, else handle_GET), as in Zato 3.x. A service with
    verb methods but neither one for the method nor its own handle() answers 405, naming the
    methods it takes."""
    verbs = type(service)._zato_verbs
    if not verbs or request.channel.type != HTTP_SOAP:
        return service.handle
    method = request.method.upper()
    for verb in (method, "GET") if method == "HEAD" else (method,):
        if verb in verbs:
            return getattr(service, VERB_PREFIX + verb)
    if type(service).handle is not Service.handle:
        return service.handle
    allow = tuple(sorted(verbs | ({"HEAD"} if "GET" in verbs else set())))
    said = f"service {service.name} has no handle_{method} (it takes {', '.join(allow)})"
    raise MethodNotAllowed(service.cid, said, allow=allow)


def check_no_json_schema(module: str, name: str, cls: type[Service]) -> None:
    """DeployError for Zato 3.1+'s `schema = 'myschema.json'`, its JSON Schema validation of a
    service's input (its "API validation with JSON Schema" article), which this server does not
    do: deployed, the service would run on input no schema checked. A `schema` that names no
    .json file (a database schema of the service's own, `schema = 'crm'`) is the service's.
    Checked when a module is deployed, as check_usable_name."""
    schema = getattr(cls, "schema", None)
    if isinstance(schema, str) and schema.strip().lower().endswith(".json"):
        raise DeployError(
            f"module {module}: service {name} sets schema = {schema!r}, Zato's JSON Schema validation"
            " of its input, which this server does not do: it would run on input no schema checked"
            " (declare its input with SimpleIO, or check it in validate_input(), and remove schema)"
        )


def check_module_name(name: str) -> None:
    if not MODULE_NAME_RE.match(name or ""):
        raise DeployError(f"module name {name!r} must be a Python identifier (letters, digits, _)")


class DeployedImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes deployed modules importable by their own names, as they are in Zato (`from model
    import GetClientRequest` in one deployed module, `model.py` deployed as another). Last on
    sys.meta_path: a deployed module never hides an installed one of the same name. `provider`,
    set by the ServiceStore, gives a deployed module's loaded module object by name (loading
    it first if need be) and says which names it has."""

    provider: Any = None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if path is not None or "." in fullname or self.provider is None or not self.provider.has(fullname):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.provider.module_of(spec.name)  # the deployed module itself, already run

    def exec_module(self, module: types.ModuleType) -> None:
        return None  # load_source ran it


IMPORTER = DeployedImporter()


def _install_importer() -> None:
    if IMPORTER not in sys.meta_path:
        sys.meta_path.append(IMPORTER)


def _forget_alias(module: str) -> None:
    """Drop `import module`'s cached entry if it is a deployed module's, so the next import
    finds the version loaded now (an installed module of that name is left alone)."""
    cached = sys.modules.get(module)
    if cached is not None and str(getattr(cached, "__name__", "")).startswith(DEPLOYED_PREFIX):
        del sys.modules[module]


def load_source(module: str, source: str) -> dict[str, type[Service]]:
    """Execute a module's source; returns {service name: class}, empty for a module of shared
    code only (models, helpers) that other deployed modules import. DeployError naming what
    is wrong if it does not compile or fails at import."""
    check_module_name(module)
    qualified = DEPLOYED_PREFIX + module
    filename = f"<deployed {module}.py>"
    try:
        code = compile(source, filename, "exec")
    except (SyntaxError, ValueError) as e:
        raise DeployError(f"module {module}: does not compile: {e}") from None
    mod = types.ModuleType(qualified)
    mod.__file__ = filename
    linecache.cache[filename] = (
        len(source),
        None,
        source.splitlines(True),
        filename,
    )  # tracebacks show lines
    previous = sys.modules.get(qualified)
    sys.modules[qualified] = mod  # dataclasses and pickling look modules up by name
    try:
        exec(code, mod.__dict__)  # noqa: S102 - deploying code is what this does
    except USER_CODE_ERRORS as e:  # noqa: BLE001 - any import-time failure is a bad module
        if previous is not None:
            sys.modules[qualified] = previous
        else:
            sys.modules.pop(qualified, None)
        hint = ""
        if isinstance(e, ModuleNotFoundError) and e.name in NOT_INSTALLED:
            hint = f" ({NOT_INSTALLED[e.name]})"
        elif isinstance(e, ModuleNotFoundError) and e.name in PYTHON2_MODULES:
            new_name = PYTHON2_MODULES[e.name]
            hint = f" ({e.name} is Python 2's name; on Python 3, which this server runs, it is {new_name})"
        elif isinstance(e, ModuleNotFoundError) and e.name and MODULE_NAME_RE.match(e.name):
            hint = (
                " (if it is a module of yours, deploy it first: deployed modules import each other by name;"
                " if it is a package, install it where the server runs)"
            )
        raise DeployError(f"module {module}: fails on import: {type(e).__name__}: {e}{hint}") from None
    found: dict[str, type[Service]] = {}
    declined: list[str] = []
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, Service) and obj.__module__ == qualified:
            name = service_name(module, obj)
            check_not_internal(module, name)
            if name in found:
                raise DeployError(f"module {module}: service name {name!r} is defined twice")
            prepare(obj, name)
            if _wanted(obj, name):
                found[name] = obj
            else:
                declined.append(name)
    return found


def _wanted(cls: type[Service], name: str) -> bool:
    """Zato's before_add_to_store: a false answer, or an exception, keeps the service out."""
    try:
        wanted = bool(cls.before_add_to_store(cls.logger))
    except USER_CODE_ERRORS:  # noqa: BLE001 - as in Zato: logged, and the service is not deployed
        logger.exception("service %s: before_add_to_store failed; not deployed", name)
        return False
    if not wanted:
        logger.info("service %s: before_add_to_store said no; not deployed", name)
    return wanted


def _hook(service: Service, hook: str, name: str) -> None:
    """Zato's before_handle or after_handle: as Zato documents and does, an exception in it is
    logged and the invocation goes on as if it had not been raised (validate_input and
    validate_output are not hooks of that kind: theirs ends the invocation; so does sys.exit()
    in any of them, as it is no Exception)."""
    try:
        getattr(service, hook)()
    except Exception:  # noqa: BLE001 - Zato's rule for these two hooks: logged, then the next step
        said = "cid %s: service %s: %s failed; the invocation goes on, as in Zato"
        logger.exception(said, service.cid, name, hook)


def _result_error(name: str, cid: str, response: Response) -> ServiceError:
    """Zato's `self.response.result = ZATO_ERROR`: the caller gets an error (Reportable) with
    result_details, and the service's own status if it set an error one (else 500)."""
    if response.result != ZATO_ERROR:
        return ServiceError(
            f"service {name} set self.response.result to {response.result!r}, not ZATO_OK or ZATO_ERROR"
        )
    try:
        status = int(response.status_code)
    except (TypeError, ValueError):
        status = 500
    return Reportable(cid, str(response.result_details or ""), status if 400 <= status <= 599 else 500)


def _finalize(service: Service, name: str, took: float) -> None:
    """Zato's finalize_handle, with the processing time set; its failure is logged only."""
    service.processing_time_raw = datetime.timedelta(seconds=took)
    service.processing_time = int(took * 1000)
    try:
        service.finalize_handle()
    except USER_CODE_ERRORS:  # noqa: BLE001 - the answer is made: a failing last hook does not undo it
        logger.exception("service %s: finalize_handle failed (the answer stands)", name)


class ServerView:
    """What a service may know about its server (`self.server`): no password, no secret."""

    __slots__ = ("name", "cluster")

    def __init__(self, name: str | None, cluster: str | None):
        self.name, self.cluster = name, cluster

    @property
    def pid(self) -> int:
        """Zato's self.server.pid: the process the service runs in (this worker's)."""
        return os.getpid()


refuse_on(ServerView, "self.server", UNSUPPORTED_SERVER)  # Zato's cluster_id and the like: NotSupported


class ServiceStore:
    """Name -> service class for one worker, plus invocation. It keeps no settings object,
    so nothing a service reaches through it holds a password or the cluster secret."""

    def __init__(
        self,
        settings: Any = None,
        outgoing: Any = None,
        kvdb: Any = None,
        cache: Any = None,
        async_push: Any = None,  # (service, payload, cid) -> None: hand over to the cluster
        config: UserConfig | None = None,
        crypto: Any = None,  # zato.service.crypto.CryptoAPI with the cluster's key
        pattern_start: Any = None,  # zato.coord.patterns.start bound to the cluster's Redis
    ):
        self.server = ServerView(getattr(settings, "name", None), getattr(settings, "cluster", None))
        self.crypto = crypto
        self.outgoing = outgoing
        self.kvdb, self.cache = kvdb, cache
        self.config = config or UserConfig()
        self._async_push = async_push
        self._pattern_start = pattern_start
        self.observe: Any = None  # (service name, perf_counter at start) -> None: the worker's metrics
        self.services: dict[str, type[Service]] = {}
        self.modules: dict[str, tuple[str, tuple[str, ...]]] = {}  # module -> (hash, service names)
        self.sources: dict[str, tuple[str, str]] = {}  # every deployed module: (source, hash)
        self._importers: dict[str, set[str]] = {}  # module -> deployed modules that imported it
        self._loading: list[str] = []  # modules being loaded now, the innermost last

    def know(self, sources: dict[str, tuple[str, str]]) -> None:
        """Every deployed module's (source, hash), so that one module can import another
        whatever the order they are loaded in."""
        self.sources = dict(sources)
        IMPORTER.provider = self
        _install_importer()

    def has(self, module: str) -> bool:
        return module in self.sources

    def module_of(self, module: str) -> types.ModuleType:
        """For `import module` in deployed code: the module, loaded first if need be; the
        module being loaded is noted as its importer, to be loaded again when it changes."""
        if self._loading and self._loading[-1] != module:
            self._importers.setdefault(module, set()).add(self._loading[-1])
        loaded = sys.modules.get(DEPLOYED_PREFIX + module)
        if loaded is None or (module not in self.modules and module not in self._loading):
            source, digest = self.sources[module]
            try:
                self.load_module(module, source, digest)
            except DeployError as e:
                raise ImportError(f"deployed module {module} cannot be imported: {e}", name=module) from None
            loaded = sys.modules[DEPLOYED_PREFIX + module]
        return loaded

    def add(self, cls: type[Service], name: str | None = None) -> None:
        name = name or cls.name or service_name(cls.__module__.rsplit(".", 1)[-1], cls)
        prepare(cls, name)
        self.services[name] = cls

    def load_module(self, module: str, source: str, digest: str) -> list[str]:
        """(Re)load a deployed module unless this version is already loaded; then the deployed
        modules that imported its earlier version, so that they use this one."""
        current = self.modules.get(module)
        if current and current[0] == digest:
            return []
        found = self._load(module, source, digest)
        if current:
            self._load_importers_of(module, {module})
        return list(found)

    def _load(self, module: str, source: str, digest: str) -> dict[str, type[Service]]:
        self.sources[module] = (source, digest)
        _forget_alias(module)
        self._loading.append(module)
        try:
            found = load_source(module, source)
        finally:
            self._loading.pop()
        current = self.modules.get(module)
        for old in current[1] if current else ():
            self.services.pop(old, None)
        self.services.update(found)
        self.modules[module] = (digest, tuple(found))
        for name, cls in found.items():
            try:
                cls.after_add_to_store(cls.logger)
            except USER_CODE_ERRORS:  # noqa: BLE001 - Zato's hook: logged, the service stays deployed
                logger.exception("service %s: after_add_to_store failed", name)
        return found

    def _load_importers_of(self, module: str, done: set[str]) -> None:
        for importer in sorted(self._importers.get(module, set()) - done):
            if importer not in self.modules or importer not in self.sources:
                continue
            done.add(importer)
            source, digest = self.sources[importer]
            try:
                names = self._load(importer, source, digest)
            except DeployError as e:
                logger.error("module %s imports module %s, which changed; loading it again failed: %s",
                             importer, module, e)  # fmt: skip
                continue
            logger.info("loaded module %s again, as it imports module %s: %s", importer, module,
                        ", ".join(names) or "no services")  # fmt: skip
            self._load_importers_of(importer, done)

    def unload_module(self, module: str) -> list[str]:
        """Drop an undeployed module's services; the names dropped (none if it was not loaded)."""
        _, names = self.modules.pop(module, ("", ()))
        for name in names:
            self.services.pop(name, None)
        self.sources.pop(module, None)
        _forget_alias(module)
        sys.modules.pop(DEPLOYED_PREFIX + module, None)  # nothing of it stays reachable
        return list(names)

    def get(self, name: str) -> type[Service]:
        try:
            return self.services[name]
        except KeyError:
            raise ServiceNotFound(f"no such service: {name}") from None

    def name_of_impl(self, impl_name: str) -> str:
        """The name of the service whose impl_name (module.ClassName) this is: Zato 2.0's
        invoke_by_impl_name; ServiceNotFound naming it if no deployed service has it."""
        for name, cls in self.services.items():
            if cls.impl_name == impl_name:
                return name
        raise ServiceNotFound(
            f"no such service: no deployed service is implemented by {impl_name!r} (module.ClassName)"
        )

    def invoke(
        self,
        name: str,
        payload: Any = None,
        cid: str | None = None,
        request: Request | None = None,
        chain: tuple[str, ...] = (),
    ) -> Response:
        """Run service `name`; exceptions from its handle() propagate to the caller, a bad
        input is an InputError (400). `chain`: the services it runs inside (invoke())."""
        cls = self.get(name)
        started = time.perf_counter()
        try:
            req = request or Request(payload=payload)
            decl = cls._zato_io
            req.input = parse_input(decl, req.payload, req.params, req.path_params)
            service = cls._zato_new(self, cid or new_cid(), req)
            req.cid = service.cid
            service._zato_chain = (*chain, name)
            if not service.accept():
                return Response()  # as in Zato: nothing runs, an empty answer
            if decl.output:
                service.response.payload = Payload()
            _hook(service, "before_handle", name)
            service.validate_input()
            handler_of(service, req)()
            service.handle_return_time = utcnow()
            service.validate_output()
            _hook(service, "after_handle", name)
            response = service.response
            if decl.output:
                given = response.payload
                response.payload = render_output(
                    decl, given.records(decl.repeated) if isinstance(given, Payload) else given, name
                )
            took = time.perf_counter() - started
            if took * 1000 > cls.slow_threshold:
                logger.warning(
                    "cid %s: service %s took %d ms, more than its slow_threshold of %s ms",
                    service.cid,
                    name,
                    took * 1000,
                    cls.slow_threshold,
                )
            if cls._zato_finalizes:
                _finalize(service, name, took)
            if response.result != ZATO_OK:
                raise _result_error(name, service.cid, response)
            return response
        except (OutgoingNotFound, NotSupported) as e:
            if e.service is None:  # the service that used it, not the ones that invoked that one
                e.service = name
            raise
        finally:
            if self.observe is not None:
                self.observe(name, started)

    def run(self, name: str, cid: str, request: Request) -> Response:
        """invoke() for a caller with nothing above it: an HTTP request, an invoke_async call.
        What a service raises that is not an Exception (sys.exit(), KeyboardInterrupt, a
        gevent.Timeout of its own left uncaught) is that service's failure, a ServiceError:
        it would otherwise end the worker, or the request outside our error handling."""
        try:
            with call_scope(name):  # what the call left open (an SQL session) is closed
                return self.invoke(name, cid=cid, request=request)
        except Exception:
            raise
        except BaseException as e:
            from greenlet import GreenletExit  # here: the arbiter, which runs no service, has no greenlet

            if isinstance(e, (GreenletExit, GeneratorExit)):  # the worker ends this request: let it
                raise
            if isinstance(e, SystemExit) and _aborted:  # gunicorn's, from its worker timeout
                raise ServiceError(
                    f"service {name} held its worker past the worker timeout ([gunicorn] timeout, "
                    f"{_aborted[0]:g} s) and was stopped; the worker restarts"
                ) from e
            if isinstance(e, SystemExit):
                said = f"called sys.exit({e.code!r})"
            else:
                said = f"raised {type(e).__name__}" + (f": {e}" if str(e) else "")
            raise ServiceError(f"service {name} {said}; the worker goes on") from e

    def start_pattern(
        self,
        kind: str,
        source: str,
        targets: list[tuple[str, Any]],
        cid: str,
        on_target: tuple[str, ...],
        on_final: tuple[str, ...],
    ) -> str:
        """Queue the targets of a fan-out or parallel run (zato.coord.patterns); every service
        named must be deployed. Returns the run's id."""
        for known in (*(name for name, _ in targets), *on_target, *on_final):
            self.get(known)
        if self._pattern_start is None:
            raise ServiceError(f"self.patterns.{kind} needs the cluster's Redis (not available here)")
        return self._pattern_start(kind, source, targets, cid, on_target, on_final)

    def invoke_async(
        self, name: str, payload: Any = None, cid: str | None = None, callbacks: tuple[str, ...] = ()
    ) -> str:
        """Queue `name` for some server of the cluster; returns the invocation's CID (`cid`, or
        a new one). `callbacks`: services given its response payload once it ran."""
        for known in (name, *callbacks):
            self.get(known)
        if self._async_push is None:
            raise ServiceError("invoke_async needs the cluster's Redis (not available here)")
        cid = cid or new_cid()
        self._async_push(name, payload, cid, callbacks)
        return cid
