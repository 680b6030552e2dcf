"""Hot deploy: validate a module, store it in the ODB, tell every worker (Redis event).

Used by `zato deploy`, the admin API and each server's pickup directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import redis

from zato.coord import events
from zato.odb import api as odb_api
from zato.odb.engine import ODB
from zato.service.store import load_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployResult:
    module: str
    version: int
    changed: bool
    services: tuple[str, ...]

    def describe(self) -> str:
        what = f"module {self.module} version {self.version}"
        names = ", ".join(self.services)
        if not self.changed:
            return f"{what} is already deployed (unchanged): {names}"
        return f"deployed {what}: {names}"


def module_name_of(path: str) -> str:
    """`/x/my_api.py` -> `my_api`."""
    return os.path.splitext(os.path.basename(path))[0]


def deploy(odb: ODB, client: redis.Redis, cluster: str, module: str, source: str) -> DeployResult:
    """DeployError if the module is bad; ODBError/CoordError if storing or publishing fails."""
    found = load_source(module, source)
    impls = {name: f"{module}.{cls.__name__}" for name, cls in found.items()}
    version, changed = odb_api.store_module(odb, cluster, module, source, impls)
    if changed:
        events.publish(client, cluster, {"kind": "deploy", "module": module, "version": version})
        logger.info("deployed module %s version %d: %s", module, version, ", ".join(sorted(found)))
    return DeployResult(module, version, changed, tuple(sorted(found)))
