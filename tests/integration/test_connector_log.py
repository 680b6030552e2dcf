"""What server.log says when the holder stops a connector because of an edit, as an operator
reads it. Before, a connector made inactive (`zato conn edit ... --active false`) was said to be
'removed, stopping it', as if it had been deleted."""

from __future__ import annotations

import os

from tests.support import free_port, wait_for, zato

MODULE = "from zato.service import Service\n\nclass Sink(Service):\n    name = 'clog.sink'\n"


def test_a_connector_made_inactive_is_not_said_to_be_removed(quickstart):
    qs = quickstart(servers=1, lb=False)
    qs.start()
    qs.deploy("clog", MODULE)
    address = f"@tcp://127.0.0.1:{free_port()}"
    zato("conn", "create", "zmq-channel", qs.path, "--name", "clog", "--address", address,
         "--service", "clog.sink")  # fmt: skip
    log = os.path.join(qs.server_dir("server1"), "logs", "server.log")

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
