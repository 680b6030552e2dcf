"""`zato cluster forget DIR SERVER` and the dashboard's Forget when the connection to Redis breaks
between the server's ODB row going and its operator drain hold going (a forwarder of the test's
own in front of Redis cuts the command that takes the hold off, tests/lost_reply_proxy.py):
the error says the row is gone and the hold may stay, and the same command, run again once
Redis answers, takes the hold off. Before: the error said only 'removing the server's drain
hold: ConnectionError', and running it again said 'no server named ...', so the hold stayed
for good and a server made again under that name was kept drained by the load balancer."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from tests.conn_support import SECRET, make_server_dir
from tests.lost_reply_proxy import LostReplyProxy
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port
from zato.common.errors import ZatoError
from zato.config.settings import RedisSettings
from zato.coord import membership
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.odb import api as odb_api
from zato.odb.engine import ODB

SAID = (
    "server gone1 is off the cluster's list in the ODB, but an operator's drain hold on its name may"
    " stay in Redis (a server of that name would be kept drained): run it again once Redis answers"
)


@pytest.mark.parametrize("via", ["cli", "dashboard"])
def test_a_forget_cut_from_redis_after_the_odb_says_so_and_running_it_again_takes_the_hold_off(tmp_path, via):
    cluster = cluster_name("connwin-fg")
    port = free_port()
    server_dir = make_server_dir(str(tmp_path), cluster, redis_url=f"redis://127.0.0.1:{port}/0")
    odb = ODB(f"sqlite:///{tmp_path / 'odb.sqlite'}")
    odb_api.ensure_cluster(odb, cluster)
    odb_api.add_server(odb, cluster, "gone1", "127.0.0.1", free_port())
    up = connect(RedisSettings(url=REDIS_URL))
    membership.set_operator_drain(up, cluster, "gone1", True)  # the operator drained it before
    held = Keys(cluster).operator_drained
    proxy = LostReplyProxy(port, held.encode(), deliver=False, away=True)
    via_proxy = connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))

    def forget() -> tuple[int, str]:
        if via == "cli":
            argv = [sys.executable, "-m", "zato", "cluster", "forget", server_dir, "gone1"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            return proc.returncode, proc.stdout + proc.stderr
        from zato.dashboard import actions

        settings = types.SimpleNamespace(cluster=cluster, cluster_secret=SECRET)
        try:
            return 0, actions.forget_server(settings, odb, via_proxy, "gone1")
        except ZatoError as e:
            return 1, str(e)

    try:
        proxy.start()
        code, said = forget()
        assert proxy.cut.is_set(), f"the forwarder cut nothing: {code} {said}"
        assert code == 1 and said.rstrip().endswith(SAID), said
        assert [s.name for s in odb_api.list_servers(odb, cluster)] == []
        assert up.sismember(held, "gone1")  # the hold stayed
        proxy.start()  # Redis answers again
        code, said = forget()
        assert code == 0 and f"server gone1 forgotten: no longer listed in cluster {cluster}" in said, said
        assert not up.sismember(held, "gone1")
        code, said = forget()  # nothing left of it
        assert code == 1 and "no server named 'gone1'" in said, said
    finally:
        proxy.stop()
        via_proxy.close()
        up.close()
        odb.dispose()
        cleanup_redis(cluster)
