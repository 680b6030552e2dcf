"""`zato deploy --wait SECONDS` on a real two-server cluster (two workers each) and Redis.

`zato deploy` returns once the ODB holds the module; the servers load it a worker at a time
(a hot deploy). A script that deployed and then called the service met the old version, or
404 "no such service", for that moment. With --wait the command returns once every worker
of every running server noted the version it loaded (zato.coord.loaded), says how long that
took, and exits 1 naming the workers that could not load it, or had not within SECONDS."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
import redis
import requests

from tests.support import REDIS_URL, wait_for, zato
from zato.coord.keys import Keys

SOURCE = """from zato.server.service import Service

class Answer(Service):
    name = 'wait.answer'

    def handle(self):
        self.response.payload = {'version': VERSION}
"""


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=2, workers=2)
    qs.start()
    return qs


def write(qs, name: str, source: str) -> str:
    path = os.path.join(qs.path, f"{name}.py")
    with open(path, "w") as f:
        f.write(source)
    return path


def answers(qs, times: int = 8) -> list:
    """The service's answer on each server, `times` calls each (over its workers)."""
    s = qs.settings("server1")
    auth = (s.invoke_username, s.invoke_password)
    out = []
    for name in qs.server_names:
        for _ in range(times):
            r = requests.post(
                f"{qs.server_url(name)}/zato/api/invoke/wait.answer", json={}, auth=auth, timeout=30
            )
            out.append(r.json()["version"] if r.status_code == 200 else r.status_code)
    return out


def test_every_worker_answers_with_the_version_deploy_waited_for(cluster):
    for version in (1, 2, 3):
        path = write(cluster, "wait_answer", SOURCE.replace("VERSION", str(version)))
        done = zato("deploy", cluster.path, path, "--wait", "60")
        assert f"deployed module wait_answer version {version}: wait.answer" in done.stdout, done.stdout
        assert "loaded by every worker in " in done.stdout, done.stdout
        assert "4 worker(s) on server1, server2" in done.stdout, done.stdout
        assert answers(cluster) == [version] * 16  # at once: no 404, no older version
    again = zato("deploy", cluster.path, path, "--wait", "60")  # unchanged: the workers have it
    assert "is already deployed (unchanged)" in again.stdout and "4 worker(s)" in again.stdout, again.stdout


def test_a_module_a_worker_cannot_load_is_named_with_the_reason(cluster):
    broken = """import sys
from zato.server.service import Service

if 'gunicorn' in sys.modules:  # a server's worker, not the deploy's own check
    raise RuntimeError('this host has no licence file')

class Broken(Service):
    name = 'wait.broken'
"""
    done = zato("deploy", cluster.path, write(cluster, "wait_broken", broken), "--wait", "60", check=False)
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.startswith("zato: error: module wait_broken")]
    assert lines, done.stderr  # the first worker (or workers) that met it, and what it met: no waiting on
    assert all("could not load it: " in line and "this host has no licence file" in line for line in lines), (
        lines
    )
    zato("undeploy", cluster.path, "wait_broken")


def test_workers_that_do_not_load_in_time_are_named(cluster):
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    workers = sorted(
        w for w in client.smembers(Keys(cluster.cluster).async_workers) if w.startswith("server2:")
    )
    assert len(workers) == 2, workers
    pids = [int(w.rpartition(":")[2]) for w in workers]
    for pid in pids:
        os.kill(
            pid, signal.SIGSTOP
        )  # server2 stays a member (its supervisor heartbeats); its workers load nothing
    try:
        path = write(cluster, "wait_answer", SOURCE.replace("VERSION", "4"))
        done = zato("deploy", cluster.path, path, "--wait", "5", check=False)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert done.returncode == 1, done
    assert "deployed module wait_answer version 4" in done.stdout, done.stdout
    said = done.stderr.strip()
    assert said.startswith(
        "zato: error: module wait_answer version 4 is deployed, but not loaded within 5 s"
    ), said
    assert f"by worker(s) {', '.join(workers)} (of 4;" in said, said
    wait_for(lambda: answers(cluster, 4) == [4] * 8, 60, what="server2's workers loading it once resumed")
    client.close()


def test_the_admin_api_waits_when_asked(cluster):
    """POST /zato/admin/deploy?name=...&wait=SECONDS: the answer comes once every worker loaded
    the version, and says so under "loaded" (the module is deployed either way: 200)."""
    url = cluster.server_url("server2") + "/zato/admin/deploy"
    source = SOURCE.replace("VERSION", "5").encode()
    r = requests.post(url + "?name=wait_answer.py&wait=60", data=source, auth=cluster.admin_auth, timeout=90)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["module"], got["version"], got["changed"]) == ("wait_answer", 5, True), got
    assert got["loaded"]["everywhere"] is True and len(got["loaded"]["workers"]) == 4, got
    assert (got["loaded"]["missing"], got["loaded"]["failed"]) == ([], {}), got
    assert answers(cluster) == [5] * 16
    for bad in ("0", "3601", "soon"):
        asked = f"{url}?name=wait_answer.py&wait={bad}"
        refused = requests.post(asked, data=source, auth=cluster.admin_auth, timeout=30)
        assert refused.status_code == 400, refused.text
        assert "give a number of seconds, more than 0 and at most 3600" in refused.text, refused.text
    plain = requests.post(url + "?name=wait_answer.py", data=source, auth=cluster.admin_auth, timeout=30)
    assert plain.status_code == 200 and "loaded" not in plain.json(), plain.text  # as before: no wait


def test_the_admin_api_refuses_a_query_parameter_given_twice(cluster):
    """Before: the last one was taken (?name=a.py&name=b.py deployed b), while a proxy or a log
    in front may read the first: what it checked need not be what ran."""
    url = cluster.server_url("server1") + "/zato/admin/deploy?name=wait_one.py&name=wait_two.py"
    r = requests.post(url, data=SOURCE.replace("VERSION", "9").encode(), auth=cluster.admin_auth, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["zato_env"]["details"] == "query parameter 'name' given 2 times: give it once"
    listed = requests.get(
        cluster.server_url("server1") + "/zato/admin/services", auth=cluster.admin_auth, timeout=10
    )
    assert listed.status_code == 200 and "wait_two" not in listed.text and "wait_one" not in listed.text, (
        listed.text
    )
    kinds = cluster.server_url("server1") + "/zato/admin/conn?kind=amqp-def&kind=zmq-channel"
    assert requests.get(kinds, auth=cluster.admin_auth, timeout=10).status_code == 400
    assert (
        requests.get(kinds.split("&")[0], auth=cluster.admin_auth, timeout=10).status_code == 200
    )  # once: fine


def test_nothing_to_wait_for_when_no_server_runs(quickstart):
    qs = quickstart(servers=1, lb=False)
    path = write(qs, "wait_answer", SOURCE.replace("VERSION", "1"))
    done = zato("deploy", qs.path, path, "--wait", "5")
    assert "deployed module wait_answer version 1" in done.stdout
    assert "nothing to wait for: no server of cluster" in done.stdout and "as it starts" in done.stdout, (
        done.stdout
    )


def test_wait_is_refused_for_a_user_config_file_and_a_bad_number(cluster, tmp_path):
    conf = tmp_path / "crm.ini"
    conf.write_text("[crm]\nurl = http://example.invalid\n")
    refused = zato("deploy", cluster.path, str(conf), "--wait", "5", check=False)
    assert refused.returncode == 2 and "--wait is for service modules" in refused.stderr, refused
    bad = zato("deploy", cluster.path, str(conf), "--wait", "0", check=False)
    assert bad.returncode == 2 and "give a number of seconds, more than 0 and at most 3600" in bad.stderr, bad


def test_notes_that_are_not_a_workers_are_left_out():
    """What a worker notes is read back; anything else in the hash (another writer's) is not a
    load, so the worker it names still counts as not having loaded the module."""
    from tests.support import cluster_name
    from zato.coord import loaded

    name = cluster_name("deploy-notes")
    client = redis.Redis.from_url(REDIS_URL)
    key = Keys(name).deploy_loaded("m")
    try:
        loaded.note(client, name, "m", "server1", 101, loaded.Loaded(3))
        loaded.note(client, name, "m", "server1", 102, loaded.Loaded(3, "x" * 2000))
        client.hset(
            key, mapping={"server2:1": "not json", "server2:2": '{"version": "3"}', "server2:3": "[]"}
        )
        assert loaded.read(client, name, "m") == {
            "server1:101": loaded.Loaded(3),
            "server1:102": loaded.Loaded(3, "x" * loaded.MAX_ERROR),
        }
        assert 0 < client.pttl(key) <= loaded.KEEP * 1000
        loaded.forget(client, name, "m")
        assert not client.exists(key)
    finally:
        client.delete(key)
        client.close()


def test_restarts_and_a_killed_worker_leave_no_notes_behind(quickstart):
    """Each worker notes in Redis the version of each module it loaded (for --wait). A worker
    that stopped, or died and was found dead by a reaper, leaves that module's hash: before, its
    note stayed as long as the hash (renewed for a day by every note), so each restart of a
    server, kill or recycled worker left one more field per deployed module for good (bench/soak:
    +1 a restart)."""
    from zato.common.pidfile import pid_alive
    from zato.coord import loaded
    from zato.coord.signing import member_key

    qs = quickstart(servers=1, workers=1, lb=False)
    qs.start()
    zato("deploy", qs.path, write(qs, "wait_answer", SOURCE.replace("VERSION", "1")), "--wait", "60")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = Keys(qs.cluster).deploy_loaded("wait_answer")
    sign = member_key(qs.cluster_secret, qs.cluster)
    for _ in range(2):
        qs.stop("server1")
        qs.start("server1")
    (killed,) = wait_for(lambda: loaded.live_workers(client, qs.cluster, sign), timeout=10)
    pid = int(killed.rpartition(":")[2])
    os.kill(pid, signal.SIGKILL)  # the arbiter starts another worker, whose reaper finds this one dead
    wait_for(lambda: not pid_alive(pid), timeout=10)

    def only_the_live_worker() -> bool:
        live = loaded.live_workers(client, qs.cluster, sign)
        return len(live) == 1 and killed not in live and sorted(client.hkeys(key)) == live

    with contextlib.suppress(AssertionError):  # said below, with what the hash holds
        wait_for(only_the_live_worker, timeout=30)
    notes = sorted(client.hkeys(key))
    assert only_the_live_worker(), f"notes of {len(notes)} workers after 2 restarts and a kill: {notes}"
