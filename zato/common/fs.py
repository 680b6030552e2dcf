"""Filesystem helpers: atomic writes, free space."""

from __future__ import annotations

import contextlib
import os
import tempfile


def atomic_write(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so readers see the old or the new file, never a half one."""
    folder = os.path.dirname(os.path.abspath(path))
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def free_bytes(path: str) -> int | None:
    """Bytes this process may still write on the filesystem of `path` (root may use the
    blocks reserved for it); None when it cannot be told."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def readable_by_others(path: str) -> str | None:
    """Who besides its owner can read `path` (a file holding secrets) on this host, as a phrase:
    its mode lets its group or everyone read it and every folder above it lets them through.
    None when no one else can, or when it cannot be told (the file is not there)."""
    import stat

    try:
        mode = os.stat(path).st_mode
        folders = []
        folder = os.path.dirname(os.path.abspath(path))
        while True:
            folders.append(os.stat(folder).st_mode)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    except OSError:
        return None
    who = [
        name
        for name, read, through in (
            ("its group", stat.S_IRGRP, stat.S_IXGRP),
            ("every user", stat.S_IROTH, stat.S_IXOTH),
        )
        if mode & read and all(m & through for m in folders)
    ]
    return f"{' and '.join(who)} (mode {stat.S_IMODE(mode):04o})" if who else None
