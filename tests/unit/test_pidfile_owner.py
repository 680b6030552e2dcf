"""A pidfile's pid counts as the component only while that process is the component: a pid
left by a stopped one that belongs to another process now (pid reuse, a reboot) is stale, and
`zato stop` must never signal it. Real processes, read through /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import wait_for
from zato.common.pidfile import Owner, read_pidfile, write_pidfile
from zato.lifecycle.process import check_not_running, stop_by_pidfile

# `python -m fake_component DIR`: what a component's command line looks like
MODULE = "import sys, time\nprint('up', flush=True)\ntime.sleep(60)\n"


@contextlib.contextmanager
def running(argv: list[str], **kwargs) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **kwargs)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def module_dir(tmp_path):
    (tmp_path / "fake_component.py").write_text(MODULE)
    return tmp_path


def component(module_dir, dir_arg: str, cwd: str) -> contextlib.AbstractContextManager[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(module_dir)}
    return running([sys.executable, "-m", "fake_component", dir_arg, "--fg"], env=env, cwd=cwd)


def test_the_component_itself_matches_by_module_and_directory(module_dir, tmp_path):
    comp = tmp_path / "server1"
    comp.mkdir()
    with component(module_dir, str(comp), str(tmp_path)) as proc:
        assert proc.stdout.readline() == "up\n"
        assert Owner("fake_component", str(comp)).matches(proc.pid) is True
        assert Owner("fake_component", str(tmp_path / "server2")).matches(proc.pid) is False
        assert Owner("zato.server.main", str(comp)).matches(proc.pid) is False
    with component(module_dir, "server1", str(tmp_path)) as proc:  # relative to its working directory
        assert proc.stdout.readline() == "up\n"
        assert Owner("fake_component", str(comp)).matches(proc.pid) is True


def test_a_reused_pid_is_stale_never_signalled_and_its_pidfile_removed(tmp_path):
    pidfile = str(tmp_path / "pidfile")
    owner = Owner("zato.server.main", str(tmp_path), ("gunicorn: master [zato-c1-server1]",))
    with running(["sleep", "60"]) as other:
        write_pidfile(pidfile, other.pid)
        status = read_pidfile(pidfile, owner)
        assert status.stale and not status.alive and status.other == "sleep 60"
        assert read_pidfile(pidfile).alive  # without an owner: only whether the pid runs
        said = check_not_running(pidfile, "server server1", owner)
        assert (
            said == f"server server1: removed a stale pidfile {pidfile}"
            f" (pid {other.pid} is another process now: sleep 60)"
        )
        assert not os.path.exists(pidfile)
        write_pidfile(pidfile, other.pid)
        result = stop_by_pidfile(pidfile, 5, owner)
        assert result.describe("server server1") == (
            f"server server1 is not running; removed a stale pidfile (pid {other.pid} is another process now,"
            " not signalled: sleep 60)"
        )
        assert other.poll() is None and not os.path.exists(pidfile)


def test_a_process_title_counts_as_the_component(tmp_path):
    title = "gunicorn: master [zato-c1-server1]"
    code = (
        f"import setproctitle, time\nsetproctitle.setproctitle({title!r})\n"
        "print('up', flush=True)\ntime.sleep(60)\n"
    )
    with running([sys.executable, "-c", code]) as proc:
        assert proc.stdout.readline() == "up\n"
        wait_for(
            lambda: Owner("zato.server.main", str(tmp_path), (title,)).matches(proc.pid),
            timeout=5,
            what="the title",
        )
        assert (
            Owner("zato.server.main", str(tmp_path), ("gunicorn: master [zato-c1-server2]",)).matches(
                proc.pid
            )
            is False
        )
