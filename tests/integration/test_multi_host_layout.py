"""A server laid out as docs/multi-host.md lays it out: in a folder not named after it
(/opt/zato/server on every host), binding 0.0.0.0 and announcing its host's address."""

from __future__ import annotations

import contextlib
import os

from tests.support import free_port, zato
from zato.common.pidfile import read_pidfile


def _app1(qs, tmp_path) -> tuple[str, int]:
    """app1 of the quickstart's cluster, in .../opt/zato/server (the folder every host uses)."""
    path, port = str(tmp_path / "app1" / "opt" / "zato" / "server"), free_port()
    zato("create", "server", path, "--join", qs.server_dir("server1"), "--host", "0.0.0.0",
         "--announce-host", "127.0.0.1", "--port", str(port), "--name", "app1")  # fmt: skip
    return path, port


def test_zato_stop_names_the_server_it_stopped_not_its_folder(quickstart, tmp_path):
    """Before: `zato start` said `server app1 started`, and `zato stop` of the same folder
    `server server stopped` (the folder's name), on each of the hosts alike."""
    qs = quickstart(servers=1, lb=False)
    path, _ = _app1(qs, tmp_path)
    try:
        assert zato("start", path).stdout.splitlines()[-1].startswith("server app1 started (pid ")
        pid = read_pidfile(os.path.join(path, "pidfile")).pid
        assert zato("stop", path).stdout == f"server app1 stopped (pid {pid})\n"
    finally:
        with contextlib.suppress(AssertionError):
            zato("stop", path)

