"""Per-worker state: ODB, Redis, the service store and the HTTP channel table, kept in step
with the ODB by a greenlet that listens for config events (and reconciles on every
(re)subscription, since pub/sub drops messages while disconnected)."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from zato.common.errors import CoordError, ZatoError
from zato.config.settings import ServerSettings
from zato.coord import async_invoke, loaded, patterns
from zato.coord.client import connect, describe
from zato.coord.events import RedisConfigEvents
from zato.coord.health import RedisHealth
from zato.coord.parse import LogOnce
from zato.coord.port import ConfigEvents
from zato.coord.signing import call_key
from zato.coord.turn import deploy_turn
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.api import ChannelRecord
from zato.odb.cached import Cached
from zato.odb.connectors import DefinitionNotFound
from zato.odb.engine import ODB
from zato.server import exit_guard, metrics
from zato.server.channel_security import Guard
from zato.server.router import Router
from zato.service.crypto import CryptoAPI, service_key
from zato.service.internal import add_internal
from zato.service.kvdb import KVDB, Cache
from zato.service.outgoing import make_outgoing
from zato.service.store import ServiceStore
from zato.service.user_config import UserConfig

logger = logging.getLogger("zato.worker")
_odd_events = LogOnce(logger)


def _let_requests_run() -> None:
    import gevent

    gevent.sleep(0)


def _in_thread(func: Any, args: tuple) -> Any:
    """func(*args) in gevent's thread pool: a password hash (milliseconds of CPU, the GIL let
    go) does not hold up the worker's other requests meanwhile."""
    import gevent

    return gevent.get_hub().threadpool.apply(func, args)


ALL_CONNECTORS = "*"  # the one entry of Worker._connectors: every active connector's name
RECONCILE_RETRY = 2.0  # seconds between reads of the ODB after a (re)subscription could not read it
WORKER_BOOT_ERROR = 3  # gunicorn's exit code for a worker that failed to boot: the arbiter halts


class Worker:
    """Everything one gunicorn worker needs to serve requests. Built after fork."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.odb = ODB(settings.odb_url, wait_in_python=True)  # gevent: a SQLite lock holds only its request
        self.redis = connect(settings.redis)
        # this process's Redis outages, said once
        self.health = RedisHealth(describe(settings.redis), cluster=settings.cluster)
        self.events: ConfigEvents = RedisConfigEvents(self.redis, settings.cluster)
        self.call_key = call_key(settings.cluster_secret, settings.cluster)  # signs invoke_async calls
        self.store = ServiceStore(
            settings,
            make_outgoing(settings, self.redis),
            kvdb=KVDB(self.redis),
            cache=Cache(self.redis, settings.cluster),
            async_push=functools.partial(async_invoke.push, self.redis, settings.cluster, key=self.call_key),
            pattern_start=functools.partial(patterns.start, self.redis, settings.cluster, key=self.call_key),
            config=UserConfig(settings.user_conf_dirs, labelled=settings.user_config_files),
            crypto=CryptoAPI(service_key(settings.cluster_secret), _in_thread),
        )
        self.store.observe = metrics.observe_service  # every invocation, however it came
        add_internal(self.store)
        self.guard = Guard(self._security_definition, _in_thread)  # who may call secured channels
        self._connectors = Cached(self._active_connectors, "connector definition")  # for /metrics
        self.channels: Router[dict[str | None, ChannelRecord]] = Router()  # url_path -> method -> channel
        self._by_path: dict[str, dict[str | None, ChannelRecord]] = {}  # what `channels` was built from
        self.stopping = False
        self.loaded = False  # every deployed module and channel loaded once: ready for traffic
        self._loaded_event: Any = None
        self._listener: Any = None
        self._async: Any = None

    def _security_definition(self, name: str) -> dict | None:
        try:
            return connectors.load(self.odb, self.settings.cluster, "security", name)
        except DefinitionNotFound:
            return None

    def _active_connectors(self, _all: str) -> dict:
        return {"names": connectors.active_connector_names(self.odb, self.settings.cluster)}

    def defined_connectors(self) -> list[str]:
        """KIND:NAME of every active connector definition (/metrics gives each a state, a
        takeover's included), read again at most every few seconds ([] if never read)."""
        try:
            found = self._connectors.get(ALL_CONNECTORS)
        except ZatoError:
            return []
        return list(found["names"]) if found else []

    # Reconciling with the ODB

    def reconcile(self) -> None:
        """Load every deployed module that changed, drop those undeployed, and load the full
        channel table."""
        deployed = odb_api.list_modules(self.odb, self.settings.cluster)
        self.store.know({m.name: (m.source, m.hash) for m in deployed})  # what one may import of another
        for module in deployed:
            self._load(module)
        for gone in set(self.store.modules) - {m.name for m in deployed}:
            self._unload(gone)
        self.reload_channels()
        files = odb_api.list_user_config(self.odb, self.settings.cluster)
        self.store.config.set_all_deployed({f.name: f.text for f in files})

    def _unload(self, module: str) -> None:
        names = self.store.unload_module(module)
        logger.info("unloaded undeployed module %s: %s", module, ", ".join(names) or "no services")

    def _load_in_turn(self, module: odb_api.ModuleRecord) -> None:
        """A hot deploy: load when it is this worker's turn in the cluster (one worker loading
        at a time, the others keep serving), unless this version is loaded already."""
        import gevent

        current = self.store.modules.get(module.name)
        if current and current[0] == module.hash:
            self._note_loaded(module, None)
            return
        timeout = self.settings.deploy_timeout
        with deploy_turn(self.redis, self.settings.cluster, timeout, 4 * timeout, gevent.sleep):
            self._load(module)
            self._load_waiting(module.name)

    def _load_waiting(self, loaded: str) -> None:
        """Deployed modules that did not load and name module `loaded` (say, they import it and
        it is deployed only now): again. Others are left as they are, so a module that fails
        for another reason does not cost every later deploy its time."""
        import gevent

        for name in sorted(set(self.store.sources) - set(self.store.modules)):
            source, digest = self.store.sources[name]
            if loaded not in source:
                continue
            try:
                with gevent.Timeout(self.settings.deploy_timeout):
                    names = self.store.load_module(name, source, digest)
            except (ZatoError, gevent.Timeout) as e:
                logger.debug("deployed module %s still does not load: %s", name, e)
                continue
            logger.info("loaded module %s: %s", name, ", ".join(names) or "no services")

    def _load(self, module: odb_api.ModuleRecord) -> None:
        import gevent

        try:  # deploy loaded it in time once; a module that blocks here must not stall reloads
            with gevent.Timeout(self.settings.deploy_timeout):
                names = self.store.load_module(module.name, module.source, module.hash)
        except gevent.Timeout:
            logger.error(
                "cannot load deployed module %s version %d: did not finish loading within %g s",
                module.name,
                module.version,
                self.settings.deploy_timeout,
            )
            self._note_loaded(module, f"did not finish loading within {self.settings.deploy_timeout:g} s")
            return
        except ZatoError as e:
            logger.exception("cannot load deployed module %s version %d", module.name, module.version)
            self._note_loaded(module, str(e))
            return
        if names:
            logger.info("loaded module %s version %d: %s", module.name, module.version, ", ".join(names))
        self._note_loaded(module, None)

    def _note_loaded(self, module: odb_api.ModuleRecord, error: str | None) -> None:
        """For `zato deploy --wait` (zato.coord.loaded); Redis away: it waits, and says for whom."""
        try:
            loaded.note(
                self.redis,
                self.settings.cluster,
                module.name,
                self.settings.name,
                os.getpid(),
                loaded.Loaded(module.version, error),
            )
        except CoordError as e:
            self.health.failed("noting a module loaded", e)

    def reload_channels(self) -> None:
        by_path: dict[str, dict[str | None, ChannelRecord]] = {}
        for ch in odb_api.list_channels(self.odb, self.settings.cluster):
            if ch.is_active:
                by_path.setdefault(ch.url_path, {})[ch.method] = ch
        self._install(by_path)

    def apply_channel(self, name: str) -> None:
        """One channel changed (created, edited or deleted): read only its row and rebuild
        the routes from the channels in memory, instead of reading every channel from the ODB
        again (a burst of events stays cheap)."""
        found = odb_api.list_channels(self.odb, self.settings.cluster, name=name)
        by_path: dict[str, dict[str | None, ChannelRecord]] = {}
        for path, methods in self._by_path.items():
            kept = {m: ch for m, ch in methods.items() if ch.name != name}
            if kept:
                by_path[path] = kept
        for ch in found:
            if ch.is_active:
                by_path.setdefault(ch.url_path, {})[ch.method] = ch
        self._install(by_path)

    def _install(self, by_path: dict[str, dict[str | None, ChannelRecord]]) -> None:
        table: Router[dict[str | None, ChannelRecord]] = Router()
        for url_path, by_method in by_path.items():
            try:  # rows saved before paths were kept decoded (%C3%B3 for ó) are decoded here
                table.add(odb_api.canonical_url_path(url_path) if "%" in url_path else url_path, by_method)
            except ZatoError as e:
                logger.error("HTTP channel %s skipped: %s", url_path, e)
        self._by_path = by_path
        self.channels = table  # one assignment: requests see the old or the new table

    def on_event(self, event: dict) -> None:
        try:
            kind = event["kind"]
            if kind == "deploy":
                module = odb_api.get_module(self.odb, self.settings.cluster, str(event.get("module")))
                if module is not None:
                    self._load_in_turn(module)
            elif kind == "undeploy":
                module_name = str(event.get("module"))
                if (
                    module_name in self.store.modules
                    and odb_api.get_module(self.odb, self.settings.cluster, module_name) is None
                ):
                    self._unload(module_name)  # still gone: a deploy since then would have it back
            elif kind == "user-config":
                conf = str(event.get("name"))
                found = odb_api.get_user_config(self.odb, self.settings.cluster, conf)
                self.store.config.set_deployed(conf, found.text if found else None)
            elif kind == "channel":
                name = event.get("name")
                if isinstance(name, str) and odb_api.CHANNEL_NAME_RE.fullmatch(name):
                    self.apply_channel(name)
                    logger.info("HTTP channel %s reloaded", name)
                else:  # not from this project: a real change always names its channel
                    _odd_events.warning("ignoring channel events without a valid channel name")
            elif kind == "connector" and event.get("type") == "security":
                self.guard.forget(str(event.get("name")))
            elif kind == "connector":  # an outgoing connection's edit applies on its next use
                for name in (event.get("name"), event.get("was")):  # was: its name before a rename
                    if name is not None:
                        self.store.outgoing.forget(str(event.get("type")), str(name))
                self._connectors.forget(ALL_CONNECTORS)
        except ZatoError:
            logger.exception("cannot apply config event %s", event)
        finally:
            _let_requests_run()  # a burst of events (forged or not) must not starve requests

    # Start-up: load in the background (so /zato/ready can say 503 meanwhile), then listen

    def start(self) -> None:
        import gevent
        from gevent.event import Event

        from zato.server.async_worker import AsyncConsumer

        self._loaded_event = Event()
        self._listener = gevent.spawn(self._boot)
        self._async = AsyncConsumer(self)
        self._async.start()

    def wait_loaded(self, timeout: float) -> bool:
        """Block this greenlet until the first load is done (at most `timeout`)."""
        if self.loaded or self._loaded_event is None:
            return self.loaded
        return bool(self._loaded_event.wait(timeout))

    def _boot(self) -> None:
        """The first load. A worker that cannot load exits as gunicorn's failed boot (as
        when loading happened before serving), so the arbiter stops with the error logged."""
        try:
            self.reconcile()
        except ZatoError as e:
            logger.error("cannot load services and channels from the ODB: %s", e)
            logging.shutdown()
            exit_guard.real_exit(WORKER_BOOT_ERROR)  # this one halts the server, on purpose
        self.loaded = True
        self._loaded_event.set()
        services, paths = len(self.store.services), len(self.channels)
        logger.info("worker %d ready: %d services, %d channel paths", os.getpid(), services, paths)
        self._listen_forever()

    def _listen_forever(self) -> None:
        import gevent

        self.events.listen_forever(
            self.on_event,
            lambda: self.stopping,
            self._on_subscribed,
            on_error=lambda e: self.health.failed("config events", e),
            sleep=gevent.sleep,
        )

    def _on_subscribed(self) -> None:
        """Subscribed (again): what changed while this worker was not subscribed came with
        events it missed, so the ODB is read in full. Until that works (the ODB away too, as
        when the host's link came back for Redis first) it is tried again; events wait."""
        import gevent

        logger.debug("worker %d subscribed to config events", os.getpid())
        self.health.ok(wrote=False)
        failed = False
        while not self.stopping:
            try:
                self.reconcile()
            except ZatoError as e:
                if not failed:
                    logger.error(
                        "reconciling with the ODB failed: %s; changes made while this worker was"
                        " not subscribed may be missing: trying again every %g s",
                        e,
                        RECONCILE_RETRY,
                    )
                failed = True
                gevent.sleep(RECONCILE_RETRY)
                continue
            if failed:
                logger.info("reconciled with the ODB: worker %d is up to date again", os.getpid())
            return

    def close(self) -> None:
        self.stopping = True
        if self._async is not None:
            self._async.stop()
        self.odb.dispose()
