"""AMQP under holder failure: at least 5,000 numbered messages flow through a channel while the
lease holder (its whole process group: arbiter, workers, supervisor, connectors) is SIGKILLed
twice. Every message must reach the service at least once; outgoing messages sent meanwhile
must all reach RabbitMQ. Duplicates are counted and printed (at-least-once)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

from tests.conn_support import Rabbit, services_source
from tests.ha.takeover_support import OutgoingSender, kill_holder, received_ids
from tests.support import wait_for, zato

TOTAL = 5000


def test_no_message_lost_while_the_holder_is_killed_twice(quickstart):
    qs = quickstart(servers=2, lb=False)
    qs.start()
    module = os.path.join(qs.path, "conn_services.py")
    with open(module, "w") as f:
        f.write(services_source())
    zato("deploy", qs.path, module)
    rabbit = Rabbit()
    q_in = rabbit.queue(f"zt-ha-in-{uuid.uuid4().hex[:8]}")
    q_out = rabbit.queue(f"zt-ha-out-{uuid.uuid4().hex[:8]}")
    try:
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit")
        zato(
            "conn",
            "create",
            "amqp-channel",
            qs.path,
            "--name",
            "in",
            "--def",
            "rabbit",
            "--queue",
            q_in,
            "--service",
            "conn.record",
            "--prefetch",
            "50",
            "--data-format",
            "json",
        )
        zato(
            "conn",
            "create",
            "amqp-outgoing",
            qs.path,
            "--name",
            "out",
            "--def",
            "rabbit",
            "--routing-key",
            q_out,
        )
        zato(
            "channel",
            "create",
            qs.path,
            "--name",
            "send-amqp",
            "--url-path",
            "/send-amqp",
            "--service",
            "conn.send-amqp",
        )
        sender = OutgoingSender(qs)
        sender.start()
        published = threading.Event()

        def publish() -> None:
            pub = Rabbit()
            for i in range(TOTAL):
                pub.publish(q_in, json.dumps({"n": i}))
                if i % 100 == 99:
                    time.sleep(0.05)
            pub.conn.close()
            published.set()

        threading.Thread(target=publish, daemon=True).start()
        for round_ in (1, 2):
            kill_holder(qs, round_ * 1000)
        assert published.wait(120)
        wait_for(
            lambda: set(received_ids(qs.cluster)) >= set(range(TOTAL)),
            timeout=180,
            what=f"all {TOTAL} messages at the service",
        )
        sender.stop.set()
        sender.join(10)
        ids = received_ids(qs.cluster)
        dups = len(ids) - len(set(ids))
        print(f"channel: {TOTAL} published, {len(set(ids))} distinct received, {dups} duplicates")
        seen: list[int] = []

        def all_out() -> bool:
            seen.extend(json.loads(b)["o"] for _, b in rabbit.get_all(q_out))
            return set(seen) >= set(sender.accepted)

        wait_for(all_out, timeout=120, what="every accepted outgoing message in RabbitMQ")
        print(
            f"outgoing: {len(sender.accepted)} accepted, {len(set(seen))} distinct arrived, "
            f"{len(seen) - len(set(seen))} duplicates"
        )
        assert sender.accepted
    finally:
        rabbit.close()
