"""The temporary folders of `haproxy -c` (zato.lb.haproxy.validate) hold a copy of haproxy.cfg,
stats password included. A controller killed during a check leaves its folder behind; the next
controller to start removes it, and never a folder a live controller is using."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from zato.lb.haproxy import CHECK_PREFIX, LEGACY_CHECK_AGE, remove_stale_checks


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def folder(where, name: str, age: float = 0.0) -> str:
    path = os.path.join(where, name)
    os.mkdir(path)
    with open(os.path.join(path, "haproxy.cfg"), "w") as f:
        f.write("userlist stats\n  user admin insecure-password secret\n")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_only_the_folders_of_gone_controllers_and_old_pidless_ones_are_removed(tmp_path):
    dead = folder(tmp_path, f"{CHECK_PREFIX}{dead_pid()}-abc123")
    live = folder(tmp_path, f"{CHECK_PREFIX}{os.getpid()}-def456")
    legacy_old = folder(tmp_path, f"{CHECK_PREFIX}k2j4h5g6", age=LEGACY_CHECK_AGE + 60)
    legacy_new = folder(tmp_path, f"{CHECK_PREFIX}q8w7e6r5")
    other = folder(tmp_path, "something-else-1")

    removed = remove_stale_checks(str(tmp_path))

    assert sorted(removed) == sorted([dead, legacy_old])
    assert not os.path.exists(dead) and not os.path.exists(legacy_old)
    assert os.path.isdir(live) and os.path.isdir(legacy_new) and os.path.isdir(other)


def test_a_file_or_a_link_named_like_a_check_folder_is_left_alone(tmp_path):
    target = folder(tmp_path, "elsewhere")
    os.symlink(target, os.path.join(tmp_path, f"{CHECK_PREFIX}{dead_pid()}-lnk000"))
    plain = os.path.join(tmp_path, f"{CHECK_PREFIX}{dead_pid()}-file00")
    open(plain, "w").close()

    assert remove_stale_checks(str(tmp_path)) == []
    assert os.path.isfile(os.path.join(target, "haproxy.cfg")) and os.path.isfile(plain)


def test_a_missing_folder_to_look_in_removes_nothing(tmp_path):
    assert remove_stale_checks(str(tmp_path / "absent")) == []
