"""A server whose membership entry expired (supervisor paused past the ttl, cut off from Redis)
writes it again on its next heartbeat and puts its name back in the members index, where
readers (LB, connectors) list members from. Before, when that index write failed (one lost
connection), it was done again only on the heartbeat's periodic re-index, every 10th beat:
the server, heartbeating, was listed nowhere for up to ~9 s (drained by the LB, skipped by
the connectors). Now it is done again at the next beat. Here a proxy between the server and
Redis cuts the connection that carries the one index write after a rejoin."""

from __future__ import annotations

import socket
import threading

from tests.conn_support import TCPProxy
from tests.support import REDIS_URL, cluster_name, free_port, wait_for
from zato.config.settings import RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class IndexCut(TCPProxy):
    """Notes each heartbeat (SET of the member key) and index write (SADD to the index);
    once `armed`, cuts the connection carrying the next index write, not forwarded."""

    def __init__(self, port: int, target: tuple[str, int], cluster: str, name: str):
        super().__init__(port, target)
        keys = Keys(cluster)
        self.beat = b"SET\r\n" + _bulk(keys.member(name))
        self.index = b"SADD\r\n" + _bulk(keys.members)
        self.events: list[str] = []
        self.armed = False
        self.cut = threading.Event()

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if self.beat in data:
                    self.events.append("beat")
                if self.index in data:
                    if self.armed:
                        self.armed = False
                        self.events.append("cut")
                        self.cut.set()
                        client.close()
                        upstream.close()
                        return
                    self.events.append("index")
                upstream.sendall(data)
        except OSError:
            pass

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass

    def beats_after(self, event: str) -> int:
        """The heartbeats seen since the last `event`."""
        last = max(i for i, e in enumerate(self.events) if e == event)
        return self.events[last:].count("beat")


def test_a_failed_index_write_after_a_rejoin_is_done_again_at_the_next_beat(quickstart):
    cluster = cluster_name("ha2-reindex")
    target = connect(RedisSettings(url=REDIS_URL)).connection_pool.connection_kwargs
    proxy = IndexCut(free_port(), (target["host"], target["port"]), cluster, "server1")
    proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
    qs = quickstart(servers=1, lb=False, cluster=cluster, extra_conf={"kvdb": {"url": url}})
    client = connect(RedisSettings(url=REDIS_URL))
    keys = Keys(cluster)
    try:
        qs.start("server1")
        wait_for(lambda: client.sismember(keys.members, "server1"), 30, what="server1 in the index")
        # Right after a periodic re-index (every 10th beat), so none comes in the beats below.
        seen = len(proxy.events)
        wait_for(lambda: "index" in proxy.events[seen:], 30, what="a periodic re-index")
        wait_for(lambda: proxy.beats_after("index") >= 1, 10, what="the beat after it")
        proxy.armed = True
        # What a reader does on seeing the entry expired: the name goes off the index too.
        client.delete(keys.member("server1"))
        client.srem(keys.members, "server1")
        assert proxy.cut.wait(10), "the rejoin's index write was not seen"
        wait_for(
            lambda: proxy.beats_after("cut") >= 2, 10, what="two heartbeats after the failed index write"
        )
        assert client.exists(keys.member("server1"))  # heartbeating
        assert client.sismember(keys.members, "server1"), f"listed nowhere; the proxy saw {proxy.events[-6:]}"
    finally:
        client.close()
        qs.close()
        proxy.stop()
