"""Connector supervisor: the sidecar process of each server (see DESIGN "Process model").

Entry point: `python -m zato.connector.supervisor SERVER_DIR`, started (and restarted) by the
server's arbiter. A plain-threads process:

    main thread   gathers observations (signals, parent, lease, desired connectors), lets
                  zato.connector.decide.Decider decide and acts: starts/stops children (spawning
                  only here: the kernel's parent-death signal is tied to the forking thread)
    heartbeat     membership key of this server (zato.coord.membership)
    lease         LeaseKeeper: competes as a standby, renews as the holder
    desired       reads zato.connector.registry.desired() every few seconds and on events
    events        config events of kind "connector" wake the desired thread
    status        writes the holder's status JSON (children, states) to Redis, fenced

On SIGTERM (or when the arbiter is gone): withdraw membership, stop the children, release
the lease (which wakes the standbys at once), exit 0.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable

from redis.backoff import NoBackoff
from redis.retry import Retry

from zato.common.errors import CoordError, ZatoError
from zato.common.retry import Backoff
from zato.common.signalflag import SignalFlag
from zato.common.signing import INVOKE_KEY_ENV, epoch_key
from zato.config import transfer
from zato.config.settings import ServerSettings, load_server_settings
from zato.connector import beat, decide, holdfile, registry, renames, stepdown
from zato.connector.handover import Handover
from zato.connector.process import MEMBERS_KEY_ENV, OUTGOING_KEY_ENV, SETTINGS_ENV, Manager, RestartPolicy
from zato.connector.zygote import ZygoteOS
from zato.coord import takeovers
from zato.coord.client import connect, describe
from zato.coord.events import RedisConfigEvents
from zato.coord.health import RedisHealth
from zato.coord.lease import Lease, LeaseKeeper
from zato.coord.membership import Member, RedisMembership
from zato.coord.port import ConfigEvents, Membership
from zato.coord.signing import member_key, outgoing_key
from zato.lifecycle.entry import Entry
from zato.odb.epoch import EpochFloor

logger = logging.getLogger("zato.supervisor")

TICK = 0.02  # main loop period: how fast the holder reacts to its own lease state
HANDOVER_TICK = 0.1  # the hand-over thread's period (it reads Redis once a second: CHECK_EVERY)
RECONCILE_EVERY = 5.0  # re-read the desired connectors this often even without events
STATUS_EVERY = 15.0  # refresh the holder's status key this often (it is also written on every change)
STATUS_TTL = 45.0
PARENT_CHECK_EVERY = 0.2


def lease_client_timeout(settings: ServerSettings) -> float:
    """The whole room between the renew interval and the deadline: renewals are hedged on a
    second connection after a third of it (Lease), so a slow one need not be cut short (a
    timeout drops the connection, and a new one costs round trips a slow link does not have)."""
    lease = settings.lease
    return max(0.1, min(settings.redis.socket_timeout, lease.renew_deadline - lease.renew_interval))


def restart_policy(settings: ServerSettings) -> RestartPolicy:
    """Children must be gone between the renew deadline and the lease expiry."""
    spare = settings.lease.ttl - settings.lease.renew_deadline
    return RestartPolicy(
        stop_timeout=max(0.05, min(RestartPolicy.stop_timeout, spare * 0.6)),
        hang_after=settings.connector_hang_after,
    )


def zygote_kill_answer(settings: ServerSettings) -> float:
    """How long the zygote may take to report a SIGKILL done while the supervisor stops every
    child (ZygoteOS.stopping_all) before it counts as lost (and is killed, its connectors with
    it): half of what the step-down's room keeps after its SIGKILL, so a stuck zygote's
    connectors still end before the lease can expire."""
    spare = settings.lease.ttl - settings.lease.renew_deadline
    return max(0.02, (spare - restart_policy(settings).stop_timeout) / 2)


class Supervisor:
    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.stop_event = SignalFlag()  # set by the signal handler: no lock (zato.common.signalflag)
        self.health = RedisHealth(describe(settings.redis), cluster=settings.cluster)
        no_retry = Retry(NoBackoff(), 0)
        self.client = connect(settings.redis, retry=no_retry)
        timeout = lease_client_timeout(settings)
        lease_clients = [
            connect(settings.redis, retry=no_retry, socket_timeout=timeout, socket_connect_timeout=timeout)
            for _ in range(2)
        ]
        self.lease = Lease(
            lease_clients[0], settings.cluster, settings.name, settings.lease, spare=lease_clients[1],
            hedge_after=timeout / 3, floor=EpochFloor(settings.odb_url, settings.cluster),
        )  # fmt: skip
        self.keeper = LeaseKeeper(
            self.lease, self.health, self.stop_event.is_set, self.stop_event.wait,
            on_acquired=self._took_over, on_confirmed=self._confirmed, yields=lambda: self.handover.noted(),
        )  # fmt: skip
        self.hold_file = holdfile.path(settings.path)
        self._hold_file_failing = False
        # started by the main loop, holder or standby; never waited on longer than it can afford
        self.zygote = ZygoteOS(settings, kill_answer=zygote_kill_answer(settings))
        self.beats = beat.Files(settings.path)  # the children's progress (hang check)
        self.beats.clear()
        self.manager = Manager(restart_policy(settings), self.zygote, self.beats)
        self.manager.on_renamed = self._renamed
        self.parent = os.getppid()
        self.started_at = time.time()
        self._shared_with: set[str] = set()  # addresses of other servers seen using our name
        self.member_key = member_key(settings.cluster_secret, settings.cluster)
        # What the cluster shares besides the lease, through the coordination port
        self.membership: Membership = RedisMembership(self.client, settings.cluster, self.member_key)
        self.events: ConfigEvents = RedisConfigEvents(self.client, settings.cluster)
        self.handover = Handover(
            self.client, settings.cluster, settings.name, self.membership,
            after=settings.lease.handover_after, yield_for=settings.lease.yield_for,
        )  # fmt: skip
        # What every connector gets instead of reading server.conf again (zato.connector.run)
        out_key = outgoing_key(settings.cluster_secret, settings.cluster)  # verifies outgoing messages
        self.child_env = {SETTINGS_ENV: transfer.dumps(transfer.without_secrets(settings)),
                          MEMBERS_KEY_ENV: self.member_key.hex(),
                          OUTGOING_KEY_ENV: out_key.hex()}  # fmt: skip
        self.decider = decide.Decider(self.parent, PARENT_CHECK_EVERY)
        self.acting_epoch: int | None = None  # reported by membership and status; set as acted on
        self.acting_since = 0.0
        self._desired: dict[str, registry.ConnectorSpec] = {}
        self._desired_version = 0
        self._reads_started = self._reads_ended = 0  # reads of the definitions (decide, rule 4)
        self._desired_lock = threading.Lock()
        self._renames: list[renames.Pending] = []  # read with the definitions (zato.connector.renames)
        self._renames_version = self._renames_seen = 0
        self._watched = renames.Watched()
        # (epoch, old spec, new spec) of each renamed connector started: the renames thread moves
        self._moves: queue.SimpleQueue[tuple[int, registry.ConnectorSpec, registry.ConnectorSpec]] = (
            queue.SimpleQueue()
        )
        self.desired_error = ""
        self.reconcile_now = threading.Event()
        self.restart_requests: queue.SimpleQueue[str] = queue.SimpleQueue()  # the main loop acts on them
        self.heartbeat_now = threading.Event()
        self.status_dirty = threading.Event()
        self._status_doc: dict | None = None
        self.stop_reason = ""
        self._threads: dict[str, threading.Thread] = {}

    def _confirmed(self, epoch: int, started: float) -> None:
        """Tell this server's connectors (zato.connector.holdfile): they skip asking Redis."""
        try:
            holdfile.write(self.hold_file, epoch, started)
        except OSError as e:  # the connectors ask Redis, as without the file
            if not self._hold_file_failing:
                logger.warning("cannot write %s (said once): %s", self.hold_file, e)
            self._hold_file_failing = True
        else:
            self._hold_file_failing = False

    def _took_over(self, epoch: int, duration_s: float | None) -> None:
        """The takeover log (zato.coord.takeovers), written on a thread of its own. On the lease
        keeper's, it came between the acquisition and the first renewal, on the general
        connection (not hedged, not cut short as renewals are): one slow answer (a packet lost on
        a slow link) made the new holder miss its renew deadline and step down before it renewed
        once (tests/integration/test_takeover_record_slow.py)."""
        s, at = self.settings, time.time()

        def record() -> None:
            try:
                takeovers.record(self.client, s.cluster, s.name, epoch, at, duration_s)
            except CoordError as e:
                logger.warning("cannot record the takeover of epoch %d: %s", epoch, e)

        threading.Thread(target=record, name="zato-takeover-record", daemon=True).start()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        logger.info(
            "supervisor of server %s (cluster %s) started, pid %d, parent %d",
            self.settings.name,
            self.settings.cluster,
            os.getpid(),
            self.parent,
        )
        self._start_thread("heartbeat", self._heartbeat_loop)
        self._start_thread("lease", self._lease_loop)
        self._start_thread("desired", self._desired_loop)
        self._start_thread("events", self._events_loop)
        self._start_thread("status", self._status_loop)
        self._start_thread("handover", self._handover_loop)
        self._start_thread("renames", self._renames_loop)
        try:
            self._main_loop()
        finally:
            self._shutdown()
        return 0

    def _lease_loop(self) -> None:
        self.lease.prepare()  # ahead of time: not while the cluster waits for a new holder
        self.keeper.run()

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                logger.exception("supervisor thread %s crashed; stopping the supervisor", name)
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=f"zato-{name}", daemon=True)
        thread.start()
        self._threads[name] = thread

    def on_signal(self, signum: int, _frame: object) -> None:
        """Only records the request; the main loop does the work (gunicorn style)."""
        self.stop_reason = signal.Signals(signum).name
        self.stop_event.set()

    def request_stop(self, why: str) -> None:
        """A stop nobody asked for (its parent, the server's arbiter, went away without
        stopping it first: killed?): a WARNING, where a signal's stop is an INFO."""
        if not self.stop_event.is_set():
            logger.warning("stopping: %s; its connectors stop too", why)
        self.stop_event.set()

    def _main_loop(self) -> None:
        """Gathers what it sees, lets the Decider decide (zato.connector.decide), acts."""
        progress = beat.Beat(beat.supervisor_path(self.settings.path))  # the arbiter's hang check
        while True:
            progress()
            seen, desired = self._observe()
            if not self._execute(self.decider.step(time.monotonic(), seen), desired):
                break
            if self.manager.tick():
                self._status_changed()
            self.stop_event.wait(TICK)
        if self.stop_reason:
            logger.info("stopping: %s received", self.stop_reason)

    def _handover_loop(self) -> None:
        """A connector that cannot reach its broker for a while: let a server that may hold
        the lease (zato.connector.handover); the Decider steps down on the main loop's next tick.

        Its own thread, not the main loop: due() reads the connectors' stats from Redis, which
        may take up to [kvdb] socket_timeout (1 s) when Redis is cut off, and the main loop must
        step down within the room between the renew deadline and the lease's expiry (0.5 s by
        default) whatever Redis does. In the main loop, the holder cut from Redis stopped its
        connectors after the next holder had taken the lease (tests/hosts/test_partition.py)."""
        seen: int | None = None
        while not self.stop_event.wait(HANDOVER_TICK):
            epoch = self.acting_epoch
            if epoch != seen:  # stepped down, or acting under a new lease: start afresh
                self.handover.reset()
                seen = epoch
            if epoch is None or self.keeper.handing_over:
                continue
            if (
                self.handover.due(time.monotonic(), list(self.manager.children))
                and self.acting_epoch == epoch
            ):
                self.keeper.hand_over()

    def _observe(self) -> tuple[decide.Observations, dict[str, registry.ConnectorSpec]]:
        requests = []
        while not self.restart_requests.empty():
            requests.append(self.restart_requests.get_nowait())
        with self._desired_lock:
            version, desired = self._desired_version, self._desired
            reads_started, reads_ended = self._reads_started, self._reads_ended
        seen = decide.Observations(
            stop_requested=self.stop_event.is_set(),
            parent_alive=os.getppid() == self.parent,
            valid_epoch=self.keeper.valid_epoch(),
            desired_version=version,
            reads_started=reads_started,
            reads_ended=reads_ended,
            desired_names=frozenset(desired),
            children=frozenset(self.manager.children),
            restart_requests=tuple(requests),
        )
        return seen, desired

    def _execute(self, actions: list[decide.Action], desired: dict[str, registry.ConnectorSpec]) -> bool:
        """Carries the actions out in order; False when the main loop is to end."""
        for action in actions:
            if isinstance(action, decide.Stop):
                if action.reason is not None:
                    self.request_stop(action.reason)
                return False
            if isinstance(action, decide.TickZygote):
                self.zygote.tick()
            elif isinstance(action, decide.StepDown):
                self._step_down(action.epoch)
            elif isinstance(action, decide.StartActing):
                self._start_acting(action.epoch)
            elif isinstance(action, decide.Reconcile):
                if action.stale:
                    logger.warning(
                        "no read of the connector definitions ended within %.0f s of taking the lease: "
                        "starting the connectors as last read",
                        self.decider.fresh_wait,
                    )
                self._reconcile(action.epoch, desired)
            elif isinstance(action, decide.Restart):
                self.manager.restart(action.name)  # the Decider saw it among the children
            elif isinstance(action, decide.NoSuchConnector):
                logger.warning("restart of connector %s requested: no such connector here", action.name)
        return True

    def _start_acting(self, epoch: int) -> None:
        self.acting_epoch, self.acting_since = epoch, time.time()
        logger.info("acting as connector server with epoch %d", epoch)
        self.heartbeat_now.set()
        self.reconcile_now.set()

    def _reconcile(self, epoch: int, desired: dict[str, registry.ConnectorSpec]) -> None:
        env = {
            **self.child_env,
            "ZATO_EPOCH": str(epoch),
            "ZATO_SERVER_DIR": self.settings.path,
            INVOKE_KEY_ENV: epoch_key(self.settings.cluster_secret, epoch).hex(),
        }
        self.manager.reconcile(desired, env)
        self._status_changed()

    def _renamed(self, old: registry.ConnectorSpec, new: registry.ConnectorSpec) -> None:
        """A renamed outgoing connection's new connector is about to start, its old one has
        exited: what waits under the old name (sent by a service before it heard of the
        rename, or left unconfirmed by the old connector) goes out through the new one, moved
        by the renames thread (_renames_loop): the main loop makes no Redis call."""
        self._moves.put((self.acting_epoch or 0, old, new))

    def _renames_loop(self) -> None:
        """Moves what waits under a renamed connection's old name (_renamed).

        Its own thread, not the main loop: the move may wait up to [kvdb] socket_timeout when
        Redis hangs, and the main loop must step down within the room between the renew
        deadline and the lease's expiry whatever Redis does (_handover_loop says the same).
        The new connector may have started by then; the old name's cannot start again before
        that name is made again, whose script takes the rename's record away, so the move,
        recorded_only, then moves nothing; the epoch taken when it was asked for fences it."""
        while not self.stop_event.is_set():
            try:
                epoch, old, new = self._moves.get(timeout=0.25)
            except queue.Empty:
                continue
            was, now = old.definition["name"], new.definition["name"]
            try:
                moved = renames.move(self.client, self.settings.cluster, epoch, new.kind, was, now,
                                     recorded_only=True)  # fmt: skip
            except CoordError as e:  # the renames are read again within RECONCILE_EVERY: moved then
                logger.warning(
                    "child %s: what waits under its old name %r stays there for now: %s", new.name, was, e
                )
                continue
            if moved.count:
                logger.info("child %s: %d message(s) left under its old name %r go out through it", new.name,
                            moved.count, was)  # fmt: skip

    def _settle_renames(self) -> None:
        """After each read of the renamed outgoing connections, while acting: what came to an old
        name goes to the current one (zato.connector.renames).

        In the thread that reads them, not the main loop: these Redis calls may wait up to
        [kvdb] socket_timeout when Redis is cut off, and the main loop must step down within the
        room between the renew deadline and the lease's expiry (_handover_loop says the same).
        The main loop may start a connector meanwhile: one of an old name is started only once
        that name is made again, and the script that makes it takes the rename's record away,
        so a move made after it moves nothing (recorded_only); the epoch read here fences it."""
        with self._desired_lock:
            version, pending = self._renames_version, self._renames
        epoch = self.acting_epoch  # once: the main loop may step down meanwhile
        if version == self._renames_seen or epoch is None:
            return
        self._renames_seen = version
        if pending:
            runs, now = self.manager.runs, time.monotonic()
            renames.settle(self.client, self.settings.cluster, epoch, pending, runs, self._watched, now)

    def _step_down(self, epoch: int) -> None:
        """SIGKILL is timed from the renew deadline, however late this began (zato.connector.stepdown)."""
        count, began = len(self.manager.children), time.monotonic()
        grace = stepdown.stop_grace(began, self.keeper.renew_deadline_at(), self.manager.policy.stop_timeout)
        logger.warning("lease epoch %s no longer held: stopping %d children (SIGKILL after %.2f s)",
                       epoch, count, grace)  # fmt: skip
        with self.zygote.stopping_all():
            all_gone = self.manager.stop_all(grace)
        ended = time.monotonic()
        self.acting_epoch = None
        self._status_doc = None
        self.heartbeat_now.set()
        self.keeper.release_now()  # after a hand-over: the standbys need not wait for the TTL
        lease = self.settings.lease
        left = self.keeper.renew_deadline_at() + lease.ttl - lease.renew_deadline - ended
        logger.log(*stepdown.stepped_down(epoch, count, ended - began, left, all_gone))

    def _shutdown(self) -> None:
        for event in (self.stop_event, self.heartbeat_now, self.reconcile_now, self.status_dirty):
            event.set()
        self._join("heartbeat")  # so no heartbeat can bring the key back after withdraw
        self._withdraw()
        if self.manager.active:
            with self.zygote.stopping_all():  # before the release: gone when a standby takes over
                self.manager.stop_all(self.manager.policy.stop_timeout)
        self._join("lease")  # no renewal in flight while we release
        epoch = self.lease.epoch
        try:
            if self.lease.release():
                logger.info("released lease epoch %d", epoch)
        except CoordError as e:
            logger.warning("could not release lease epoch %d: %s", epoch, e)
        self.zygote.close()  # after the release: the standbys need not wait for it
        for name in self._threads:
            self._join(name)
        logger.info("supervisor of server %s stopped", self.settings.name)

    def _join(self, name: str) -> None:
        thread = self._threads.get(name)
        if thread is not None:
            thread.join(timeout=2.0)

    # -- membership --------------------------------------------------------------------------
    def _member(self) -> Member:
        role = "holder" if self.acting_epoch is not None else "standby"
        s = self.settings
        return Member(
            s.name,
            s.announced_host,
            s.port,
            self.parent,
            self.started_at,
            role=role,
            seen_epoch=self.lease.highest_epoch,
            tls=bool(s.tls_cert),
        )

    def _heartbeat_loop(self) -> None:
        s, beats = self.settings, 0
        joining = False  # a join whose index or notice failed: done again at the next beat
        while not self.stop_event.is_set():
            asked = self.health.clock()
            try:
                member = self._member()
                joining = self.membership.refresh(member, s.membership.ttl, self._name_shared) or joining
                if joining or beats % 10 == 0:  # the key was just written: only the index set
                    self.membership.index(s.name)
                if joining:
                    self.membership.publish_change(s.name, "joined")
                    logger.info("joined cluster %s as %s", s.cluster, member.address)
                    joining = False
                self.health.ok(asked_at=asked)
                beats += 1
            except CoordError as e:
                self.health.failed("membership heartbeat", e)
            self.heartbeat_now.wait(s.membership.heartbeat)
            self.heartbeat_now.clear()

    def _name_shared(self, other: Member) -> None:
        """Our heartbeat replaced the live entry of another server of the same name: both
        passed `zato start`'s check at once (it cannot lock), and each heartbeat replaces the
        other's, so the LB moves the name between the two addresses every second."""
        if other.address in self._shared_with:
            return
        self._shared_with.add(other.address)
        s = self.settings
        logger.error("server name %s of cluster %s is also used by the server at %s (pid %d), while this one "
                     "is at %s: each heartbeat replaces the other's membership entry, and the load balancer "
                     "moves the name between the two addresses every second; stop one of them, or give it "
                     "another [main] name in its server.conf",
                     s.name, s.cluster, other.address, other.pid, f"{s.announced_host}:{s.port}")  # fmt: skip

    def _withdraw(self) -> None:
        s = self.settings
        try:
            self.membership.withdraw(s.name, owner=self._member())
            self.membership.publish_change(s.name, "left")
            logger.info("left cluster %s", s.cluster)
        except CoordError as e:
            logger.warning("could not withdraw membership: %s", e)

    # -- desired connectors and config events ------------------------------------------------
    def _desired_loop(self) -> None:
        while not self.stop_event.is_set():
            self.reconcile_now.clear()
            with self._desired_lock:
                self._reads_started += 1
                number = self._reads_started
            try:
                desired = registry.desired(self.settings)
            except ZatoError as e:
                self._desired_failed(str(e))
            except Exception as e:
                logger.exception("reading the desired connectors failed")
                self._desired_failed(f"{type(e).__name__}: {e}")
            else:
                if self.desired_error:
                    logger.info("connector definitions readable again")
                self.desired_error = ""
                with self._desired_lock:
                    if desired != self._desired or self._desired_version == 0:
                        self._desired = desired
                        self._desired_version += 1
            with self._desired_lock:  # after the set: the main loop never sees this read ended without it
                self._reads_ended = number
            if not self.desired_error:  # after: a slow Redis does not hold up the read's end
                self._read_renames()
                self._settle_renames()
            self.reconcile_now.wait(RECONCILE_EVERY)

    def _read_renames(self) -> None:
        """The renamed outgoing connections (_settle_renames)."""
        try:
            pending = renames.read(
                self.client, self.settings.cluster, lambda: registry.outgoing_names(self.settings)
            )
        except CoordError as e:
            self.health.failed("reading the renamed outgoing connections", e)
            return
        except ZatoError as e:
            logger.warning("renamed outgoing connections: cannot read their definitions: %s", e)
            return
        with self._desired_lock:
            self._renames = pending
            self._renames_version += 1

    def _desired_failed(self, error: str) -> None:
        if error != self.desired_error:
            logger.warning("cannot read connector definitions (keeping what runs): %s", error)
        self.desired_error = error

    def _events_loop(self) -> None:
        def on_event(event: dict) -> None:
            if event.get("kind") == "connector":
                self.reconcile_now.set()
            elif event.get("kind") == "connector-restart":  # from the dashboard
                self.restart_requests.put(str(event.get("name")))

        retry = self.settings.lease.retry_interval
        self.events.listen_forever(
            on_event,
            self.stop_event.is_set,
            self.reconcile_now.set,
            on_error=lambda e: self.health.failed("config events", e),
            sleep=self.stop_event.wait,
            backoff=Backoff(retry, retry),
        )

    # -- status ------------------------------------------------------------------------------
    def _status_changed(self) -> None:
        if self.acting_epoch is None:
            return
        self._status_doc = {
            "server": self.settings.name,
            "pid": os.getpid(),
            "epoch": self.acting_epoch,
            "since": self.acting_since,
            "children": self.manager.snapshot(),
            "last_error": self.desired_error,
            # when a reconnecting connector is a problem (zato cluster status): the hand-over's
            "handover_after": self.settings.lease.handover_after,
        }
        self.status_dirty.set()

    def _status_loop(self) -> None:
        while not self.stop_event.is_set():
            self.status_dirty.wait(STATUS_EVERY)
            self.status_dirty.clear()
            doc = self._status_doc
            if doc is None or self.stop_event.is_set():
                continue
            try:
                self.lease.write_status({**doc, "updated_at": time.time()}, STATUS_TTL)
            except CoordError as e:
                self.health.failed("status write", e)


ENTRY = Entry("zato-supervisor", "python -m zato.connector.supervisor SERVER_DIR", "supervisor")


def main(argv: list[str] | None = None, settings: ServerSettings | None = None) -> int:
    """`settings`: the arbiter's own, when it forked this process (zato.server.arbiter); the
    supervisor then never reads server.conf, so the whole server runs on one version of it."""

    def body(args: list[str], _flags: frozenset[str]) -> int:
        return supervise(ENTRY.settings(settings, load_server_settings, args[0]))

    return ENTRY.main(argv, 1, body)


def supervise(settings: ServerSettings) -> int:
    ENTRY.start(settings, title=f"zato-supervisor: {settings.name} (cluster {settings.cluster})")
    supervisor = Supervisor(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
