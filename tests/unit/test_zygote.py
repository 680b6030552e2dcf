"""ZygoteOS decides what the zygote may fork; everything else goes to plain processes."""

from __future__ import annotations

import signal
import sys

from zato.config.settings import RedisSettings, ServerSettings
from zato.connector.zygote import ZygoteOS, run_args

RUN = (sys.executable, "-m", "zato.connector.run", "/srv/server1", "zmq-channel", "orders")


class FakeRealOS:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def spawn(self, argv, env, definition=None):  # noqa: ANN001, ANN201
        self.calls.append(("spawn", argv, env, definition))
        return "popen"

    def poll(self, handle):  # noqa: ANN001, ANN201
        self.calls.append(("poll", handle))
        return 3

    def signal(self, handle, sig):  # noqa: ANN001, ANN201
        self.calls.append(("signal", handle, sig))


def test_only_connector_runs_of_this_interpreter_are_forked() -> None:
    assert run_args(RUN) == ["/srv/server1", "zmq-channel", "orders"]
    assert run_args(("/usr/bin/python2", *RUN[1:])) is None  # another interpreter: exec it
    assert run_args((sys.executable, "-m", "some.other.module", "a", "b", "c")) is None
    assert run_args(("sleep", "60")) is None


def test_without_a_ready_zygote_children_are_plain_processes() -> None:
    real = FakeRealOS()
    settings = ServerSettings(
        "/srv/server1", "server1", "c1", "127.0.0.1", 17010, 1, "sqlite://", RedisSettings(), "admin", "", "s"
    )
    os_ = ZygoteOS(settings, fallback=real)  # not started: no zygote yet
    handle = os_.spawn(RUN, {"ZATO_EPOCH": "4"}, {"name": "orders"})
    assert handle == "popen"
    assert os_.poll(handle) == 3
    os_.signal(handle, signal.SIGTERM)
    assert real.calls == [
        ("spawn", RUN, {"ZATO_EPOCH": "4"}, {"name": "orders"}),
        ("poll", "popen"),
        ("signal", "popen", signal.SIGTERM),
    ]
