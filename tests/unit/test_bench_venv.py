"""Every bench script needs the project's virtualenv: without one it says how to make it and
stops (exit 1), instead of a traceback from os.execv or a shell's bare "No such file"."""

from __future__ import annotations

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
# Executable files without a suffix: a directory is executable too (bench/__pycache__, left by a
# bench script run before `make test`, was taken for a script and failed the run)
SCRIPTS = sorted(
    name
    for name in os.listdir(BENCH)
    if os.path.isfile(os.path.join(BENCH, name))
    and os.access(os.path.join(BENCH, name), os.X_OK)
    and "." not in name
)


def test_every_bench_script_is_covered():
    assert {"amqp", "startup", "ping", "failover", "lb"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_without_a_virtualenv_a_bench_script_says_to_run_make_deps(script, tmp_path):
    missing = str(tmp_path / "no-venv")
    env = {**os.environ, "VENV": missing}
    argv = [os.path.join(BENCH, script), "--help"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "make deps" in r.stderr and missing in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "usage" not in r.stdout
