"""What a Zato server does besides HTTP, attached to gunicorn's stock arbiter through its
documented server hooks (when_ready, on_exit, worker_exit): the connector supervisor sidecar,
the pickup directory, up_status in the ODB, and a graceful stop that leaves the load balancer
before the workers stop.

Graceful stop: when_ready chains a handler in front of the one gunicorn installed for
SIGTERM. It stops the supervisor (which withdraws membership and releases the lease), marks
the server draining (/zato/ready answers 503), waits until every load balancer reports that
it no longer sends new requests here (lb_view; at most [main] drain_seconds, the whole of it
when no LB reports; the view of an LB that stopped renewing it is ignored, and said so), and
only then hands the signal to gunicorn, whose graceful stop follows."""

from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from zato.common.errors import CoordError, ZatoError
from zato.common.signalflag import SignalFlag
from zato.config.settings import ServerSettings
from zato.connector import beat
from zato.coord import lb_view
from zato.coord.client import connect
from zato.lifecycle.process import python_module_argv
from zato.odb import api as odb_api
from zato.odb.engine import ODB
from zato.server import fatal, metrics
from zato.server.fork import ForkedProcess, fork_main, odb_work
from zato.server.pickup import PickupDir
from zato.server.readiness import DrainFlag
from zato.server.sidecar import Sidecar

logger = logging.getLogger("zato.arbiter")

SUPERVISOR_MODULE = "zato.connector.supervisor"
SUPERVISOR_STOP_TIMEOUT = 5.0
# A supervisor whose main loop (a pass every 20 ms) showed no progress this long is hung: killed
# and started again (or sooner: [main] connector_hang_after when lower; 0 turns both off).
SUPERVISOR_HANG_AFTER = 30.0
TICK = 0.25  # seconds between sidecar / pickup checks
DRAIN_POLL = 0.05  # seconds between reads of the LB views while draining

SLOW_DRAIN = 1.0  # seconds: a drain still waiting on a live LB this long says which one

ViewSource = Callable[[], "lb_view.Views | None"]


def record_up_status(settings: ServerSettings, status: str) -> None:
    """In the ODB's list of the cluster's servers; a server started again after `zato cluster
    forget` took it off that list is listed again (said at WARNING)."""

    def work() -> None:
        odb = ODB(settings.odb_url)
        try:
            relist = (settings.host, settings.port) if status == "running" else None
            if odb_api.set_up_status(odb, settings.cluster, settings.name, status, relist):
                logger.warning(
                    "server %s was not in the list of cluster %s (taken off it with zato cluster forget?):"
                    " listed again, as it runs",
                    settings.name,
                    settings.cluster,
                )
        finally:
            odb.dispose()

    try:
        odb_work(settings.odb_url, work, f"recording up_status {status}")
    except ZatoError as e:
        logger.error("cannot record up_status %s in the ODB: %s", status, e)


def wait_drained(
    name: str,
    bound: float,
    views: ViewSource,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = logger.warning,
) -> str:
    """Wait until no live LB's view lists `name` (at most `bound` seconds); says how it ended.

    `views()` returns the LB views, None when they cannot be read. With nothing to go by (no
    live LB, or Redis unreadable) the whole bound is waited: an LB we do not hear from learns
    of the drain from its health check only. A view left by an LB that stopped renewing it is
    ignored, and `say` tells so once per LB; so it does when live LBs still send new requests
    here after SLOW_DRAIN seconds, naming them."""
    start = clock()
    deadline = start + bound
    ignored: list[str] = []
    slow_told = False
    while True:
        current = views()
        live = current.live if current else {}
        for lb_id in current.stale if current else ():
            if lb_id not in ignored:
                ignored.append(lb_id)
                say(
                    f"drain of server {name}: ignoring the view of load balancer {lb_id}: not refreshed for"
                    f" over {lb_view.ALIVE_TTL:g} s (its controller stopped without withdrawing it:"
                    " killed, or its host lost?)"
                )
        note = f"; ignored the stale view of {', '.join(ignored)}" if ignored else ""
        serving = lb_view.still_serving(live, name)
        if live and not serving:
            return f"drained by {len(live)} load balancer(s){note}"
        now = clock()
        if now >= deadline:
            if serving:
                return f"drain bound of {bound:.1f} s reached; still served by {', '.join(serving)}{note}"
            return f"no load balancer reports; waited the drain bound of {bound:.1f} s{note}"
        if serving and not slow_told and now - start >= SLOW_DRAIN:
            slow_told = True
            say(
                f"drain of server {name}: load balancer(s) {', '.join(serving)} still send new requests here"
                f" after {now - start:.1f} s; waiting for them up to {deadline - now:.1f} s more"
            )
        sleep(min(DRAIN_POLL, deadline - now))


class ServerHooks:
    """The gunicorn hooks of one server; ZatoApplication sets them as gunicorn settings."""

    def __init__(self, settings: ServerSettings, draining: DrainFlag):
        self.zato = settings
        self.draining = draining
        hang_after = min(settings.connector_hang_after, SUPERVISOR_HANG_AFTER)
        self.sidecar = Sidecar(
            python_module_argv(SUPERVISOR_MODULE, settings.path),
            spawn=self._fork_supervisor,
            progress=functools.partial(beat.stamp, beat.supervisor_path(settings.path)),
            hang_after=hang_after,
        )
        self.pickup = PickupDir(settings)
        self.server: Any = None  # gunicorn's arbiter, from when_ready on
        self.stopping = SignalFlag()  # set by SIGTERM's handler: no lock (zato.common.signalflag)
        self._lock = threading.Lock()  # the ticker thread and the stop path both touch the sidecar
        self.zato_worker: Any = None  # in a worker process: its zato.server.worker.Worker
        self.fatal = fatal.Table()  # each worker's requests in flight, shared (zato.server.fatal)

    # gunicorn hooks

    def when_ready(self, server: Any) -> None:
        self.server = server
        record_up_status(self.zato, "running")
        logger.info(
            "server %s of cluster %s listening at %s", self.zato.name, self.zato.cluster, self.zato.address
        )
        exposed = metrics.open_warning(self.zato)
        if exposed:
            logger.warning("%s", exposed)
        gunicorn_term = signal.getsignal(signal.SIGTERM)
        if callable(gunicorn_term):
            signal.signal(signal.SIGTERM, self._term_handler(gunicorn_term))
        # The supervisor now, from this thread and before gunicorn forks the workers: it joins
        # the cluster while they load their services (the first tick came 0.25 s later, and
        # `zato start` returned before the server was a member).
        with self._lock:
            self.sidecar.tick()
        threading.Thread(target=self._tick_loop, name="zato-sidecar", daemon=True).start()

    def pre_fork(self, server: Any, worker: Any) -> None:  # noqa: ARG002 - gunicorn's hook signature
        # What the arbiter imported leaves the collector's view (gc.freeze): no collection in
        # a worker touches, and so copies, those pages; they stay shared with the arbiter.
        # (Worker modules are not pre-imported: bottle and others create thread-locals at
        # import, which must happen after the worker's gevent monkey-patching.)
        gc.freeze()
        self.fatal.take(worker)  # its slot of the table of requests in flight

    def on_exit(self, server: Any) -> None:  # noqa: ARG002 - gunicorn's hook signature
        self.stopping.set()
        with self._lock:
            self.sidecar.stop(SUPERVISOR_STOP_TIMEOUT)
            self.pickup.close()
        record_up_status(self.zato, "clean-down")
        logger.info("server %s stopped", self.zato.name)

    def child_exit(self, server: Any, worker: Any) -> None:
        """In the arbiter, for each worker it reaped: its live gauges go, and what it was serving
        when it ended is logged; a request alone in it is kept to be refused (zato.server.fatal)."""
        metrics.worker_exited(server, worker)
        self.fatal.release(worker, self.zato.name)

    def worker_abort(self, worker: Any) -> None:
        """In a worker the arbiter found hung (its timeout): the SystemExit gunicorn raises next,
        in the service that held the worker, is said as that, not as the service's sys.exit()."""
        from zato.service import store

        store.worker_aborted(worker.cfg.timeout)

    def worker_exit(self, server: Any, worker: Any) -> None:  # noqa: ARG002 - gunicorn's hook signature
        """In the worker process, after its loop ends: close its ODB and Redis connections."""
        if self.zato_worker is not None:
            self.zato_worker.close()

    # The arbiter's side work

    def _fork_supervisor(self, _argv: list[str]) -> ForkedProcess:
        """The connector supervisor, forked from the arbiter (it shares the imported modules)
        rather than a new interpreter; it drops the arbiter's listeners and worker files."""
        gc.freeze()
        close: list = []
        if self.server is not None:
            close += [listener.sock for listener in self.server.LISTENERS if listener.sock is not None]
            close += [worker.tmp.fileno() for worker in list(self.server.WORKERS.values())]
        return fork_main(SUPERVISOR_MODULE, [self.zato.path], close, settings=self.zato)  # not re-read

    def _tick_loop(self) -> None:
        while not self.stopping.wait(TICK):
            with self._lock:
                if self.stopping.is_set():
                    return
                self.sidecar.tick()
                try:
                    self.pickup.tick()
                except Exception:  # noqa: BLE001 - one bad poll must not end the pickup directory
                    logger.exception("pickup directory poll failed")

    def _term_handler(self, gunicorn_term: Callable[[int, FrameType | None], Any]) -> Callable:
        arbiter = os.getpid()

        def on_term(signum: int, frame: FrameType | None) -> None:
            if os.getpid() != arbiter:
                # A worker forked after this was installed, told to stop before it set up its own
                # handlers (a server stopped as it starts): it ends as SIGTERM ends a process.
                # Before, it ran the arbiter's stop here and lost the signal, and the arbiter
                # waited for it the whole graceful_timeout (30 s) before killing it.
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            if self.stopping.is_set():
                return  # a stop is under way already
            self.stopping.set()
            self.draining.set()  # /zato/ready answers 503 from now on: the LB stops sending traffic
            threading.Thread(
                target=self._drain, args=(gunicorn_term, signum), name="zato-drain", daemon=True
            ).start()

        return on_term

    def _drain(self, gunicorn_term: Callable[[int, FrameType | None], Any], signum: int) -> None:
        logger.info("graceful stop of server %s", self.zato.name)
        try:
            with self._lock:
                self.sidecar.stop(SUPERVISOR_STOP_TIMEOUT)
            if self.zato.drain_seconds > 0:
                client = connect(self.zato.redis, socket_timeout=1.0)
                try:
                    logger.info(
                        "%s", wait_drained(self.zato.name, self.zato.drain_seconds, self._views(client))
                    )
                finally:
                    client.close()
        except Exception:  # noqa: BLE001 - whatever failed, the server was told to stop and stops
            logger.exception(
                "graceful stop of server %s: the drain failed; stopping without it", self.zato.name
            )
        finally:
            gunicorn_term(signum, None)  # gunicorn's own graceful stop from here

    def _views(self, client: Any) -> ViewSource:
        def views() -> lb_view.Views | None:
            try:
                return lb_view.read(client, self.zato.cluster)
            except CoordError:
                return None

        return views
