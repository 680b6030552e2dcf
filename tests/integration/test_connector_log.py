"""What server.log says when the holder stops a connector because of an edit, as an operator
reads it. Before, a connector made inactive (`zato conn edit ... --active false`) was said to be
'removed, stopping it', as if it had been deleted."""

from __future__ import annotations

import os
import signal

from tests.support import free_port, wait_for, zato

MODULE = "from zato.service import Service\n\nclass Sink(Service):\n    name = 'clog.sink'\n"


def zmq_channel_on_one_server(quickstart, name: str):  # noqa: ANN001, ANN201 - the fixture, a Quickstart
    """A started one-server quickstart with a ZeroMQ channel NAME: (it, the path of its server.log)."""
    qs = quickstart(servers=1, lb=False)
    qs.start()
    qs.deploy("clog", MODULE)
    address = f"@tcp://127.0.0.1:{free_port()}"
    zato("conn", "create", "zmq-channel", qs.path, "--name", name, "--address", address,
         "--service", "clog.sink")  # fmt: skip
    return qs, os.path.join(qs.server_dir("server1"), "logs", "server.log")


def test_a_connector_made_inactive_is_not_said_to_be_removed(quickstart):
    qs, log = zmq_channel_on_one_server(quickstart, "clog")

    def text() -> str:
        with open(log, errors="replace") as f:
            return f.read()

    wait_for(lambda: "child zmq-channel:clog STARTING->RUNNING" in text(), 60, what="the channel running")
    zato("conn", "edit", "zmq-channel", qs.path, "--name", "clog", "--active", "false")
    wait_for(lambda: "child zmq-channel:clog RUNNING->STOPPING" in text(), 30, what="the channel stopping")
    why = [line for line in text().splitlines() if "child zmq-channel:clog:" in line]
    assert len(why) == 1 and why[0].endswith(
        "child zmq-channel:clog: no longer active (deleted or made inactive), stopping it"
    ), why


def test_a_connector_that_dies_unasked_is_a_warning_in_server_log(quickstart):
    """A connector process killed (OOM killer, a crash): the supervisor starts it again and says
    so. Before, that line was an INFO like every other transition, so an alert on WARNING and
    above (a log shipper's usual rule) never saw a connector die."""
    _, log = zmq_channel_on_one_server(quickstart, "cdie")

    def lines(part: str) -> list[str]:
        with open(log, errors="replace") as f:
            return [line for line in f if part in line]

    running = "child zmq-channel:cdie STARTING->RUNNING pid"
    started = wait_for(lambda: lines(running), 60, what="the channel running")
    os.kill(int(started[0].rsplit("pid", 1)[1]), signal.SIGKILL)
    # RUNNING->EXITED, or RUNNING->BACKOFF when it had run for less than the policy's stable_after
    wait_for(lambda: lines("killed by SIGKILL"), 30, what="the exit said")
    died = lines("killed by SIGKILL")
    assert len(died) == 1 and "child zmq-channel:cdie RUNNING->" in died[0], died
    assert " WARNING " in died[0], died  # before: INFO
    wait_for(lambda: len(lines(running)) == 2, 60, what="started again")
    assert all(" INFO " in line for line in lines(running))
