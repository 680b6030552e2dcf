"""The ended workers' metrics file (work/metrics/ended-workers.json) and the lock file beside it,
on a real two-worker server: their modes, and what a file that is not the arbiter's own (written
by hand, by another version, damaged) does to a scrape and to the arbiter (docs/trust.md)."""

from __future__ import annotations

import os
import signal
import stat

import requests

from tests.support import cluster_name, process_table, wait_for


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
