"""The holder's view of its own lease, on a fake monotonic clock (no Redis)."""

from __future__ import annotations

import redis

from zato.common.errors import CoordError, LeaseLost
from zato.config.settings import LeaseSettings
from zato.coord.health import RedisHealth
from zato.coord.keys import Keys
from zato.coord.lease import LeaseKeeper

SETTINGS = LeaseSettings(ttl=1.5, renew_interval=0.3, renew_deadline=1.0, retry_interval=1.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeLease:
    def __init__(self, clock: Clock) -> None:
        self.settings = SETTINGS
        self.clock = clock
        self.renew_takes = 0.0
        self.renew_error: Exception | None = None
        self.renewals = 0
        self.forgotten = False

    def renew(self) -> None:
        self.clock.t += self.renew_takes
        if self.renew_error:
            raise self.renew_error
        self.renewals += 1

    def forget(self) -> None:
        self.forgotten = True


def keeper_holding(epoch: int = 4) -> tuple[LeaseKeeper, FakeLease, Clock]:
    clock = Clock()
    lease = FakeLease(clock)
    keeper = LeaseKeeper(lease, RedisHealth(), lambda: False, lambda s: None, clock=clock)
    keeper._became_holder(epoch, started=0.0)
    return keeper, lease, clock


def test_the_hold_is_valid_only_until_the_renew_deadline() -> None:
    keeper, _, clock = keeper_holding()
    clock.t = 0.99
    assert keeper.valid_epoch() == 4
    clock.t = 1.0
    assert keeper.valid_epoch() is None


def test_the_deadline_counts_from_the_start_of_the_last_confirmed_renewal() -> None:
    keeper, lease, clock = keeper_holding()
    clock.t = 0.3
    lease.renew_takes = 0.6  # a slow answer does not buy extra time
    keeper._holder_step()
    assert lease.renewals == 1
    clock.t = 1.29
    assert keeper.valid_epoch() == 4
    clock.t = 1.3
    assert keeper.valid_epoch() is None


def test_redis_errors_keep_the_hold_until_the_deadline_then_it_steps_down(caplog) -> None:  # noqa: ANN001
    keeper, lease, clock = keeper_holding()
    lease.renew_error = CoordError("renewing the lease: ConnectionError: refused")
    clock.t = 0.5
    keeper._holder_step()
    assert keeper.valid_epoch() == 4
    assert "Redis unreachable (lease renewal)" in caplog.text
    clock.t = 1.0
    keeper._holder_step()
    assert keeper.valid_epoch() is None and lease.forgotten
    assert "no renewal of lease epoch 4 confirmed within 1.00s: stepping down" in caplog.text


def test_a_lost_lease_is_dropped_at_once(caplog) -> None:  # noqa: ANN001
    keeper, lease, clock = keeper_holding()
    lease.renew_error = LeaseLost("lease epoch 4 is no longer ours")
    clock.t = 0.3
    keeper._holder_step()
    assert keeper.valid_epoch() is None
    assert "lost lease: lease epoch 4 is no longer ours" in caplog.text


def test_a_paused_holder_does_not_resume_its_hold_even_if_the_key_survived() -> None:
    keeper, lease, clock = keeper_holding()
    clock.t = 1.2  # paused past the deadline but not past the TTL
    keeper._holder_step()
    assert keeper.valid_epoch() is None
    assert lease.renewals == 0 and lease.forgotten


class StandbyLease(FakeLease):
    """A lease another server holds until `free_at`, then free for us (epoch 9)."""

    def __init__(self, clock: Clock, free_at: float) -> None:
        super().__init__(clock)
        self.free_at = free_at
        self.highest_epoch = 0

    def remaining_ms(self, with_epoch: bool = True) -> int:
        left = self.free_at - self.clock.t
        return int(left * 1000) if left > 0 else -2

    def try_acquire(self):  # noqa: ANN201
        from zato.coord.lease import Attempt

        return Attempt(True, 9, 1500)


def test_a_takeover_reports_the_time_since_the_last_holder_renewal_it_saw() -> None:
    clock = Clock()
    lease = StandbyLease(clock, free_at=1.2)  # the holder's last renewal was at 1.2 - ttl = -0.3
    seen: list = []
    keeper = LeaseKeeper(
        lease,
        RedisHealth(),
        lambda: False,
        lambda s: None,
        clock=clock,
        on_acquired=lambda epoch, took: seen.append((epoch, took)),
    )
    keeper._sleep_standby = lambda until: None  # no pub/sub here
    keeper._standby_step()  # sees the lease held, expiring at 1.2
    clock.t = 1.25
    keeper._standby_step()  # expired: acquires
    assert keeper.valid_epoch() == 9
    assert seen == [(9, 1.25 - (1.2 - SETTINGS.ttl))]


def test_the_first_holder_reports_no_duration() -> None:
    clock = Clock()
    seen: list = []
    keeper = LeaseKeeper(
        StandbyLease(clock, free_at=0.0),
        RedisHealth(),
        lambda: False,
        lambda s: None,
        clock=clock,
        on_acquired=lambda epoch, took: seen.append((epoch, took)),
    )
    keeper._standby_step()
    assert seen == [(9, None)]


class FailingPubSub:
    """The lease release channel, failing the way redis-py does."""

    def __init__(self, error: Exception) -> None:
        self.error, self.closed = error, False

    def subscribe(self, channel: str) -> None:
        pass

    def get_message(self, ignore_subscribe_messages: bool = True, timeout: float = 0.0) -> dict | None:
        raise self.error

    def close(self) -> None:
        self.closed = True


class ChannelClient:
    def __init__(self, error: Exception) -> None:
        self.channel = FailingPubSub(error)

    def pubsub(self, ignore_subscribe_messages: bool = True) -> FailingPubSub:
        return self.channel


class ChannelLease(StandbyLease):
    """A lease held elsewhere for 10 s, whose release channel fails with `error`."""

    def __init__(self, clock: Clock, error: Exception) -> None:
        super().__init__(clock, free_at=10.0)
        self.client = ChannelClient(error)
        self.keys = Keys("lease-channel-unit")


def standby_on_a_failing_channel(error: Exception) -> tuple[LeaseKeeper, FailingPubSub, RedisHealth, list]:
    lease = ChannelLease(Clock(), error)
    health, waits = RedisHealth(), []
    keeper = LeaseKeeper(lease, health, lambda: False, waits.append, clock=lease.clock)
    return keeper, lease.client.channel, health, waits


def test_an_error_redis_answers_on_the_release_channel_is_a_refusal_not_an_outage(caplog) -> None:  # noqa: ANN001
    keeper, channel, health, waits = standby_on_a_failing_channel(
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    )
    keeper._standby_step()  # the lease is held: waits on the release channel, which fails
    refused = "Redis refused lease release channel: waiting on the lease release channel: ResponseError"
    assert refused in caplog.text
    assert "Redis unreachable" not in caplog.text and health.down_since is None
    assert channel.closed and keeper._pubsub is None
    assert waits == [SETTINGS.retry_interval]  # the rest of the wait, without the channel


def test_a_lost_connection_on_the_release_channel_is_an_outage(caplog) -> None:  # noqa: ANN001
    lost = redis.ConnectionError("Connection reset by peer")
    keeper, channel, health, waits = standby_on_a_failing_channel(lost)
    keeper._standby_step()
    assert "Redis unreachable (lease release channel): waiting on the lease release channel" in caplog.text
    assert health.down_since is not None and channel.closed and waits == [SETTINGS.retry_interval]


def test_draining_releases_closes_a_failing_channel_quietly(caplog) -> None:  # noqa: ANN001
    refused = redis.ResponseError("NOPERM this user has no permissions")
    keeper, channel, _, _ = standby_on_a_failing_channel(refused)
    keeper._pubsub = channel
    keeper._drain_releases()
    assert channel.closed and keeper._pubsub is None and not caplog.text


class SlowFloor:
    """The ODB's epoch floor, counting how often its first-use check runs."""

    def __init__(self, value: int, error: CoordError | None = None) -> None:
        self.value, self.error, self.checks = value, error, 0

    def available(self) -> bool:
        self.checks += 1
        if self.error is not None:
            raise self.error
        return True

    def read(self) -> int:
        return self.value


def test_a_standby_prepares_the_epoch_floor_before_it_competes() -> None:
    from zato.coord.lease import Lease

    floor = SlowFloor(41)
    lease = Lease(redis.Redis(port=1), "c", "s1", SETTINGS, floor=floor)
    lease.prepare()  # what a takeover would otherwise do while the cluster has no holder
    assert floor.checks == 1 and lease.highest_epoch == 41  # the next epoch goes above the floor


def test_an_odb_that_fails_ahead_of_an_acquisition_is_left_for_the_acquisition() -> None:
    from zato.coord.lease import Lease

    floor = SlowFloor(41, error=CoordError("reading the epoch floor from the ODB: locked"))
    lease = Lease(redis.Redis(port=1), "c", "s1", SETTINGS, floor=floor)
    lease.prepare()  # no exception: the supervisor's lease thread goes on to compete
    assert floor.checks == 1 and lease.highest_epoch == 0


def test_the_renew_deadline_at_moves_with_each_confirmed_renewal_and_stays_after_a_step_down() -> None:
    """What the supervisor times its step-down from (zato.connector.stepdown)."""
    keeper, lease, clock = keeper_holding()
    assert keeper.renew_deadline_at() == 1.0
    clock.t = 0.3
    lease.renew_takes = 0.2
    keeper._holder_step()
    assert keeper.renew_deadline_at() == 1.3  # from the start of the renewal, not its answer
    lease.renew_error = CoordError("renewing the lease: TimeoutError")
    clock.t = 1.3
    keeper._holder_step()  # steps down: the deadline it stepped down at is still the one said
    assert keeper.valid_epoch() is None and keeper.renew_deadline_at() == 1.3
