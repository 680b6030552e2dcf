"""`zato start/stop/info` against real processes: a pidfile naming another process, a typo in
a config file, a bad [gunicorn] value, a server that never becomes ready, a cluster the ODB
lacks, a cluster secret the live servers do not share: each is noticed, in one line."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from tests.integration.test_process_groups import workers_of
from tests.integration.test_server_cli import set_conf_of
from tests.support import (
    Quickstart,
    cluster_name,
    free_port,
    one_line_error,
    popen_interruptible,
    wait_for,
    zato,
)
from zato.common.pidfile import pid_alive
from zato.lifecycle.control import http_ok


@contextlib.contextmanager
def folders_open_to_all(path: str):
    """Every folder above `path` that others may not pass through lets them, for a while."""
    changed = []
    folder = os.path.dirname(os.path.abspath(path))
    while folder != os.path.dirname(folder):
        mode = os.stat(folder).st_mode & 0o7777
        if mode & 0o011 != 0o011:
            os.chmod(folder, mode | 0o011)  # noqa: S103 - on purpose, and set back
            changed.append((folder, mode))
        folder = os.path.dirname(folder)
    try:
        yield
    finally:
        for folder, mode in changed:
            os.chmod(folder, mode)


@contextlib.contextmanager
def another_process():
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_pidfile_naming_another_process_is_stale(quickstart):
    qs = quickstart(servers=1, lb=False)
    server = qs.server_dir("server1")
    pidfile = os.path.join(server, "pidfile")
    with another_process() as sleep:
        with open(pidfile, "w") as f:
            f.write(f"{sleep.pid}\n")
        info = zato("info", server).stdout
        assert re.search(r"\n  state +stale\n  pid +-\n", info), info
        out = zato("stop", server).stdout
        assert "server server1 is not running" in out and "not signalled" in out, out
        assert sleep.poll() is None and not os.path.exists(pidfile)  # alive: never signalled
        with open(pidfile, "w") as f:
            f.write(f"{sleep.pid}\n")
        out = zato("start", server).stdout
        assert (
            f"removed a stale pidfile {pidfile} (pid {sleep.pid} is another process now: sleep 1000)" in out
        )
        assert "server server1 started" in out, out
        pid = qs.pid("server1")
        assert pid != sleep.pid and re.search(r"\n  state +running\n", zato("info", server).stdout)
        assert f"server server1 stopped (pid {pid})" in zato("stop", server).stdout
        assert sleep.poll() is None and not pid_alive(pid)


def test_a_pidfile_that_is_a_directory_is_one_line(quickstart):
    """Before: a traceback ending in IsADirectoryError from start, stop and info alike."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("polish-piddir"))
    server = qs.server_dir("server1")
    pidfile = os.path.join(server, "pidfile")
    os.mkdir(pidfile)
    for args in (("start", server), ("stop", server), ("info", server), ("stop", qs.path)):
        proc = zato(*args, check=False)
        one_line_error(proc, f"pidfile {pidfile} is a directory, not a file: remove it")
        assert "Traceback" not in proc.stdout + proc.stderr
    assert os.path.isdir(pidfile) and not os.listdir(pidfile)  # nothing started, nothing removed
    os.rmdir(pidfile)
    with open(pidfile, "wb") as f:  # bytes that are no text: no pid (before, UnicodeDecodeError)
        f.write(b"\xff\xfe\n")
    assert re.search(r"\n  state +stale\n", zato("info", server).stdout)
    out = zato("start", server).stdout
    assert f"removed a stale pidfile {pidfile} (it holds no pid)" in out and "server server1 started" in out


def test_zato_info_of_a_quickstart_shows_a_member_whose_pidfile_is_a_directory_and_the_others(quickstart):
    """Before: `zato info QUICKSTART` stopped at that member with its one-line error, and showed
    none of the others (here server2, running)."""
    qs = quickstart(servers=2, lb=False, cluster=cluster_name("clifix-infodir"))
    qs.start("server2")
    pid2 = qs.pid("server2")
    pidfile = os.path.join(qs.server_dir("server1"), "pidfile")
    os.mkdir(pidfile)
    problem = f"pidfile {pidfile} is a directory, not a file: remove it"
    proc = zato("info", qs.path, check=False)
    assert proc.returncode == 1 and proc.stderr == "" and "Traceback" not in proc.stdout, proc.stderr
    one, two = proc.stdout.split(qs.server_dir("server2") + "\n")
    assert re.search(r"\n  state +unknown\n  problem +" + re.escape(problem), one), one
    assert re.search(rf"\n  state +running\n  pid +{pid2}\n", two), two
    info = json.loads(zato("info", qs.path, "--json", check=False).stdout)
    assert [(m["state"], m["pid"]) for m in info["members"][:2]] == [("unknown", None), ("running", pid2)]
    assert info["members"][0]["problem"].startswith(problem)
    urls = zato("info", qs.path, "--urls").stdout
    [server1] = [line for line in urls.splitlines() if line.startswith("  server1 ")]
    assert f"whether it runs is unknown: {problem}" in server1 and "not running" not in server1, urls


def test_zato_info_urls_of_a_quickstart_shows_the_others_when_a_members_config_is_broken(quickstart):
    """Before: `zato info QUICKSTART --urls` (what `make run` prints) of a quickstart whose lb.conf
    no longer parsed was that one line and nothing else, while `zato info` showed the others."""
    qs = quickstart(servers=2, lb=True)
    lb_conf = os.path.join(qs.lb_dir, "config", "lb.conf")
    qs._merge(lb_conf, "main", {"port": "x"})
    proc = zato("info", qs.path, "--urls", check=False)
    assert proc.returncode == 1 and proc.stderr == "", proc.stdout + proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert f"(cannot be described: {lb_conf}: [main] port: 'x' is not a whole number)" in rows["load"]
    for name, port in (("server1", qs.base_port), ("server2", qs.base_port + 1)):
        assert f"http://127.0.0.1:{port}/zato/ping   (also /metrics, /zato/ready; not running)" in rows[name]
    assert f"http://127.0.0.1:{qs.dashboard_port}/" in rows["dashboard"], proc.stdout
    one_line_error(zato("info", qs.lb_dir, "--urls", check=False), f"{lb_conf}: [main] port: 'x'")


def test_a_typo_in_server_conf_or_lb_conf_is_refused_in_one_line(quickstart):
    qs = quickstart(servers=1, lb=True)
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    set_conf_of(qs, "server1", "main", "prot", "42011")
    one_line_error(
        zato("start", qs.server_dir("server1"), check=False),
        f"{conf}: [main] prot is not a setting of server.conf (did you mean 'port'?)",
    )
    # the server's own entry point says the same
    own = subprocess.run(
        [sys.executable, "-m", "zato.server.main", qs.server_dir("server1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert own.returncode == 3 and "[main] prot is not a setting of server.conf" in own.stderr, own.stderr
    assert qs.pid("server1") is None
    # A section's name is case-sensitive: [MAIN] was "not a section of server.conf", no hint
    with open(conf) as f:
        text = f.read()
    for typo, said in (
        ("[MAIN]", "(did you mean [main]?)"),
        ("[redis]", "(known: auth, cluster, gunicorn, "),
    ):
        with open(conf, "w") as f:
            f.write(text.replace("[main]\n", "[main]\nname = server1\n" + typo + "\n", 1))
        one_line_error(
            zato("start", qs.server_dir("server1"), check=False),
            f"{typo} is not a section of server.conf {said}",
        )
    lb_conf = os.path.join(qs.lb_dir, "config", "lb.conf")
    qs._merge(lb_conf, "haproxy", {"timeout_clinet_ms": "5"})
    one_line_error(
        zato("start", qs.lb_dir, check=False),
        f"{lb_conf}: [haproxy] timeout_clinet_ms is not a setting of lb.conf",
        "(did you mean 'timeout_client_ms'?)",
    )
    assert qs.pid("load-balancer") is None


def test_a_port_two_members_of_a_quickstart_share_is_refused_before_anything_starts(quickstart):
    """Before: a quickstart whose load balancer was given server2's port started both servers and
    the dashboard, failed on HAProxy's bind, stopped them again and printed lines of lb.log."""
    qs = quickstart(servers=2, lb=True)
    lb_conf = os.path.join(qs.lb_dir, "config", "lb.conf")
    taken = qs.base_port + 1
    qs._merge(lb_conf, "main", {"port": str(taken)})
    proc = zato("start", qs.path, check=False)
    one_line_error(
        proc,
        f"server server2 and load balancer would both listen on 127.0.0.1:{taken}",
        f"set another [main] port in {lb_conf}",
        "nothing was started",
    )
    assert proc.stdout == "", proc.stdout  # no "server server1 started", no "... stopped"
    for name in (*qs.server_names, "dashboard", "load-balancer"):
        assert qs.pid(name) is None, name
        assert not os.path.exists(os.path.join(qs.member_dir(name), "logs", "stdout.log")), name
    # the single server alone is not refused for it: only what one start starts together
    qs.start("server2")
    one_line_error(zato("start", qs.lb_dir, check=False), f"port 127.0.0.1:{taken} is not free")


def test_config_files_saved_with_a_byte_order_mark_are_read(quickstart):
    """Before: a server.conf, lb.conf or dashboard.conf saved as "UTF-8 with BOM" (Notepad's
    default, and other Windows editors') was refused by every command: "line 1:
    '\\ufeff# server.conf: one Zato-HA server. ...' comes before any [section]"; user-config
    files were read with it already."""
    qs = quickstart(servers=1, lb=True)
    confs = [
        os.path.join(qs.server_dir("server1"), "config", "server.conf"),
        os.path.join(qs.lb_dir, "config", "lb.conf"),
        os.path.join(qs.dashboard_dir, "config", "dashboard.conf"),
    ]
    for conf in confs:
        with open(conf, "rb") as f:
            text = f.read()
        with open(conf, "wb") as f:
            f.write(codecs.BOM_UTF8 + text)
    out = zato("start", qs.path).stdout
    for started in ("server server1 started", "load balancer started", "dashboard started"):
        assert started in out, out
    assert json.loads(zato("info", qs.server_dir("server1"), "--json").stdout)["port"] == qs.base_port
    assert "server server1 stopped" in zato("stop", qs.server_dir("server1")).stdout


def test_a_config_file_other_users_can_read_is_warned_of_at_start(quickstart):
    """Before: a server.conf or lb.conf (admin and invoke passwords, the cluster secret, the
    ODB's URL) copied in under umask 022 into a folder made by hand, so readable by every user
    of the host, started without a word. As made by quickstart (0600 in a 0700 folder): none."""
    qs = quickstart(servers=1, lb=True)
    server_conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    lb_conf = os.path.join(qs.lb_dir, "config", "lb.conf")
    out = zato("start", qs.server_dir("server1")).stdout
    assert "holds secrets" not in out, out
    zato("stop", qs.server_dir("server1"))
    for conf in (server_conf, lb_conf):
        os.chmod(conf, 0o644)
        os.chmod(os.path.dirname(conf), 0o755)  # noqa: S103 - the mistake under test
    with folders_open_to_all(qs.path):  # pytest makes its temporary folders 0700
        proc = zato("start", qs.path)
    for conf in (server_conf, lb_conf):
        assert (
            f"warning: {conf} holds secrets, and its group and every user (mode 0644) can read it:"
            f" chmod 600 {conf} (and 700 its folder)"
        ) in proc.stderr.splitlines(), proc.stderr
    out = proc.stdout
    assert "server server1 started" in out and "load balancer started" in out, out  # a warning only


def test_a_logs_or_work_folder_that_is_no_folder_is_one_line_and_starts_nothing(quickstart, tmp_path):
    """Before: a server's logs/ symlinked to a disk not mounted (or a file in its place) ended
    `zato start` in a traceback (FileExistsError from os.makedirs); a work/ that was a file ended
    the server's own start in one (NotADirectoryError), shown as lines of its stdout.log."""
    qs = quickstart(servers=2, lb=False)
    logs = os.path.join(qs.server_dir("server2"), "logs")
    shutil.rmtree(logs)
    os.symlink(str(tmp_path / "not-mounted" / "logs"), logs)
    proc = zato("start", qs.path, check=False)
    one_line_error(
        proc, f"server server2: {logs} is a symlink to {tmp_path}/not-mounted/logs, which is no directory"
    )
    assert proc.stdout == "" and qs.pid("server1") is None, proc.stdout  # server1 not started either
    work = os.path.join(qs.server_dir("server1"), "work")
    shutil.rmtree(work)
    with open(work, "w") as f:
        f.write("")
    one_line_error(
        zato("start", qs.server_dir("server1"), check=False),
        f"server server1: {work} is a file, not a directory: make it a directory, or remove it",
    )
    assert qs.pid("server1") is None


def test_a_bad_gunicorn_value_is_one_line(quickstart):
    qs = quickstart(servers=1, lb=False)
    set_conf_of(qs, "server1", "gunicorn", "timeout", "abc")
    proc = zato("start", qs.server_dir("server1"), check=False)
    one_line_error(proc, "[gunicorn] timeout: 'abc' is not valid")
    assert "Traceback" not in proc.stdout + proc.stderr and qs.pid("server1") is None


def test_a_server_that_never_becomes_ready_is_stopped_by_the_failed_start(quickstart):
    qs = quickstart(servers=1, lb=False)
    elsewhere = free_port()
    set_conf_of(qs, "server1", "gunicorn", "bind", f"127.0.0.1:{elsewhere}")  # not where it is looked for
    proc = zato("start", qs.server_dir("server1"), "--timeout", "5", check=False)
    assert proc.returncode == 1 and "server server1 did not become ready within 5 s" in proc.stderr, (
        proc.stderr
    )
    assert "server server1 stopped (pid " in proc.stdout and "this start failed" in proc.stdout, proc.stdout
    s = qs.settings("server1")
    assert (
        f"warning: {s.config_file}: [gunicorn] bind = 127.0.0.1:{elsewhere} overrides [main] host and port,"
        f" which `zato start`, the load balancer and the connectors use ({s.host}:{s.port})" in proc.stderr
    ), proc.stderr
    pid = int(proc.stdout.split("server server1 stopped (pid ")[1].split(")")[0])
    assert not pid_alive(pid) and qs.pid("server1") is None
    with socket.socket() as s:  # nothing serves where it did bind
        assert s.connect_ex(("127.0.0.1", elsewhere)) != 0


def test_a_start_interrupted_while_it_waits_stops_what_it_started(quickstart):
    """Ctrl-C while `zato start` waited for a server to become ready: before, it exited 130 without
    a word and the server went on starting (here: serving where it is not looked for)."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("life"))
    elsewhere = free_port()
    set_conf_of(qs, "server1", "gunicorn", "bind", f"127.0.0.1:{elsewhere}")  # never ready: it waits
    start = popen_interruptible(
        [sys.executable, "-m", "zato", "start", qs.server_dir("server1"), "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid = 0
    try:
        pid = wait_for(lambda: qs.pid("server1"), 60, what="server1's pidfile (past its gate)")
        # ready where it serves (its workers booted; a stop while they boot is another test)
        wait_for(
            lambda: http_ok(f"http://127.0.0.1:{elsewhere}/zato/ready"),
            60,
            what="server1 ready where it serves",
        )
        start.send_signal(signal.SIGINT)
        out, err = start.communicate(timeout=60)
    finally:
        start.kill()
        start.wait()
        if pid:  # what is left of it, when this test fails
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert start.returncode == 130 and "Traceback" not in err, err
    assert f"server server1 stopped (pid {pid}): this start was interrupted" in out, out
    assert not pid_alive(pid) and qs.pid("server1") is None and not serves(elsewhere)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_a_start_terminated_while_it_waits_stops_what_it_started(quickstart, sigint):
    """SIGTERM to `zato start` while it waited for a server to become ready (`timeout 30 zato
    start DIR`, a CI job cancelled): before, it died at once (exit -15) and the server went on
    starting, and served, though the start had failed. Now as a Ctrl-C: stopped, exit 143.
    Also when the command runs with SIGINT ignored (started in the background by a script, as
    `make test` run with `&` starts this test's own process): that first fix held only where
    SIGINT was Python's own handler, and the whole suite run so got -15."""
    qs = quickstart(servers=1, lb=False)
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    elsewhere = free_port()
    set_conf_of(qs, "server1", "gunicorn", "bind", f"127.0.0.1:{elsewhere}")  # never ready: it waits
    start = subprocess.Popen(
        [sys.executable, "-m", "zato", "start", qs.server_dir("server1"), "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore,  # noqa: PLW1509 - one signal call, before the exec
    )
    pid = 0
    try:
        pid = wait_for(lambda: qs.pid("server1"), 60, what="server1's pidfile (past its gate)")
        wait_for(lambda: http_ok(f"http://127.0.0.1:{elsewhere}/zato/ready"), 60, what="server1 ready")
        start.send_signal(signal.SIGTERM)
        out, err = start.communicate(timeout=60)
    finally:
        start.kill()
        start.wait()
        if pid:  # what is left of it, when this test fails
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert start.returncode == 128 + signal.SIGTERM and "Traceback" not in err, (start.returncode, err)
    assert f"server server1 stopped (pid {pid}): this start was interrupted" in out, out
    assert not pid_alive(pid) and qs.pid("server1") is None and not serves(elsewhere)


def test_a_second_ctrl_c_while_a_start_stops_what_it_started_does_not_cut_that_short(quickstart, tmp_path):
    """Ctrl-C, then Ctrl-C again while `zato start` stops the server it had started (held up
    here: a worker is SIGSTOPped, so the server's stop waits on it): the second one is said and
    ignored, the stop finishes, exit 130. Before, the second one aborted the clean-up: exit 130
    at once, the server neither waited for nor said stopped, its process group never swept."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("clifix-int2"))
    elsewhere = free_port()
    set_conf_of(qs, "server1", "gunicorn", "bind", f"127.0.0.1:{elsewhere}")  # never ready: it waits
    set_conf_of(qs, "server1", "gunicorn", "graceful_timeout", "120")  # the arbiter waits on its worker
    err_path = tmp_path / "start.err"
    with open(err_path, "w") as err_file:
        start = popen_interruptible(
            [sys.executable, "-m", "zato", "start", qs.server_dir("server1"), "--timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
    pid = worker = 0
    try:
        pid = wait_for(lambda: qs.pid("server1"), 60, what="server1's pidfile (past its gate)")
        wait_for(lambda: http_ok(f"http://127.0.0.1:{elsewhere}/zato/ready"), 60, what="server1 ready")
        worker = workers_of(pid)[0]
        os.kill(worker, signal.SIGSTOP)  # the server's stop waits until it goes on
        start.send_signal(signal.SIGINT)
        wait_for(lambda: sigterm_pending(worker), 60, what="the server stopping its (stopped) worker")
        start.send_signal(signal.SIGINT)  # the second Ctrl-C, while it waits for the server to stop

        def said_or_gone() -> bool:
            return "still stopping" in err_path.read_text() or start.poll() is not None

        wait_for(said_or_gone, 30, what="the second Ctrl-C answered")
        assert start.poll() is None, "zato start exited before what it started had stopped"
        os.kill(worker, signal.SIGCONT)
        out, _ = start.communicate(timeout=60)
    finally:
        start.kill()
        start.wait()
        with contextlib.suppress(ProcessLookupError):  # what is left of it, when this test fails
            if worker:
                os.kill(worker, signal.SIGKILL)
            if pid:
                os.killpg(pid, signal.SIGKILL)
    err = "".join(line for line in err_path.read_text().splitlines(True) if not line.startswith("warning: "))
    assert start.returncode == 130 and "Traceback" not in err, err
    assert err == "zato: still stopping what this start began; wait (it exits once that is done)\n", err
    assert f"server server1 stopped (pid {pid}): this start was interrupted" in out, out
    assert not pid_alive(pid) and not pid_alive(worker) and qs.pid("server1") is None
    assert not serves(elsewhere)


def sigterm_pending(pid: int) -> bool:
    """A SIGTERM waits, not yet handled, for process `pid` (stopped)."""
    with open(f"/proc/{pid}/status") as f:
        pending = [int(line.split()[1], 16) for line in f if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signal.SIGTERM - 1)) for mask in pending)


def serves(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_cluster_name_the_odb_lacks_is_one_line(quickstart):
    qs = quickstart(servers=1, lb=False)
    typo = qs.cluster + "x"
    set_conf_of(qs, "server1", "cluster", "name", typo)
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    one_line_error(
        zato("start", qs.server_dir("server1"), check=False),
        f"{conf}: [cluster] name: cluster '{typo}' does not exist in the ODB (did you mean '{qs.cluster}'?)",
    )
    assert qs.pid("server1") is None


def test_a_sqlite_odb_file_gone_is_named_not_made_anew(quickstart):
    """Before, the server's checks made an empty SQLite ODB where the cluster's had been (moved or
    deleted) and said the cluster did not exist in it."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("life"))
    odb = os.path.join(qs.path, "odb.db")
    os.rename(odb, odb + ".moved")
    one_line_error(
        zato("start", qs.server_dir("server1"), check=False),
        f"the SQLite file {odb} does not exist (moved or deleted?)",
    )
    assert not os.path.exists(odb) and qs.pid("server1") is None
    os.rename(odb + ".moved", odb)
    assert "server server1 started" in zato("start", qs.server_dir("server1")).stdout


def test_a_cluster_secret_the_live_servers_do_not_share_is_refused(quickstart):
    qs = quickstart(servers=2, lb=False)
    qs.start("server1")
    conf = os.path.join(qs.server_dir("server2"), "config", "server.conf")
    set_conf_of(qs, "server2", "auth", "cluster_secret", "not-the-cluster-secret-at-all")
    one_line_error(
        zato("start", qs.server_dir("server2"), check=False),
        f"{conf}: [auth] cluster_secret is not the one the live servers of cluster {qs.cluster} sign their"
        " membership with (server1)",
    )
    assert qs.pid("server2") is None


def test_a_second_quickstart_of_the_same_cluster_name_is_told_to_take_a_name_of_its_own(quickstart, tmp_path):
    """Two quickstarts on one Redis, the second made without --cluster (README: 'with a name of
    its own'): the refusal said only 'give it their cluster_secret', which would join the two."""
    name = cluster_name("twin")
    first = quickstart(servers=1, lb=False, cluster=name)
    first.start("server1")
    os.makedirs(tmp_path / "second")
    second = Quickstart(tmp_path / "second", servers=1, lb=False, cluster=name).create()
    try:
        one_line_error(  # its server's or its LB's, whichever checked first
            zato("start", second.path, check=False),
            f"[auth] cluster_secret is not the one the live servers of cluster {name} sign their",
            "or, if it is another cluster on the same Redis, a name of its own",
            "`zato quickstart create DIR --cluster NAME`",
        )
        assert second.pid("server1") is None and first.pid("server1")
    finally:
        second.close()


def test_a_load_balancer_with_a_cluster_secret_the_live_servers_do_not_share_is_refused(quickstart):
    qs = quickstart(servers=1, lb=True)
    qs.start("server1")
    # `zato start` of server1 returned once it was a member: before, it returned ~0.2 s earlier,
    # and this LB start found no live server to compare secrets with
    lb_conf = os.path.join(qs.lb_dir, "config", "lb.conf")
    qs._merge(lb_conf, "auth", {"cluster_secret": "not-the-cluster-secret-at-all"})
    one_line_error(
        zato("start", qs.lb_dir, check=False),
        f"{lb_conf}: [auth] cluster_secret is not the one the live servers of cluster {qs.cluster} sign their"
        " membership with (server1)",
        "the load balancer would send them no traffic",
    )
    assert qs.pid("load-balancer") is None


def test_a_start_right_after_a_server_was_killed_waits_for_its_workers_to_let_go_of_the_port(quickstart):
    """SIGKILL of a server (or a crash), then `zato start` at once, as systemd or an operator
    does. Before: `port ... is not free (Address already in use)`, exit 1, until its workers had
    seen their parent gone. Now the start waits for them (said once) and the server starts."""
    qs = quickstart(servers=1, lb=False)
    qs.start()
    old = qs.pid("server1")
    workers = workers_of(old)
    assert workers, "the killed server's workers, which hold its port"
    os.kill(old, signal.SIGKILL)
    proc = zato("start", qs.server_dir("server1"))
    assert "removed a stale pidfile" in proc.stdout and "server server1 started" in proc.stdout, proc.stdout
    new = qs.pid("server1")
    assert new != old and http_ok(qs.server_url("server1") + "/zato/ping")
    wait_for(lambda: not any(pid_alive(w) for w in workers), 30, what="the killed server's workers gone")
