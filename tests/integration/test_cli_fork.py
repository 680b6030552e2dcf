"""The tests' `zato` calls forked from a zygote (tests/cli_fork.py) give what a fresh
`python -m zato` gives: the same output, errors and exit status, in the call's cwd and
environment, and a call that overruns its timeout is killed by its pid."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import cluster_name, zato
from zato.cli.main import COMMANDS


def fresh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zato", *args], capture_output=True, text=True, timeout=60, **kw
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("conn", "lisst", "/nonexistent"),  # argparse's usage and error, exit 2
        ("conn", "list", "/nonexistent"),  # the CLI's own one-line error, exit 1
        *[(command, "--help") for command in COMMANDS],
        ("stop", "/nonexistent"),
    ],
)
def test_a_forked_call_says_and_exits_as_a_fresh_process(args):
    forked, alone = zato(*args, check=False), fresh(*args)
    assert (forked.returncode, forked.stdout, forked.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert alone.stdout or alone.stderr


def test_a_forked_call_runs_in_its_cwd_and_the_tests_environment(tmp_path, monkeypatch):
    name = cluster_name("fork")
    made = zato("quickstart", "create", "qs", "--servers", "1", "--cluster", name, cwd=str(tmp_path))
    assert made.returncode == 0 and (tmp_path / "qs" / "server1" / "config" / "server.conf").is_file()
    monkeypatch.setenv("NO_COLOR", "1")
    seen = zato("info", "qs", "--json", cwd=str(tmp_path), check=False)
    assert (seen.returncode, seen.stdout) == (lambda p: (p.returncode, p.stdout))(
        fresh("info", "qs", "--json", cwd=str(tmp_path))
    )
    assert name in seen.stdout


def test_a_call_over_its_timeout_is_killed_and_the_next_call_answers(tmp_path):
    name = cluster_name("fork")
    zato("quickstart", "create", str(tmp_path / "qs"), "--servers", "1", "--cluster", name)
    module = tmp_path / "slow_import.py"
    module.write_text("import time\ntime.sleep(30)\n")  # deploy imports it first: its 2 s budget
    with pytest.raises(subprocess.TimeoutExpired):
        zato("deploy", str(tmp_path / "qs"), str(module), timeout=0.5)
    later = zato("deploy", "--help")
    assert later.stdout == fresh("deploy", "--help").stdout and "deploy" in later.stdout
