"""What server.log says of a takeover of the connector-server lease, as an operator reads it
after the fact. Before, every acquisition was 'acquired lease epoch N', whatever had happened:
the first holder, a holder killed (the lease expired), or one stopped gracefully (it released
it), and the seconds the cluster went without a holder were in Redis's takeover log only."""

from __future__ import annotations

import os
import re
import signal

from tests.support import REDIS_URL, wait_for, zato
from zato.config.settings import RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.lease import read_holder


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

        os.killpg(qs.pid(first), signal.SIGKILL)  # the whole server at once: nothing is released
        wait_for(lambda: _acquired(qs, other, 2), 30, what="the other server's takeover")
        said = _acquired(qs, other, 2)
        assert said.startswith("its holder stopped renewing it (killed, paused, or cut off from Redis)")
        assert re.search(r", \d+\.\d\d s without a holder since the last renewal seen$", said), said

        # "joined cluster" is said only when its old entry has expired: a quick restart finds it
        started = _log(qs, first).count(f"supervisor of server {first} (cluster")
        qs.start(first)
        back = lambda: _log(qs, first).count(f"supervisor of server {first} (cluster") > started  # noqa: E731
        wait_for(back, 30, what=f"{first} back")
        channel = Keys(qs.cluster).lease_channel
        wait_for(lambda: client.pubsub_numsub(channel)[0][1] >= 1, 30, what=f"{first} listening as a standby")
        zato("stop", qs.server_dir(other))  # graceful: the lease is released at once
        wait_for(lambda: _acquired(qs, first, 3), 30, what="the takeover after the release")
        released = r"its holder released it \(a graceful stop or a hand-over\), \d+\.\d\d s without a holder"
        assert re.fullmatch(released, _acquired(qs, first, 3)), _acquired(qs, first, 3)
    finally:
        client.close()
