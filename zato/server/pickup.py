"""The pickup directory of a server: a .py file dropped into SERVER_DIR/pickup is deployed
to the whole cluster and moved to pickup/processed/; a broken one is reported in the log
once (per modification) and left where it is. So is a user-config file (NAME.ini or
NAME.conf): every server's services then read it as self.config.NAME.

Zato's own hot-deploy folders, which its docs tell users to copy their modules to
(`cp *.py SERVER_DIR/pickup/incoming/services/`; Zato 2.0's `SERVER_DIR/pickup-dir/`) and Zato
3.2 took user config from (`pickup/incoming/user-conf/`), are read the same way; a file
deployed from one of them is moved to its own processed/ folder.

A file is read only once it has stayed unchanged (inode, size, modification and change times)
for [main] pickup_quiet seconds, so one still being written (cp of a large file, scp, an
editor's save) is not deployed half-written; one that changes while it is checked or stored is
left in the folder and deployed again once it is quiet. The folder is polled (no inotify: it
works on any file system); a writer that pauses longer than pickup_quiet mid-file can still be
read early, which writing elsewhere and renaming the file in (atomic) rules out.

This runs in the gunicorn arbiter, so it never executes a module itself: each file is loaded
in a child process (`zato.service.deploy.LoadCheck`) that the arbiter's loop polls without
blocking, and a module that does not finish loading within [main] deploy_timeout is killed
and reported as broken. One file is checked at a time. A module that could not be stored or
announced because the ODB or Redis did not answer is not broken: it is tried again after RETRY
seconds.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from zato.common.errors import CoordError, DeployError, ODBUnavailable, ZatoError
from zato.config.settings import ServerSettings
from zato.coord.client import connect
from zato.odb.engine import ODB
from zato.server.fork import odb_work
from zato.service.deploy import (
    ConfigResult,
    DeployResult,
    LoadCheck,
    deploy_user_config,
    deployed_sources,
    is_user_config,
    module_name_of,
    store,
    user_config_name,
)

logger = logging.getLogger("zato.pickup")

# A module's import that failed for a module not deployed (yet): DeployError's text.
MISSING_MODULE_RE = re.compile(
    r"fails on import: ModuleNotFoundError: No module named '([A-Za-z_][A-Za-z0-9_]*)'"
)

T = TypeVar("T")

RETRY = 10.0  # seconds before a file not stored or announced for want of the ODB or Redis is tried again


# What any write to a file changes: inode (a rename over it), size, modification time and the
# change time, which a writer cannot set back (cp -p and scp -p keep the source's mtime).
Signature = tuple[int, int, int, int]


def signature(info: os.stat_result) -> Signature:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class _Job:
    path: str
    seen: Signature  # the file as it was read
    source: str
    check: LoadCheck


# Zato's hot-deploy folders, inside the pickup folder: read as the pickup folder itself is.
ZATO_FOLDERS = (os.path.join("incoming", "services"), os.path.join("incoming", "user-conf"))
ZATO20_FOLDER = "pickup-dir"  # Zato 2.0's (`cp my_service.py server1/pickup-dir/`), beside pickup/


class PickupDir:
    def __init__(self, settings: ServerSettings, interval: float = 1.0):
        self.settings = settings
        self.interval = interval
        self.next_poll = 0.0
        self.reported: dict[str, Signature] = {}  # broken file -> the version already reported
        self.quiet_since: dict[str, tuple[Signature, float]] = {}  # file -> as last seen, since when
        self.retry_at: dict[str, float] = {}  # file not deployed for want of Redis or the ODB -> when
        self.missing: dict[str, str] = {}  # broken file -> the module it imports that is not deployed
        self.job: _Job | None = None  # the file being loaded in a child process

    @property
    def path(self) -> str:
        return self.settings.pickup_dir

    @property
    def folders(self) -> tuple[str, ...]:
        """The pickup folder, Zato's hot-deploy folders in it, and Zato 2.0's beside it."""
        zato20 = os.path.join(self.settings.path, ZATO20_FOLDER)
        return (self.path, *(os.path.join(self.path, sub) for sub in ZATO_FOLDERS), zato20)

    def tick(self) -> None:
        if self.job is not None:
            self._poll_job()
            return
        now = time.monotonic()
        if now < self.next_poll:
            return
        self.next_poll = now + self.interval
        paths: list[str] = []
        for folder in self.folders:
            try:
                names = sorted(
                    n
                    for n in os.listdir(folder)
                    if (n.endswith(".py") or is_user_config(n)) and not n.startswith(".")
                )
            except (FileNotFoundError, NotADirectoryError):
                continue
            paths.extend(os.path.join(folder, name) for name in names)
        # forget files that are gone
        for known in (self.reported, self.retry_at, self.missing, self.quiet_since):
            for gone in set(known).difference(paths):
                del known[gone]
        for path in paths:
            if self._start(path):
                return

    def close(self) -> None:
        """Kill a module still loading (the server is stopping)."""
        if self.job is not None:
            self.job.check.kill()
            self.job = None

    def _start(self, path: str) -> bool:
        """Start loading `path` in a child unless it is unreadable, already reported or still
        being written."""
        try:
            info = os.lstat(path)
        except OSError:
            return False  # gone meanwhile
        seen = signature(info)
        if self.reported.get(path) == seen or time.monotonic() < self.retry_at.get(path, 0.0):
            return False
        if not stat.S_ISREG(info.st_mode):  # a symlink could make us deploy any file we can read
            self._broken(path, seen, DeployError("not a regular file (symlinks are refused)"))
            return False
        if not self._quiet(path, seen):
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with open(fd, encoding="utf-8-sig" if is_user_config(path) else "utf-8") as f:
                source = f.read()
                if signature(os.fstat(f.fileno())) != seen:  # written to (or replaced) meanwhile
                    self.quiet_since.pop(path, None)
                    return False
            if is_user_config(path):
                return self._deploy_config(path, seen, source)
            others = self._cluster_work(
                lambda odb, _client, cluster: deployed_sources(odb, cluster), "reading the deployed modules"
            )
            self.job = _Job(
                path,
                seen,
                source,
                LoadCheck(
                    module_name_of(path),
                    source,
                    self.settings.deploy_timeout,
                    self.settings.import_budget,
                    others,
                ),
            )
        except (CoordError, ODBUnavailable) as e:  # the ODB is away: this file later
            self.retry_at[path] = time.monotonic() + RETRY
            logger.warning("pickup: %s not deployed yet: %s; trying again in %g s", path, e, RETRY)
            return False
        except (OSError, UnicodeDecodeError) as e:
            self._broken(path, seen, DeployError(f"cannot read it: {e}"))
            return False
        except ZatoError as e:  # e.g. a file name that is no module name
            self._broken(path, seen, e)
            return False
        return True

    def _quiet(self, path: str, seen: Signature) -> bool:
        """Whether `path` has been as `seen` for [main] pickup_quiet seconds, by this poll and
        the earlier ones (a file still being written keeps changing)."""
        now = time.monotonic()
        last = self.quiet_since.get(path)
        if last is None or last[0] != seen:
            self.quiet_since[path] = (seen, now)
            return self.settings.pickup_quiet == 0
        return now - last[1] >= self.settings.pickup_quiet

    def _changed(self, path: str, seen: Signature) -> bool:
        """Whether `path` was written to since it was read as `seen`; if so, it is deployed
        again once it is quiet. A file gone meanwhile has not changed."""
        try:
            now = signature(os.lstat(path))
        except OSError:
            return False
        if now == seen:
            return False
        self.quiet_since.pop(path, None)
        logger.info(
            "pickup: %s changed while it was deployed; deploying it again once it stays unchanged", path
        )
        return True

    def _poll_job(self) -> None:
        job = self.job
        assert job is not None  # noqa: S101 - for the type checker; the caller checked
        try:
            impls = job.check.poll()
            if impls is None:
                return  # still loading; the arbiter comes back within a second
            self.job = None
            if self._changed(job.path, job.seen):  # what was checked is not what is there now
                return
            result = self._store(module_name_of(job.path), job.source, impls)
        except (CoordError, ODBUnavailable) as e:  # the module is fine; Redis or the ODB is not: later
            self.job = None
            self.retry_at[job.path] = time.monotonic() + RETRY
            logger.warning("pickup: %s not deployed yet: %s; trying again in %g s", job.path, e, RETRY)
            return
        except ZatoError as e:
            self.job = None
            if not self._changed(job.path, job.seen):  # else a half-written file: not reported
                self._broken(job.path, job.seen, e)
            return
        self._processed(job.path, job.seen, result)

    def _deploy_config(self, path: str, seen: Signature, text: str) -> bool:
        """Store a user-config file (no child needed: it is read, never run)."""
        name = user_config_name(path)
        try:
            result = self._cluster_work(
                lambda odb, client, cluster: deploy_user_config(odb, client, cluster, name, text),
                f"storing user config {name}",
            )
        except (CoordError, ODBUnavailable) as e:
            self.retry_at[path] = time.monotonic() + RETRY
            logger.warning("pickup: %s not deployed yet: %s; trying again in %g s", path, e, RETRY)
            return False
        except ZatoError as e:
            self._broken(path, seen, e)
            return False
        self._processed(path, seen, result)
        return False  # nothing left running: the next file may start in this tick

    def _processed(self, path: str, seen: Signature, result: DeployResult | ConfigResult) -> None:
        self.reported.pop(path, None)
        self.retry_at.pop(path, None)
        self.missing.pop(path, None)
        if self._changed(path, seen):  # written to while it was stored: left here, deployed again
            return
        if isinstance(result, DeployResult):  # files that import this module: try them again
            for waiting in [p for p, name in self.missing.items() if name == result.module]:
                self.reported.pop(waiting, None)
                del self.missing[waiting]
        processed = os.path.join(os.path.dirname(path), "processed")
        os.makedirs(processed, mode=0o700, exist_ok=True)  # module sources: the owner's only
        os.replace(path, os.path.join(processed, os.path.basename(path)))
        logger.info("pickup: %s: %s", os.path.basename(path), result.describe())
        for warning in result.warnings():
            logger.warning("pickup: %s: %s", os.path.basename(path), warning)

    def _broken(self, path: str, seen: Signature, error: ZatoError) -> None:
        self.reported[path] = seen
        missing = MISSING_MODULE_RE.search(str(error))
        if missing:
            self.missing[path] = missing.group(1)
            wanted = missing.group(1) + ".py"
            if any(os.path.exists(os.path.join(f, wanted)) for f in self.folders):  # it comes next
                del self.reported[path]
                self.retry_at[path] = time.monotonic() + self.interval
                logger.info("pickup: %s waits for %s.py, in the folder too", path, missing.group(1))
                return
        logger.error("pickup: %s is broken, not deployed: %s", path, error)

    def _store(self, module: str, source: str, impls: dict[str, str]) -> DeployResult:
        return self._cluster_work(
            lambda odb, client, cluster: store(odb, client, cluster, module, source, impls),
            f"storing module {module}",
        )

    def _cluster_work(self, apply: Callable[[ODB, redis.Redis, str], T], what: str) -> T:
        """apply(odb, redis client, cluster) in the ODB's own process (zato.server.fork.odb_work),
        with both opened for it and closed after."""

        def work() -> T:
            odb, client = ODB(self.settings.odb_url), connect(self.settings.redis)
            try:
                return apply(odb, client, self.settings.cluster)
            finally:
                odb.dispose()
                client.close()

        return odb_work(self.settings.odb_url, work, what)
