"""A new user's first steps: `pip install` of the project into a fresh virtualenv, no extras
(so nothing that pytest or the test extra bring along), then `zato quickstart create` (its
config files rendered from the templates installed with the package) and `zato start` of
one server, which must answer /zato/ping."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, free_port_block, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = ("setup.py", "pyproject.toml", "zato", "etc")
# Wheels of the project's dependencies, fetched once per setup.py and Python version through
# pip's ordinary index (and its cache); later runs install from here without the index, in
# about half the time. (Wheels are built per Python version: gevent's for 3.12 do not install
# on 3.13.)
WHEELHOUSE = os.environ.get("ZATO_TEST_WHEELHOUSE", os.path.expanduser("~/.cache/zato-ha/wheelhouse"))


def run(*argv: str, timeout: float = 240, cwd: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> str:
    """A fresh virtualenv with the project installed from a copy of its sources (the build
    writes into the source tree, which must not be this checkout)."""
    base = tmp_path_factory.mktemp("plain")
    src = base / "src"
    for name in SHIPPED:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(path):
            os.makedirs(src, exist_ok=True)
            shutil.copy(path, src / name)
    env_dir = str(base / "venv")
    run(sys.executable, "-m", "venv", env_dir)
    pip = os.path.join(env_dir, "bin", "pip")
    with open(os.path.join(ROOT, "setup.py"), "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    wheels = os.path.join(WHEELHOUSE, f"{key}-{sys.implementation.cache_tag}")
    if not os.path.isdir(wheels):
        run(pip, "download", "--quiet", "--dest", wheels + ".part", str(src), "setuptools>=61", "wheel")
        os.replace(wheels + ".part", wheels)
    run(pip, "install", "--quiet", "--no-index", "--find-links", wheels, str(src))
    return env_dir


def test_a_plain_install_starts_a_server(venv, tmp_path):
    zato = os.path.join(venv, "bin", "zato")
    cluster = cluster_name("plain")
    path = str(tmp_path / "qs")
    port = free_port_block(1)
    run(
        zato,
        "quickstart",
        "create",
        path,
        "--servers",
        "1",
        "--workers",
        "1",
        "--cluster",
        cluster,
        "--redis",
        REDIS_URL,
        "--base-port",
        str(port),
        "--lb-port",
        str(free_port()),
    )
    server_dir = os.path.join(path, "server1")
    with open(os.path.join(server_dir, "config", "server.conf")) as f:
        assert "# [lease]" in f.read()  # from etc/server.conf as installed, not from a checkout
    units = run(
        os.path.join(venv, "bin", "python"),
        "-c",
        "from importlib import resources; print(sorted(p.name for p in "
        "resources.files('zato.etc').joinpath('systemd').iterdir()))",
        cwd=str(tmp_path),
    ).stdout
    assert "zato-server@.service" in units and "zato-load-balancer@.service" in units
    try:
        out = run(zato, "start", server_dir, timeout=90).stdout
        assert "server server1 started" in out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/zato/ping", timeout=10) as resp:
            assert json.load(resp)["zato_env"]["result"] == "ZATO_OK"
        assert "server server1 stopped" in run(zato, "stop", server_dir, timeout=90).stdout
        wait_for(lambda: not os.path.exists(os.path.join(server_dir, "pidfile")), what="pidfile removed")
    finally:
        subprocess.run([zato, "stop", server_dir], capture_output=True, timeout=90)
        cleanup_redis(cluster)
