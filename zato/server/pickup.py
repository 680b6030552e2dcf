"""The pickup directory of a server: a .py file dropped into SERVER_DIR/pickup is deployed
to the whole cluster and moved to pickup/processed/; a broken one is reported in the log
once (per modification) and left where it is. So is a user-config file (NAME.ini or
NAME.conf): every server's services then read it as self.config.NAME.

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


@dataclass
class _Job:
    path: str
    mtime: float
    source: str
    check: LoadCheck


class PickupDir:
    def __init__(self, settings: ServerSettings, interval: float = 1.0):
        self.settings = settings
        self.interval = interval
        self.next_poll = 0.0
        self.reported: dict[str, float] = {}  # broken file -> mtime already reported
        self.retry_at: dict[str, float] = {}  # file not deployed for want of Redis or the ODB -> when
        self.missing: dict[str, str] = {}  # broken file -> the module it imports that is not deployed
        self.job: _Job | None = None  # the file being loaded in a child process

    @property
    def path(self) -> str:
        return self.settings.pickup_dir

    def tick(self) -> None:
        if self.job is not None:
            self._poll_job()
            return
        now = time.monotonic()
        if now < self.next_poll:
            return
        self.next_poll = now + self.interval
        try:
            names = sorted(
                n
                for n in os.listdir(self.path)
                if (n.endswith(".py") or is_user_config(n)) and not n.startswith(".")
            )
        except FileNotFoundError:
            return
        paths = [os.path.join(self.path, name) for name in names]
        for known in (self.reported, self.retry_at, self.missing):  # forget files that are gone
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
        """Start loading `path` in a child unless it is unreadable or already reported."""
        try:
            info = os.lstat(path)
        except OSError:
            return False  # gone meanwhile
        mtime = info.st_mtime
        if self.reported.get(path) == mtime or time.monotonic() < self.retry_at.get(path, 0.0):
            return False
        if not stat.S_ISREG(info.st_mode):  # a symlink could make us deploy any file we can read
            self._broken(path, mtime, DeployError("not a regular file (symlinks are refused)"))
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with open(fd, encoding="utf-8-sig" if is_user_config(path) else "utf-8") as f:
                source = f.read()
            if is_user_config(path):
                return self._deploy_config(path, mtime, source)
            others = self._cluster_work(
                lambda odb, _client, cluster: deployed_sources(odb, cluster), "reading the deployed modules"
            )
            self.job = _Job(
                path,
                mtime,
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
            self._broken(path, mtime, DeployError(f"cannot read it: {e}"))
            return False
        except ZatoError as e:  # e.g. a file name that is no module name
            self._broken(path, mtime, e)
            return False
        return True

    def _poll_job(self) -> None:
        job = self.job
        assert job is not None  # noqa: S101 - for the type checker; the caller checked
        try:
            impls = job.check.poll()
            if impls is None:
                return  # still loading; the arbiter comes back within a second
            self.job = None
            result = self._store(module_name_of(job.path), job.source, impls)
        except (CoordError, ODBUnavailable) as e:  # the module is fine; Redis or the ODB is not: later
            self.job = None
            self.retry_at[job.path] = time.monotonic() + RETRY
            logger.warning("pickup: %s not deployed yet: %s; trying again in %g s", job.path, e, RETRY)
            return
        except ZatoError as e:
            self.job = None
            self._broken(job.path, job.mtime, e)
            return
        self._processed(job.path, result)

    def _deploy_config(self, path: str, mtime: float, text: str) -> bool:
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
            self._broken(path, mtime, e)
            return False
        self._processed(path, result)
        return False  # nothing left running: the next file may start in this tick

    def _processed(self, path: str, result: DeployResult | ConfigResult) -> None:
        self.reported.pop(path, None)
        self.retry_at.pop(path, None)
        self.missing.pop(path, None)
        if isinstance(result, DeployResult):  # files that import this module: try them again
            for waiting in [p for p, name in self.missing.items() if name == result.module]:
                self.reported.pop(waiting, None)
                del self.missing[waiting]
        processed = os.path.join(self.path, "processed")
        os.makedirs(processed, exist_ok=True)
        os.replace(path, os.path.join(processed, os.path.basename(path)))
        logger.info("pickup: %s: %s", os.path.basename(path), result.describe())
        for warning in result.warnings():
            logger.warning("pickup: %s: %s", os.path.basename(path), warning)

    def _broken(self, path: str, mtime: float, error: ZatoError) -> None:
        self.reported[path] = mtime
        missing = MISSING_MODULE_RE.search(str(error))
        if missing:
            self.missing[path] = missing.group(1)
            if os.path.exists(os.path.join(self.path, missing.group(1) + ".py")):  # it comes next
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
