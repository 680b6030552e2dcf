"""A renamed outgoing AMQP connection whose old name's messages are moved while Redis hangs on
that move, in a real one-server cluster against the real RabbitMQ.

Before, the move ran in the supervisor's main loop right before the new name's connector
started: with Redis not answering it, the main loop sat in it for [kvdb] socket_timeout, and
did nothing else meanwhile: no connector that died was started again, and a holder cut from
Redis could not step down before its lease expired. Now the renames thread moves them
(zato.connector.supervisor, _renames_loop) and the main loop goes on."""

from __future__ import annotations

import os
import signal
import uuid

from tests.conn_support import HoldingProxy, Rabbit, running_pids
from tests.support import free_port, wait_for, zato
from zato.coord.keys import Keys


class HangingProxy(HoldingProxy):
    """A TCP forwarder to Redis that never forwards a command whose bytes hold every one of
    `markers` (nor anything after it on that connection) until release: Redis hangs for that
    call alone, every other one is answered."""

    def __init__(self, port: int, markers: list[bytes]):
        super().__init__(port, ("127.0.0.1", 6379))
        self.markers = markers

    def holds(self, data: bytes) -> bool:
        return all(m in data for m in self.markers)


def _running_pid(cluster: str, name: str) -> int | None:
    return running_pids(cluster).get(name)


def test_a_connector_that_dies_is_started_again_while_redis_hangs_on_a_renames_move(quickstart):
    port = free_port()
    # each Redis call may wait this long: the held move, in the main loop, held it that long
    kvdb = {"url": f"redis://127.0.0.1:{port}/0", "socket_timeout": "120"}
    qs = quickstart(servers=1, lb=False, extra_conf={"kvdb": kvdb})
    keys = Keys(qs.cluster)  # only the move of out0's lists to out1 names both of these
    proxy = HangingProxy(
        port, [keys.out_processing("amqp", "out0").encode(), keys.out_queue("amqp", "out1").encode()]
    )
    proxy.start()
    rabbit = Rabbit()
    try:
        qs.start()
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        queue = rabbit.queue(f"zt-rhang-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out0", "--def", "rabbit",
             "--routing-key", queue)  # fmt: skip
        zato("conn", "create", "zmq-channel", qs.path, "--name", "zc", "--address",
             f"tcp://127.0.0.1:{free_port()}", "--service", "zato.ping")  # fmt: skip
        wait_for(lambda: _running_pid(qs.cluster, "amqp-outgoing:out0"), 60, what="out0 running")
        zc = wait_for(lambda: _running_pid(qs.cluster, "zmq-channel:zc"), 60, what="zc running")
        zato("conn", "edit", "amqp-outgoing", qs.path, "--name", "out0", "--new-name", "out1")
        wait_for(proxy.hung.is_set, 60, what="the move of out0's messages to out1 sent (and held)")
        os.kill(zc, signal.SIGKILL)
        again = wait_for(
            lambda: (pid := _running_pid(qs.cluster, "zmq-channel:zc")) not in (None, zc) and pid,
            30,
            what="zc started again by the supervisor while Redis hangs on the move",
        )
        assert proxy.hung.is_set() and not proxy.release.is_set()  # it was started during the hang
        assert again != zc
    finally:
        proxy.release.set()
        proxy.stop()
        rabbit.close()
        qs.close()
