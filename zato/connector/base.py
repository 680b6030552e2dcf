"""What every connector process shares: its context (settings, identity, epoch, stop rules),
its statistics, and the reconnect policy.

A connector is a plain process (no gevent). It stops when it gets SIGTERM, when its parent
(the supervisor) is gone, or when the cluster's fencing epoch moved past its own (another
server took the lease): then it exits with EXIT_LEASE_LOST. It reads that epoch from Redis
every second unless its supervisor confirmed the lease just before (zato.connector.holdfile).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from zato.common import jsonenc
from zato.common.errors import EXIT_LEASE_LOST, EXIT_OK, CoordError
from zato.common.signalflag import SignalFlag
from zato.config.settings import ServerSettings
from zato.connector import beat, holdfile
from zato.coord import connector_stats, lease
from zato.coord.signing import member_key, outgoing_key

if TYPE_CHECKING:
    from zato.connector.invoke import Invoker
    from zato.coord.queues import OutQueue

logger = logging.getLogger("zato.connector")

STATS_INTERVAL = 1.0  # a change in the stats reaches Redis within this
STATS_TTL = connector_stats.TTL  # a connector silent this long shows as silent
STATS_REFRESH = STATS_TTL / 2  # unchanged stats are written again this often (a failed write: each tick)
FATAL_STATS_TTL = 86400.0  # the last words of a connector that cannot run here
EPOCH_CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """Reconnect back-off as a value: start, then times factor plus step each attempt, never
    above max."""

    start: float = 0.5
    step: float = 1.0
    max: float = 5.0
    factor: float = 1.0

    def after(self, previous: float) -> float:
        """The wait that follows `previous` (0: the first wait)."""
        return self.start if previous <= 0 else min(previous * self.factor + self.step, self.max)

    def delays(self) -> Iterator[float]:
        delay = self.start
        while True:
            yield delay
            delay = self.after(delay)


def say_reconnecting(ctx: Context, where: str, why: str, delay: float, log: logging.Logger = logger) -> None:
    """A connection attempt failed: the status says why and "reconnecting", `log` when next."""
    ctx.stats.error(f"cannot connect to {where}: {why}")
    ctx.stats.state("reconnecting")
    log.warning("%s: cannot connect to %s: %s; retrying in %.1fs", ctx.label, where, why, delay)


def list_queue(ctx: Context, queue: OutQueue) -> None:
    """An outgoing connector lists its Redis queue among the cluster's outgoing queues, so its
    depth stays in /metrics once the connection is made inactive (connections created before
    the list existed are listed this way). A Redis error is logged: the next start lists it."""
    try:
        queue.register()
    except CoordError as e:
        logger.warning("%s: its queue is not in the list of outgoing queues (/metrics): %s", ctx.label, e)


def spec_name(kind: str, name: str) -> str:
    """The cluster-wide name of a connector (ConnectorSpec.name, stats key suffix)."""
    return f"{kind}:{name}"


class Stats:
    """Counters of one connector, flushed to Redis by a daemon thread."""

    def __init__(self, client: redis.Redis, cluster: str, kind: str, name: str):
        self.client, self.cluster = client, cluster
        self.key_name = spec_name(kind, name)
        self.data: dict[str, Any] = {
            "kind": kind,
            "name": name,
            "pid": os.getpid(),
            "started": time.time(),
            "state": "starting",
            # when the state last changed (this host's wall clock): `updated` - this is how long
            # it has been in it, both read off the same clock (zato cluster status: "for 45 s")
            "state_since": time.time(),
            "messages_in": 0,
            "messages_out": 0,
            "failures": 0,
            "parked": 0,
            "parking_queue": None,  # AMQP channel: messages in its parking queue now (the broker's count)
            "backouts": 0,  # IBM MQ: gets backed out after a failed service call
            "reconnects": 0,  # connection-broken errors after which it connected again
            "last_error": None,
            "last_error_at": None,
            "updated": None,  # every key exists from the start: the stats thread copies this dict
        }
        self._stop = threading.Event()
        self._lock = threading.Lock()  # invocation threads count concurrently
        self._flushing = threading.Lock()
        self._failing = False
        self._written: dict | None = None  # what the last successful write stored, "updated" aside
        self._written_at = 0.0  # and when (monotonic)
        self._thread = threading.Thread(target=self._loop, name="stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            self.data[field] += n

    def state(self, state: str) -> None:
        if self.data["state"] != state:
            self.data["state"] = state
            self.data["state_since"] = time.time()
            self.flush()

    def error(self, text: str) -> None:
        self.data["last_error"] = text[:500]
        self.data["last_error_at"] = time.time()

    def flush(self, ttl: float = STATS_TTL) -> None:
        with self._flushing:  # the stats thread's and a state change's: the newer copy written last
            self.data["updated"] = time.time()
            doc = dict(self.data)
            try:
                connector_stats.write(self.client, self.cluster, self.key_name, doc, ttl)
            except CoordError as e:
                if not self._failing:
                    logger.warning("cannot write connector stats (said once until it works again): %s", e)
                self._failing = True
            else:
                self._failing = False
                self._written, self._written_at = self._content(doc), time.monotonic()

    @staticmethod
    def _content(doc: dict) -> dict:
        return {k: v for k, v in doc.items() if k != "updated"}

    def due(self, now: float) -> bool:
        """Something changed since the last write, or the key needs refreshing before its TTL
        (an idle connector writes every STATS_REFRESH seconds, not every STATS_INTERVAL)."""
        return self._content(self.data) != self._written or now - self._written_at >= STATS_REFRESH

    def close(self) -> None:
        self._stop.set()
        if self.data["state"] == "fatal":  # kept long enough for `zato cluster status` to say why
            self.flush(ttl=FATAL_STATS_TTL)
            return
        self.data["state"] = "stopped"
        self.flush()

    def _loop(self) -> None:
        # at once first: a RUNNING connector without statistics reads "silent" (zato.coord.status)
        while True:
            if self.due(time.monotonic()):
                self.flush()
            if self._stop.wait(STATS_INTERVAL):
                return


class Context:
    """Identity and stop rules of one connector process."""

    def __init__(
        self,
        settings: ServerSettings,
        kind: str,
        name: str,
        epoch: int,
        client: redis.Redis,
        invoke_key: bytes = b"",
        members_key: bytes | None = None,
        out_key: bytes = b"",
    ):
        self.settings, self.kind, self.name, self.epoch = settings, kind, name, epoch
        self.invoke_key = invoke_key  # signs internal invoke calls (zato.common.signing) for this epoch
        # verifies the servers' member entries; given when the settings no longer hold the secret
        self.member_key = members_key or member_key(settings.cluster_secret, settings.cluster)
        # verifies outgoing messages (zato.coord.signing.outgoing_key); b"": derived from the
        # settings' secret when an outgoing connector asks for it (outgoing_key())
        self._out_key = out_key
        self.client = client
        self.stats = Stats(client, settings.cluster, kind, name)
        self.stop_event = SignalFlag()  # set by SIGTERM's handler: no lock (zato.common.signalflag)
        self.exit_code = EXIT_OK
        self._parent = os.getppid()
        self._next_epoch_check = 0.0
        self._epoch_failing = False
        self._hold_file = holdfile.path(settings.path)
        self._vouched_until = 0.0  # monotonic: until then the supervisor's last record vouches
        self._signal_fd: int | None = None
        self._beat = beat.Beat(beat.path(settings.path, os.getpid()))  # progress, for the hang check

    def invoker(self, timeout: float | None = None, beat_while_waiting: bool = False) -> Invoker:
        """The channel connectors' way to the services: this epoch's key, the live servers
        whose membership entries verify, bodies within the servers' [limits] max_body;
        `timeout`: seconds to wait for a service's answer (None: invoke.DEFAULT_TIMEOUT);
        `beat_while_waiting`: for a connector whose main loop waits for the answers itself (no
        other loop beats meanwhile), the wait shows progress, so a service slower than [main]
        connector_hang_after (but within `timeout`) does not get the connector killed as hung."""
        from zato.connector.invoke import DEFAULT_TIMEOUT, Invoker  # only the channel connectors need it

        s = self.settings
        return Invoker(
            self.client,
            s.cluster,
            self.invoke_key,
            self.epoch,
            timeout or DEFAULT_TIMEOUT,
            members=self.member_key,
            max_body=s.limits.max_body,
            channel=f"{self.kind}:{self.name}",
            keepalive=server_keepalive(s.gunicorn),
            ca_file=s.tls_ca_file,
            tls_only=bool(s.tls_cert),
            progress=self._beat if beat_while_waiting else None,
        )

    def outgoing_key(self) -> bytes:
        """The key outgoing messages are signed with: an outgoing connector publishes no other.
        ValueError without it (the settings hold no secret: a supervisor gives the key)."""
        if not self._out_key:
            self._out_key = outgoing_key(self.settings.cluster_secret, self.settings.cluster)
        return self._out_key

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    def request_stop(self, *_: object) -> None:
        """Signal-handler safe: only sets a flag."""
        self.stop_event.set()

    def signal_fd(self) -> int:
        """A file descriptor that becomes readable when a signal arrives, so a connector
        blocked in a poll (ZeroMQ) wakes at once on SIGTERM. Main thread only."""
        if self._signal_fd is None:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            signal.set_wakeup_fd(w)
            self._signal_fd = r
        return self._signal_fd

    def should_stop(self) -> bool:
        """Asked by every connector's loop: it beats too (zato.connector.beat)."""
        self._beat()
        if self.stop_event.is_set():
            return True
        if os.getppid() != self._parent:
            logger.warning("%s: parent process is gone, stopping", self.label)
            self.stop_event.set()
            return True
        now = time.monotonic()
        if now >= self._next_epoch_check:
            self._next_epoch_check = now + EPOCH_CHECK_INTERVAL
            if not self.vouched():
                self._check_epoch()  # the supervisor cannot vouch for the epoch now: ask Redis
        return self.stop_event.is_set()

    def vouched(self) -> bool:
        """True while the supervisor's last confirmed renewal of this epoch vouches that no
        newer epoch can exist (zato.connector.holdfile). The file is read again only once the
        record read last has expired, so this is cheap enough to ask per batch of messages."""
        now = time.monotonic()
        if now >= self._vouched_until:
            within = self.settings.lease.renew_deadline
            self._vouched_until = holdfile.vouched_until(self._hold_file, self.epoch, now, within)
        return now < self._vouched_until

    def _check_epoch(self) -> None:
        try:
            newest = lease.current_epoch(self.client, self.settings.cluster)
        except CoordError as e:
            if not self._epoch_failing:
                logger.warning(
                    "%s: cannot check the lease epoch (said once until it works again): %s", self.label, e
                )
            self._epoch_failing = True
            return
        self._epoch_failing = False
        if newest > self.epoch:
            self.lease_lost(f"the cluster epoch is {newest}, this connector runs with {self.epoch}")

    def lease_lost(self, why: str) -> None:
        logger.warning("%s: lease lost (%s), stopping", self.label, why)
        self.exit_code = EXIT_LEASE_LOST
        self.stop_event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on stop; True when it is time to stop."""
        deadline = time.monotonic() + seconds
        while not self.should_stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.stop_event.wait(min(left, 0.2))
        return True


def server_keepalive(gunicorn: dict) -> float:
    """Seconds a server keeps an idle keep-alive connection open: server.conf [gunicorn]
    keepalive, else gunicorn's default (invoke.SERVER_KEEPALIVE)."""
    from zato.connector.invoke import SERVER_KEEPALIVE

    try:
        value = float(gunicorn.get("keepalive", SERVER_KEEPALIVE))
    except (TypeError, ValueError):
        return SERVER_KEEPALIVE
    return value if value >= 0 else SERVER_KEEPALIVE


def not_json(body: bytes) -> str | None:
    """Why a channel's message is not JSON a service could be given (a poison message, which
    no retry would change), or None when it is JSON."""
    try:
        json.loads(body)
    except ValueError as e:  # also bytes that are not UTF-8
        return f"body is not valid JSON ({jsonenc.error_text(e)})"
    except RecursionError:  # json raises this, not ValueError, for deep nesting
        return "body is JSON nested too deeply to parse"
    return None


def run_with_stack(func: Callable[[], int], stack_bytes: int, name: str) -> int:
    """func() in a thread with a C stack of `stack_bytes` (address space: only the pages it
    touches cost memory), whatever the host's stack limit; its result, or its exception raised
    here. The calling (main) thread keeps handling signals meanwhile."""
    outcome: list = []

    def call() -> None:
        try:
            outcome.append((True, func()))
        except BaseException as e:  # noqa: BLE001 - raised again in the calling thread
            outcome.append((False, e))

    thread = threading.Thread(target=call, name=name)
    previous = threading.stack_size(stack_bytes)  # taken when the thread starts
    try:
        thread.start()
    finally:
        threading.stack_size(previous)  # the threads it starts get the usual size
    while thread.is_alive():
        thread.join(0.5)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
