"""What server.log says of a takeover of the connector-server lease, as an operator reads it
after the fact. Before, every acquisition was 'acquired lease epoch N', whatever had happened:
the first holder, a holder killed (the lease expired), or one stopped gracefully (it released
it), and the seconds the cluster went without a holder were in Redis's takeover log only."""

from __future__ import annotations

import logging
import os
import re
import signal

from tests.support import REDIS_URL, cleanup_redis, cluster_name, wait_for, zato
from zato.config.settings import LeaseSettings, RedisSettings
from zato.coord.client import connect
from zato.coord.health import RedisHealth
from zato.coord.keys import Keys
from zato.coord.lease import Lease, LeaseKeeper, read_holder


def _log(qs, name: str) -> str:  # noqa: ANN001 - a Quickstart
    with open(os.path.join(qs.server_dir(name), "logs", "server.log"), errors="replace") as f:
        return f.read()


def _acquired(qs, name: str, epoch: int) -> str:  # noqa: ANN001
    found = re.search(rf"acquired lease epoch {epoch}: (.*)", _log(qs, name))
    return found[1] if found else ""


def test_each_takeover_says_why_the_lease_was_free_and_for_how_long(quickstart):
    qs = quickstart(servers=2, lb=False)
    qs.start()
    client = connect(RedisSettings(url=REDIS_URL))
    try:
        first = wait_for(lambda: (h := read_holder(client, qs.cluster)) and h.server, 30, what="a holder")
        other = "server2" if first == "server1" else "server1"
        said = wait_for(lambda: _acquired(qs, first, 1), 30, what="the first takeover's line")  # after Redis
        assert said == "nobody held it when this server looked"

        # the other server stands by (subscribed once it saw the lease held, or lost it to the
        # first): before, at load, it could make its first check after the kill and the expiry,
        # and said 'nobody held it'
        channel = Keys(qs.cluster).lease_channel
        wait_for(lambda: client.pubsub_numsub(channel)[0][1] >= 1, 30, what=f"{other} standing by")
        os.killpg(qs.pid(first), signal.SIGKILL)  # the whole server at once: nothing is released
        wait_for(lambda: _acquired(qs, other, 2), 30, what="the other server's takeover")
        said = _acquired(qs, other, 2)
        assert said.startswith("its holder stopped renewing it (killed, paused, or cut off from Redis)")
        assert re.search(r", \d+\.\d\d s without a holder since the last renewal seen$", said), said

        # "joined cluster" is said only when its old entry has expired: a quick restart finds it
        started = _log(qs, first).count(f"supervisor of server {first} (cluster")
        listening = client.pubsub_numsub(channel)[0][1]  # the holder's own subscription, if it kept one
        qs.start(first)
        back = lambda: _log(qs, first).count(f"supervisor of server {first} (cluster") > started  # noqa: E731
        wait_for(back, 30, what=f"{first} back")
        wait_for(
            lambda: client.pubsub_numsub(channel)[0][1] > listening,
            30,
            what=f"{first} listening as a standby",
        )
        zato("stop", qs.server_dir(other))  # graceful: the lease is released at once
        wait_for(lambda: _acquired(qs, first, 3), 30, what="the takeover after the release")
        released = r"its holder released it \(a graceful stop or a hand-over\), \d+\.\d\d s without a holder"
        assert re.fullmatch(released, _acquired(qs, first, 3)), _acquired(qs, first, 3)
    finally:
        client.close()


def test_a_release_that_comes_as_the_standby_stops_waiting_is_logged_as_a_release(caplog):
    """The standby's wait on the lease channel ends (its look at the lease is due) just before
    the holder releases it: it hears the release at its next look, and its takeover says so.
    Before: 'its holder stopped renewing it (...) and it expired', after a hand-over, on the lab."""
    cluster = cluster_name("leaselog")
    clients = [connect(RedisSettings(url=REDIS_URL)) for _ in range(2)]
    try:
        holder = Lease(clients[0], cluster, "server1", LeaseSettings())
        assert holder.try_acquire().acquired
        standby = Lease(clients[1], cluster, "server2", LeaseSettings())
        keeper = LeaseKeeper(standby, RedisHealth(), lambda: False, lambda s: None)
        keeper._sleep_standby = lambda until: keeper._subscribe()  # noqa: SLF001 - its wait ended at once
        with caplog.at_level(logging.INFO, logger="zato.lease"):
            keeper._standby_step()  # noqa: SLF001 - the lease is held: it waits on the channel
            pubsub = keeper._pubsub  # noqa: SLF001
            channel = Keys(cluster).lease_channel
            wait_for(lambda: clients[0].pubsub_numsub(channel)[0][1] >= 1, 10, what="the standby subscribed")
            pubsub.get_message(timeout=1)  # the subscription's confirmation (not a message it reads)
            assert holder.release()  # as that wait ends
            wait_for(lambda: pubsub.connection.can_read(timeout=0.1), 10, what="the release on the channel")
            keeper._standby_step()  # noqa: SLF001 - its next look
        said = re.search(r"acquired lease epoch (\d+): (.*)", caplog.text)
        assert said and keeper.valid_epoch() == int(said[1]), caplog.text
        released = r"its holder released it \(a graceful stop or a hand-over\), \d+\.\d\d s without a holder"
        assert re.fullmatch(released, said[2]), said[2]
    finally:
        keeper._close_pubsub()  # noqa: SLF001
        cleanup_redis(cluster)
        for client in clients:
            client.close()
