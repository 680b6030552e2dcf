"""A lease holder whose connector zygote does not answer (SIGSTOPped: a stuck or starved fork
server), as real supervisor processes of a two-server cluster.

Before, the supervisor's main loop asked the zygote for a new connector and waited for its
answer (up to 2 s), so a holder whose lease renewals stopped meanwhile could not step down: its
connectors still ran when the other server had taken the lease and started them too. Now the
main loop asks without waiting (zato.connector.zygote.ZygoteOS), steps down on time, and kills
a zygote that does not answer, its connectors with it.

A zygote that does not answer cannot report its connectors' exits either: a connector killed
meanwhile was never started again. Now the supervisor pings a zygote that has said nothing for
a second, and one that does not answer the ping is lost too.

A zygote that hung before it said ready (here: in a test-only sitecustomize.py) was neither
pinged nor restarted: every connector started as a plain process for good. Now one that does
not say ready within READY_TIMEOUT of its start is lost too."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conn_support import HoldingProxy
from tests.ha.cluster_view import child_pids
from tests.integration import test_lease_supervisor as lease_tests
from tests.integration.test_zygote import connector, started_with_zygote, zmq_channel, zygote_of
from tests.support import REDIS_URL, free_port, wait_for
from zato.common.pidfile import pid_alive
from zato.connector.zygote import READY_TIMEOUT
from zato.coord.keys import Keys


class LeaseCut(HoldingProxy):
    """server1's way to Redis. Once armed, when Redis has handed server1 a config event of a
    connector, every command naming the lease (its renewals) and all after it on that connection wait
    until release: the holder's renewals hang from then on, everything else goes through."""

    def __init__(self, port: int, cluster: str):
        super().__init__(port, _redis_address())
        keys = Keys(cluster)
        self.lease_marker, self.events_marker = keys.lease.encode(), keys.events.encode()
        self.armed = threading.Event()
        self.cut = threading.Event()

    def holds(self, data: bytes) -> bool:
        return self.cut.is_set() and self.lease_marker in data

    def heard(self, data: bytes) -> None:
        if self.armed.is_set() and self.events_marker in data and b"connector" in data:
            self.cut.set()


def _redis_address() -> tuple[str, int]:
    url = urlsplit(REDIS_URL)
    return url.hostname or "127.0.0.1", url.port or 6379


def _through(port: int) -> str:
    url = urlsplit(REDIS_URL)
    netloc = url.netloc.rsplit("@", 1)[0] + "@" if "@" in url.netloc else ""
    return urlunsplit((url.scheme, f"{netloc}127.0.0.1:{port}", url.path, url.query, url.fragment))


one = lease_tests.one  # the fixture: one supervisor of its own cluster, with an ODB


@pytest.fixture
def two():
    yield from lease_tests.with_odb(2)


def test_a_holder_whose_zygote_does_not_answer_stops_its_connectors_before_the_lease_goes(two) -> None:
    c, port = two, free_port()
    conf = os.path.join(c.dirs["server1"], "config", "server.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace(f"url = {REDIS_URL}\n", f"url = {_through(port)}\n"))
    proxy = LeaseCut(port, c.cluster)
    proxy.start()
    zygote = 0
    try:
        zygote = started_with_zygote(c)
        assert c.wait_holder()["server"] == "server1"
        zmq_channel(c, "orders")
        first = wait_for(lambda: connector(c, "orders"), timeout=30, what="server1 running the connector")
        c.start("server2")
        wait_for(lambda: "joined cluster" in c.log("server2"), timeout=30, what="server2 a standby")
        os.kill(zygote, signal.SIGSTOP)  # it answers nothing from now on
        proxy.armed.set()
        zmq_channel(c, "more")  # server1 asks its zygote for a new connector
        wait_for(proxy.cut.is_set, timeout=30, what="server1 told of the new connector")
        # server1's renewals hang from here: its lease runs out and server2 takes it
        taken = c.wait_holder(exclude=("server1",), timeout=30)
        assert not pid_alive(first["pid"]), (
            f"server1's connector (pid {first['pid']}) still ran when server2 took the lease"
            f" (epoch {taken['epoch']})"
        )
        log = wait_for(lambda: (t := c.log("server1")) and f"(pid {zygote}) lost" in t and t, timeout=30,
                       what="server1 saying its zygote was lost")  # fmt: skip
        assert f"connector zygote (pid {zygote}) lost: " in log
    finally:
        if zygote:
            with contextlib.suppress(ProcessLookupError):
                os.kill(zygote, signal.SIGCONT)
        proxy.release.set()
        proxy.stop()


def test_a_connector_killed_while_its_zygote_does_not_answer_is_started_again(one) -> None:
    zygote = started_with_zygote(one)
    try:
        zmq_channel(one, "orders")
        first = wait_for(lambda: connector(one, "orders"), timeout=30, what="the connector running")["pid"]
        os.kill(zygote, signal.SIGSTOP)  # it answers nothing from now on, nor reaps
        os.kill(first, signal.SIGKILL)
        again = wait_for(
            lambda: (k := connector(one, "orders")) and k["pid"] != first and k,
            timeout=30,
            what="the killed connector running again",
        )
        assert pid_alive(again["pid"]) and not pid_alive(first)
        assert f"connector zygote (pid {zygote}) lost: it did not answer a ping within 2 s" in one.log(
            "server1"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(zygote, signal.SIGCONT)


HANG = os.path.join(os.path.dirname(__file__), "zygote_hang")  # its sitecustomize.py hangs a zygote


def test_a_zygote_that_never_says_ready_is_replaced(one, monkeypatch) -> None:  # noqa: ANN001
    marker = os.path.join(one.root, "hang-zygote")
    open(marker, "w").close()  # noqa: SIM115 - the first zygote to start removes it and hangs
    monkeypatch.setenv("ZATO_TEST_HANG_ZYGOTE", marker)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (HANG, os.environ.get("PYTHONPATH")) if p))
    zmq_channel(one, "early")
    one.start("server1")
    started = wait_for(
        lambda: re.search(r"connector zygote started \(pid (\d+)\)", one.log("server1")),
        timeout=30,
        what="the first zygote started",
    )
    hung = int(started.group(1))
    early = wait_for(lambda: connector(one, "early"), timeout=30, what="a connector running meanwhile")
    assert early["pid"] in child_pids(one.procs["server1"].pid)  # a plain process: no zygote is ready
    second = wait_for(lambda: zygote_of(one, exclude=hung), timeout=30, what="a new zygote ready")
    assert not os.path.exists(marker)  # the first one did hang
    log = one.log("server1")
    assert f"connector zygote (pid {hung}) lost: it did not say ready within {READY_TIMEOUT:g} s" in log
    assert f"connector zygote ready (pid {hung})" not in log
    assert f"connector zygote restarted (pid {second})" in log
    wait_for(lambda: not pid_alive(hung), timeout=10, what="the hung zygote gone")
    zmq_channel(one, "late")
    kid = wait_for(
        lambda: connector(one, "late"), timeout=30, what="a connector after the new zygote is ready"
    )
    assert kid["pid"] in child_pids(second)  # forked by the new zygote
