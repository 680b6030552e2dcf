"""A new holder records its takeover in Redis (zato.coord.takeovers) right after it acquired
the lease. Before, it did so on the lease keeper's thread, between the acquisition and the first
renewal, on the supervisor's general connection (neither hedged nor cut short as the renewals
are): one slow answer there (a lost packet on a slow link costs a TCP retransmission, the reason
renewals are hedged) made the new holder miss its first renew deadline and step down before it
had renewed once; another takeover followed, lost the same way while the record stayed slow,
and the cluster's connectors stopped and started with each. Here one server's way to Redis
answers the takeover record 1.2 s late, every other command at once."""

from __future__ import annotations

import os
import socket
import time

from tests.conn_support import TCPProxy
from tests.support import REDIS_URL, cluster_name, free_port, wait_for
from zato.config.settings import RedisSettings
from zato.connector import holdfile
from zato.coord import takeovers
from zato.coord.client import connect

LATE = 1.2  # seconds: more than [lease] renew_deadline (1 s), less than the socket timeout (5 s)


class LateRecord(TCPProxy):
    """To Redis: each chunk that records a takeover is sent LATE seconds after it came."""

    def __init__(self, port: int, target: tuple[str, int], marker: bytes):
        super().__init__(port, target)
        self.marker = marker

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        import threading

        threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if self.marker in data:
                    time.sleep(LATE)
                upstream.sendall(data)
        except OSError:
            pass


def _log(qs, name: str) -> str:  # noqa: ANN001 - a Quickstart
    with open(os.path.join(qs.server_dir(name), "logs", "server.log"), errors="replace") as f:
        return f.read()


def test_a_slow_takeover_record_does_not_cost_the_new_holder_its_lease(quickstart):
    cluster = cluster_name("reviewha-record")
    target = connect(RedisSettings(url=REDIS_URL)).connection_pool.connection_kwargs
    proxy = LateRecord(
        free_port(), (target["host"], target["port"]), f"zato:{cluster}:lease:takeovers".encode()
    )
    proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
    qs = quickstart(
        servers=1, lb=False, cluster=cluster, extra_conf={"kvdb": {"url": url, "socket_timeout": 5}}
    )
    client = connect(RedisSettings(url=REDIS_URL))
    try:
        qs.start("server1")
        hold = holdfile.path(qs.server_dir("server1"))
        wait_for(lambda: takeovers.count(client, cluster) >= 1, 30, what="the first takeover recorded")
        first = wait_for(lambda: holdfile.read(hold), 30, what="the first confirmation")
        stepped = "no renewal of lease epoch 1 confirmed"

        def renewed_or_stepped_down() -> bool:
            now = holdfile.read(hold)
            return bool(now and now[0] == 1 and now[1] > first[1]) or stepped in _log(qs, "server1")

        wait_for(renewed_or_stepped_down, 30, what="a renewal of epoch 1, or a step-down")
        assert stepped not in _log(qs, "server1")
        assert takeovers.count(client, cluster) == 1
    finally:
        client.close()
        qs.close()
        proxy.stop()


def test_takeovers_that_land_out_of_order_are_listed_by_epoch():
    """A holder's record slowed on its way lands after the next holder's: the list the dashboard
    shows (newest first) is by epoch, not by the order the records landed."""
    import redis

    cluster = cluster_name("takeover-order")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for epoch, holder in ((1, "server1"), (3, "server2"), (2, "server1"), (4, "server2")):
            takeovers.record(client, cluster, holder, epoch, time.time(), 0.5 if epoch > 1 else None)
        assert [(t["epoch"], t["holder"]) for t in takeovers.recent(client, cluster)] == [
            (4, "server2"),
            (3, "server2"),
            (2, "server1"),
            (1, "server1"),
        ]
        assert takeovers.count(client, cluster) == 4
    finally:
        client.delete(*client.keys(f"zato:{cluster}:*"))
        client.close()
