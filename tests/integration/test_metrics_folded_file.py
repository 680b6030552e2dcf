"""What /metrics makes of what it reads that another process wrote, on a real server: the ended
workers' metrics file (work/metrics/ended-workers.json) and the lock file beside it (their
modes; one that is not the arbiter's own: by hand, another version, damaged), and the connector
counters that are plain JSON in Redis (docs/trust.md)."""

from __future__ import annotations

import json
import os
import signal
import stat

import redis
import requests

from tests.support import REDIS_URL, cluster_name, process_table, wait_for
from zato.coord import connector_stats
from zato.coord.keys import Keys


def _workers(qs) -> set[int]:  # noqa: ANN001
    arbiter = qs.pid("server1")
    return {pid for pid, ppid, cmd in process_table() if ppid == arbiter and b"worker" in cmd}


def _metrics(base: str) -> requests.Response:
    return requests.get(base + "/metrics", timeout=10, headers={"Connection": "close"})


def test_a_folded_file_not_of_the_arbiters_making_is_set_aside_and_scrapes_answer(quickstart):
    """Before: the lock file was made with the umask's mode (0644), not 0600 as the rest; an
    ended-workers.json of another shape (valid JSON: [] here) made every scrape a 500 until
    someone deleted it, and every fold raised in the arbiter's child_exit hook (the ended
    workers' files stayed, read by every scrape, and the rest of the hook was skipped). Now
    the fold sets the file aside as ended-workers.json.bad, saying so in server.log, scrapes
    meanwhile leave it out, and the ended workers count again from there."""
    qs = quickstart(servers=1, workers=2, cluster=cluster_name("trustfold"))
    qs.start()
    base = qs.server_url("server1")
    folder = os.path.join(qs.server_dir("server1"), "work", "metrics")
    lock_mode = stat.S_IMODE(os.stat(os.path.join(folder, "lock")).st_mode)
    assert _metrics(base).status_code == 200
    with open(os.path.join(folder, "ended-workers.json"), "w") as f:
        f.write("[]")
    r = _metrics(base)
    assert r.status_code == 200, r.text[:300]
    assert "zato_redis_up" in r.text
    for _ in range(20):  # counted by both workers, in their counter files
        requests.get(base + "/trust/no-such-path", timeout=10, headers={"Connection": "close"})
    victims = _workers(qs)
    for victim in victims:
        os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(_workers(qs) - victims) == 2, what="the replacement workers")
    wait_for(
        lambda: os.path.exists(os.path.join(folder, "ended-workers.json.bad")), what="the file set aside"
    )
    assert not any(name.endswith(f"_{v}.db") for v in victims for name in os.listdir(folder))
    r = _metrics(base)
    assert r.status_code == 200 and "zato_redis_up" in r.text
    arbiter = qs.pid("server1")
    assert arbiter in {pid for pid, _, _ in process_table()}, "the server stopped"
    assert len(_workers(qs)) == 2
    with open(os.path.join(qs.server_dir("server1"), "logs", "server.log"), encoding="utf-8") as f:
        log = f.read()
    assert "ended-workers.json is not the ended workers' totals: a list, not an object; set aside as" in log
    folded = stat.S_IMODE(os.stat(os.path.join(folder, "ended-workers.json")).st_mode)  # the arbiter's own
    assert folded == 0o600, oct(folded)
    assert lock_mode == 0o600, oct(lock_mode)


def test_connector_counters_of_another_type_in_redis_do_not_fail_a_scrape(quickstart):
    """The holder's supervisor status and each connector's stats are plain JSON in Redis (a
    Redis writer's, or damaged). Before, a counter there that was not a number ("restarts":
    "many") made the exposition raise: every scrape was a 500 until the holder wrote its status
    again (15 s), for as long as someone kept writing it. Now such a value has no sample (a 0
    would read as a counter reset; a parking queue's is left out too) and the connector's other
    series are there."""
    qs = quickstart(servers=1, workers=1, cluster=cluster_name("trustcounters"))
    qs.start()
    base = qs.server_url("server1")
    keys = Keys(qs.cluster)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        wait_for(lambda: client.get(keys.supervisor_status), 30, what="the holder's supervisor status")
        name = "amqp-channel:trust"
        child = {"name": name, "kind": "amqp-channel", "state": "RUNNING", "pid": 1, "restarts": "many"}
        doc = json.loads(client.get(keys.supervisor_status))  # the holder's, with its epoch
        client.set(keys.supervisor_status, json.dumps({**doc, "children": [child]}))
        connector_stats.write(client, qs.cluster, name, {"messages_in": "lots", "parking_queue": [1]}, 60)
        r = _metrics(base)
        assert r.status_code == 200, r.text[:300]
        assert f'zato_connector_state{{connector="{name}",kind="amqp-channel",state="RUNNING"}} 1.0' in r.text
        # no sample for it, as for an unknown one: a 0 is a counter reset to Prometheus
        assert f'zato_connector_restarts_total{{connector="{name}",' not in r.text
        assert f'zato_channel_parking_queue{{connector="{name}"' not in r.text
    finally:
        client.close()
