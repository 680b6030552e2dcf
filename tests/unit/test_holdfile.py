"""A connector asks Redis for the cluster's epoch only when its supervisor cannot vouch for it
(zato.connector.holdfile): files on disk, a fake monotonic clock, a client that counts reads."""

from __future__ import annotations

import os
import time

from zato.config.settings import LeaseSettings, RedisSettings, ServerSettings
from zato.connector import holdfile
from zato.connector.base import Context
from zato.coord.health import RedisHealth
from zato.coord.lease import LeaseKeeper


def test_a_record_vouches_for_its_epoch_until_the_renew_deadline(tmp_path) -> None:  # noqa: ANN001
    file = str(tmp_path / "lease-confirmed")
    assert not holdfile.vouches(file, 7, 100.0, 1.0)  # no supervisor wrote one
    holdfile.write(file, 7, 100.0)
    assert holdfile.vouches(file, 7, 100.9, 1.0)
    assert not holdfile.vouches(file, 7, 101.0, 1.0)  # stale: supervisor paused or cut off
    assert not holdfile.vouches(file, 8, 100.5, 1.0)  # another epoch's record
    assert not holdfile.vouches(file, 7, 99.0, 1.0)  # from the future (written before a reboot)


def test_a_garbled_or_torn_record_vouches_for_nothing(tmp_path) -> None:  # noqa: ANN001
    file = tmp_path / "lease-confirmed"
    for text in ("7 100.0", "7\n", "x 100.0\n", "7 abc\n", "7 100.0 1\n", "", "7 nan\n", "7 inf\n"):
        file.write_text(text)
        assert not holdfile.vouches(str(file), 7, 100.5, 1.0), text
        assert holdfile.read(str(file)) is None, text


class CountingClient:
    def __init__(self, epoch: int) -> None:
        self.epoch, self.reads = epoch, 0

    def get(self, key: str) -> str:
        self.reads += 1
        return str(self.epoch)


def connector(server_dir: str, client: CountingClient, lease: LeaseSettings = LeaseSettings()) -> Context:
    settings = ServerSettings(
        path=server_dir, name="s1", cluster="c", host="127.0.0.1", port=17010, workers=1,
        odb_url="sqlite://", redis=RedisSettings(), admin_username="admin", admin_password="x",
        cluster_secret="secret", lease=lease,
    )  # fmt: skip
    return Context(settings, "zmq-channel", "orders", 5, client)


def test_a_connector_skips_the_redis_read_while_its_supervisor_vouches(tmp_path) -> None:  # noqa: ANN001
    os.makedirs(tmp_path / "work")
    client = CountingClient(epoch=5)
    ctx = connector(str(tmp_path), client)
    holdfile.write(holdfile.path(str(tmp_path)), 5, time.monotonic())
    assert not ctx.should_stop() and client.reads == 0


def test_without_its_supervisor_vouching_a_connector_reads_the_epoch_and_stops_on_a_newer_one(
    tmp_path,
) -> None:  # noqa: ANN001, E501
    os.makedirs(tmp_path / "work")
    client = CountingClient(epoch=6)  # another server took the lease
    ctx = connector(str(tmp_path), client)
    holdfile.write(holdfile.path(str(tmp_path)), 5, time.monotonic() - 5.0)  # its supervisor hung
    assert ctx.should_stop() and client.reads == 1


def test_the_keeper_reports_every_confirmed_renewal() -> None:
    from tests.unit.test_lease_keeper import SETTINGS, Clock, FakeLease

    clock, seen = Clock(), []
    keeper = LeaseKeeper(FakeLease(clock), RedisHealth(), lambda: False, lambda s: None, clock=clock,
                         on_confirmed=lambda epoch, started: seen.append((epoch, started)))  # fmt: skip
    keeper._became_holder(4, started=0.0)
    clock.t = SETTINGS.renew_interval
    keeper._holder_step()
    assert seen == [(4, 0.0), (4, SETTINGS.renew_interval)]


def test_vouched_reads_the_record_once_and_holds_exactly_until_it_expires(tmp_path) -> None:  # noqa: ANN001
    """The AMQP outgoing connector asks this before it publishes a message it took earlier:
    it must not cost a file read per batch, and must end when the record does."""
    os.makedirs(tmp_path / "work")
    file = holdfile.path(str(tmp_path))
    lease = LeaseSettings(renew_interval=0.05, renew_deadline=0.3, ttl=1.0)
    ctx = connector(str(tmp_path), CountingClient(epoch=5), lease)
    assert not ctx.vouched()  # no supervisor wrote a record
    started = time.monotonic()
    holdfile.write(file, 6, started)
    assert not ctx.vouched()  # another epoch's record
    holdfile.write(file, 5, started)
    assert ctx.vouched()
    os.remove(file)
    assert ctx.vouched() == (time.monotonic() < started + 0.3)  # not read again before it expires
    time.sleep(max(0.0, started + 0.3 - time.monotonic()) + 0.01)
    assert not ctx.vouched()  # expired, and read again: there is none
    holdfile.write(file, 5, time.monotonic())  # the supervisor confirmed a renewal again
    assert ctx.vouched()
