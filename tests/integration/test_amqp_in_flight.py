"""An AMQP channel with several slow invocations in flight at once, in a real two-server cluster:
the connector is stopped (SIGTERM), its holder stopped (`zato stop`, a standby takes over) or
its channel edited (admin API, CLI) while they run. Every message still reaches the service
in the end (at least once: lost must be 0). Duplicates are counted and printed; a SIGTERM or an
edit leaves none (the running invocations finish and are acked), a stopped holder may (its
connectors are killed within the lease's timing)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import redis
import requests

from tests.conn_support import Rabbit
from tests.support import REDIS_URL, wait_for, zato
from zato.coord.lease import read_supervisor_status

SLOW = 2.0  # seconds each invocation takes
MESSAGES = 8
PREFETCH = 8
IN_FLIGHT = 4

SERVICES = """
import json
import time

import redis

from zato.service import Service

_redis = {}


class Slow(Service):
    \"\"\"Records that it started and, SLOW seconds later, that it finished.\"\"\"
    name = "flight.slow"

    def handle(self):
        client = _redis.get("c") or _redis.setdefault("c", redis.Redis.from_url(REDIS_URL))
        key = f"zato:{self.server.cluster}:test:flight:"
        item = json.dumps(self.request.payload)
        client.rpush(key + "started", item)
        time.sleep(SLOW)
        client.rpush(key + "done", item)
"""


def _ids(cluster: str, what: str, run: str) -> list[str]:
    client = redis.Redis.from_url(REDIS_URL)
    items = (json.loads(x) for x in client.lrange(f"zato:{cluster}:test:flight:{what}", 0, -1))
    return [i["id"] for i in items if i["run"] == run]


def _children(cluster: str) -> dict[str, dict]:
    status = read_supervisor_status(redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster) or {}
    return {c["name"]: c for c in status.get("children", [])}


def _holder(cluster: str) -> str | None:
    status = read_supervisor_status(redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster) or {}
    return status.get("server")


def _running_pid(cluster: str, name: str, not_pid: int | None = None) -> int | None:
    child = _children(cluster).get(f"amqp-channel:{name}", {})
    pid = child.get("pid")
    if str(child.get("state")).lower() != "running" or pid in (None, not_pid):
        return None
    return pid


@pytest.fixture(scope="module")
def qs(module_quickstart, tmp_path_factory):
    qs = module_quickstart(servers=2, lb=False)
    qs.start()
    module = tmp_path_factory.mktemp("mod") / "flight_services.py"
    module.write_text(f"REDIS_URL = {REDIS_URL!r}\nSLOW = {SLOW!r}\n" + SERVICES)
    zato("deploy", qs.path, str(module))
    zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
    qs.rabbit = Rabbit()
    yield qs
    qs.rabbit.close()


@pytest.fixture
def channel(qs):
    """A fresh queue and a channel on it (prefetch 8, 4 in flight) whose connector runs."""
    name = f"fl-{uuid.uuid4().hex[:6]}"
    queue = qs.rabbit.queue(f"zt-fl-{uuid.uuid4().hex[:8]}")
    zato(
        "conn", "create", "amqp-channel", qs.path, "--name", name, "--def", "rabbit", "--queue", queue,
        "--service", "flight.slow", "--prefetch", str(PREFETCH), "--max-in-flight", str(IN_FLIGHT),
    )  # fmt: skip
    wait_for(lambda: _running_pid(qs.cluster, name), timeout=60, what=f"connector of channel {name}")
    yield name, queue
    zato("conn", "delete", "amqp-channel", qs.path, "--name", name, check=False)


def _while_in_flight(qs, channel, disturb: Callable[[], None]) -> int:  # noqa: ANN001
    """Publish MESSAGES, wait until IN_FLIGHT invocations run at once, disturb, then every
    message must finish at the service at least once. Returns how many ran twice."""
    name, queue = channel
    run = uuid.uuid4().hex[:8]
    pid = _running_pid(qs.cluster, name)
    sent = [f"m{i}" for i in range(MESSAGES)]
    for mid in sent:
        qs.rabbit.publish(queue, json.dumps({"run": run, "id": mid}))

    def in_flight() -> int:
        return len(_ids(qs.cluster, "started", run)) - len(_ids(qs.cluster, "done", run))

    wait_for(lambda: in_flight() >= IN_FLIGHT, timeout=60, what=f"{IN_FLIGHT} invocations in flight")
    disturb()
    wait_for(lambda: _running_pid(qs.cluster, name, not_pid=pid), timeout=60, what="the connector restarted")
    with contextlib.suppress(AssertionError):  # a timeout is reported below as messages lost
        wait_for(lambda: set(_ids(qs.cluster, "done", run)) >= set(sent), timeout=90)
    done = Counter(_ids(qs.cluster, "done", run))
    lost = [m for m in sent if m not in done]
    duplicates = sum(done.values()) - len(done)
    print(f"{MESSAGES} messages, {IN_FLIGHT} in flight: lost {len(lost)}, duplicates {duplicates}")
    assert lost == []
    wait_for(lambda: qs.rabbit.count(queue) == 0, timeout=30, what="queue empty")
    return duplicates


def test_sigterm_of_the_connector_with_invocations_in_flight_loses_nothing(qs, channel):
    def sigterm() -> None:
        os.kill(_running_pid(qs.cluster, channel[0]), signal.SIGTERM)

    assert _while_in_flight(qs, channel, sigterm) == 0  # the running ones finished and were acked


def test_editing_the_channel_through_the_admin_api_with_invocations_in_flight_loses_nothing(qs, channel):
    def edit() -> None:
        r = requests.patch(
            qs.server_url(qs.server_names[0]) + f"/zato/admin/conn/amqp-channel/{channel[0]}",
            json={"max_in_flight": IN_FLIGHT + 1},
            auth=qs.admin_auth,
            timeout=10,
        )
        assert r.status_code == 200, r.text

    # the old connector finishes what it runs (the supervisor waits for its drain): nothing twice
    assert _while_in_flight(qs, channel, edit) == 0


def test_editing_the_channel_with_the_cli_with_invocations_in_flight_loses_nothing(qs, channel):
    def edit() -> None:
        zato("conn", "edit", "amqp-channel", qs.path, "--name", channel[0], "--prefetch", str(PREFETCH + 1))

    assert _while_in_flight(qs, channel, edit) == 0


def test_zato_stop_of_the_holder_with_invocations_in_flight_loses_nothing(qs, channel):
    holder = _holder(qs.cluster)
    assert holder in qs.server_names

    def stop_holder() -> None:
        zato("stop", qs.server_dir(holder), timeout=60)

    try:
        _while_in_flight(qs, channel, stop_holder)
        assert _holder(qs.cluster) not in (holder, None)  # the standby took over
    finally:
        qs.start(holder)
