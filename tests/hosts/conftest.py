"""One lab (tests/hosts/lab.py) for the tests in tests/hosts: building it costs ~30 s on
2 cores, so the tests share it; each test heals the faults it made. If the kernel refuses
network namespaces the tests fail with one line saying so (they are never skipped)."""

from __future__ import annotations

import uuid

import pytest

from tests.hosts.checkers import AmqpPublisher, delete_queues
from tests.hosts.lab import Lab, wait_all_up
from tests.hosts.net import LabError
from zato.connector.amqp_channel import parking_queue


@pytest.fixture(scope="package")  # torn down after tests/hosts, not at the end of the run
def lab():
    made = Lab()
    try:
        made.create()
    except LabError as e:
        pytest.fail(f"multi-host lab unavailable: {e}", pytrace=False)
    try:
        made.start()
        made.deploy()
        made.cli("conn create amqp-def", "--name", "rabbit", "--host", made.broker_ip, "--heartbeat", "2")
        wait_all_up(made)
        yield made
    finally:
        left = made.close()
        # Every lab process is gone now, so nothing can declare a test's queue again: delete
        # what is left. One that exists was declared by a connector after its channel was
        # deleted (a new holder once started its connectors from definitions read before it was
        # cut off: zato.connector.decide, rule 4).
        found = set(delete_queues(list(made.queues)))
        came_back = {q: test for q, test in made.queues.items() if q in found or parking_queue(q) in found}
        assert left == [], f"the lab left {left} behind"
        assert not came_back, f"declared again after the channel was deleted (queue: test) {came_back}"


@pytest.fixture
def channel(lab, request):
    """An AMQP channel (queue -> lab.record) and a publisher into its queue; removed afterwards."""
    lab.reset_accepted()
    queue = f"zl-in-{uuid.uuid4().hex[:8]}"
    lab.queues[queue] = request.node.nodeid  # deleted again once the lab is gone (the lab fixture)
    pub = AmqpPublisher(queue)
    name = pub.channel = f"in-{queue[-8:]}"
    lab.cli(
        "conn create amqp-channel", "--name", name, "--def", "rabbit", "--queue", queue,
        "--service", "lab.record", "--prefetch", "10", "--data-format", "json",
    )  # fmt: skip
    yield pub
    lab.cli("conn delete amqp-channel", "--name", name)
    pub.close()
