"""IBM MQ under holder failure, on a real two-server cluster: 2,000 numbered messages flow through
an IBM MQ channel (stand-in queue manager, or a real one named by ZATO_TEST_IBMMQ) while the
lease holder's whole process group is SIGKILLed; services send through self.out.ibm_mq
meanwhile. Every message reaches the service at least once and every accepted outgoing one
reaches the queue; duplicates are counted and printed. The definitions are made with
`zato conn` and the admin API, and `zato cluster status` shows both connectors."""

from __future__ import annotations

import json
import os
import threading

import pytest
import requests

from tests.conn_support import services_source
from tests.ha.takeover_support import OutgoingSender, kill_holder, received_ids
from tests.ibmmq_support import QM_KINDS, make_qm, put
from tests.support import wait_for, zato

TOTAL = 2000

SEND_SERVICE = """

class SendIBMMQ(Service):
    name = "conn.send-ibmmq"

    def handle(self):
        for item in self.request.payload["items"]:
            self.out.ibm_mq.send(item, "out")
"""


def create_connections(qs, qm) -> None:  # noqa: ANN001
    zato("conn", "create", "ibm-mq-def", qs.path, "--name", "qm", "--queue-manager", qm.qmgr,
         "--channel", qm.channel, "--conn-name", qm.conn_name, "--username", qm.user,
         "--password", "-", "--heartbeat", "5", input=qm.password + "\n")  # fmt: skip
    zato("conn", "create", "ibm-mq-channel", qs.path, "--name", "in", "--def", "qm",
         "--queue", qm.queues["in"], "--service", "conn.record",
         "--backout-queue", qm.queues["backout"], "--max-in-flight", "4")  # fmt: skip
    admin = qs.server_url("server2") + "/zato/admin/conn"  # the admin API, as the CLI would
    out = {"name": "out", "def": "qm", "queue": qm.queues["out"]}
    r = requests.post(admin + "/ibm-mq-outgoing", json=out, auth=qs.admin_auth, timeout=10)
    assert r.status_code == 201, r.text
    defs = requests.get(admin, params={"kind": "ibm-mq-def"}, auth=qs.admin_auth, timeout=10).json()
    assert [d["password"] for d in defs["connections"]] == ["******"]
    zato("channel", "create", qs.path, "--name", "send-ibmmq", "--url-path", "/send-ibmmq",
         "--service", "conn.send-ibmmq")  # fmt: skip


@pytest.mark.parametrize("qm_kind", QM_KINDS)
def test_no_ibm_mq_message_lost_while_the_holder_is_killed(quickstart, monkeypatch, qm_kind):
    qm = make_qm(qm_kind)
    try:
        monkeypatch.setenv("PYTHONPATH", qm.env().get("PYTHONPATH", ""))  # servers import the stand-in
        qs = quickstart(servers=2, lb=False)
        qs.start()
        module = os.path.join(qs.path, "conn_services.py")
        with open(module, "w") as f:
            f.write(services_source() + SEND_SERVICE)
        zato("deploy", qs.path, module)
        create_connections(qs, qm)
        status = wait_for(
            lambda: (
                (out := zato("cluster", "status", qs.path, check=False).stdout).count("RUNNING") >= 2 and out
            ),
            timeout=60,
            what="both IBM MQ connectors RUNNING in zato cluster status",
        )
        assert "ibm-mq-channel:in" in status and "ibm-mq-outgoing:out" in status and "BACKOUTS" in status
        sender = OutgoingSender(qs, "/send-ibmmq")
        sender.start()

        def publish() -> None:
            for start in range(0, TOTAL, 100):
                put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(start, start + 100)])

        threading.Thread(target=publish, daemon=True).start()
        kill_holder(qs, 700)
        wait_for(
            lambda: set(received_ids(qs.cluster)) >= set(range(TOTAL)),
            timeout=120,
            what=f"all {TOTAL} messages at the service",
        )
        sender.stop.set()
        sender.join(10)
        ids = received_ids(qs.cluster)
        dups = len(ids) - len(set(ids))
        print(f"ibmmq channel: {TOTAL} put, {len(set(ids))} distinct received, {dups} duplicates")
        seen: list[int] = []

        def all_out() -> bool:
            seen.extend(json.loads(body)["o"] for body, _ in qm.drain(qm.queues["out"]))
            return set(seen) >= set(sender.accepted)

        wait_for(all_out, timeout=60, what="every accepted outgoing message on the queue")
        print(f"ibmmq outgoing: {len(sender.accepted)} accepted, {len(set(seen))} distinct arrived, "
              f"{len(seen) - len(set(seen))} duplicates")  # fmt: skip
        assert sender.accepted and set(ids) == set(range(TOTAL))
    finally:
        qm.close()
