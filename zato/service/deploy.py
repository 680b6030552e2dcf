"""Hot deploy: validate a module, store it in the ODB, tell every worker (Redis event).

Used by `zato deploy`, the admin API and each server's pickup directory.

Validating means executing the module, and a module may block or crash at import, so it is
loaded in a short-lived child process (`python -m zato.service.deploy MODULE`, source on
stdin, JSON result on stdout) that is killed when it does not finish in time: the process
that deploys (an arbiter, a worker, the CLI) never runs the module itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zato.common.errors import CoordError, DeployError
from zato.lifecycle.entry import parent_gone
from zato.service.store import (
    ServiceStore,
    check_module_name,
    check_no_json_schema,
    check_usable_name,
    load_source,
)
from zato.service.user_config import SUFFIXES

if TYPE_CHECKING:  # kept out of the child's imports: it starts for every deploy
    import redis

    from zato.odb.engine import ODB

logger = logging.getLogger(__name__)

LOAD_TIMEOUT = 10.0  # seconds a module may take to load when it is validated
IMPORT_BUDGET = 2.0  # seconds of import time a module may use, measured in the validation child
MAX_PARALLEL = 2  # validation processes one process (a worker, the CLI) runs at once; others queue
_slots = threading.BoundedSemaphore(MAX_PARALLEL)


class _OverBudget(BaseException):
    """Raised in the validation child when the module's import runs past its budget (a
    BaseException, so the module's own `except Exception` cannot swallow it)."""


@dataclass(frozen=True)
class DeployResult:
    module: str
    version: int
    changed: bool
    services: tuple[str, ...]
    users: tuple[str, ...] = ()  # channels invoking a service this version no longer defines

    def describe(self) -> str:
        what = f"module {self.module} version {self.version}"
        none = "no services (code for other modules to import, or before_add_to_store said no)"
        names = ", ".join(self.services) or none
        if not self.changed:
            return f"{what} is already deployed (unchanged): {names}"
        return f"deployed {what}: {names}"

    def warnings(self) -> list[str]:
        return _left_behind(self.users, self.module, "no longer defines")


def module_name_of(path: str) -> str:
    """`/x/my_api.py` -> `my_api`."""
    return os.path.splitext(os.path.basename(path))[0]


class LoadCheck:
    """One module loaded in a child process to learn its services ({name: "module.Class"}).

    poll() never blocks (for the arbiter's loop), wait() does (for the CLI and the admin API).
    Either raises DeployError when the module is bad, crashed its process or ran out of time.
    """

    def __init__(
        self,
        module: str,
        source: str,
        timeout: float = LOAD_TIMEOUT,
        budget: float = IMPORT_BUDGET,
        others: dict[str, str] | None = None,
    ):
        """others: the sources of the other deployed modules, which this one may import."""
        check_module_name(module)
        self.module, self.timeout = module, timeout
        self.deadline = time.monotonic() + timeout
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close(); files, not pipes: nothing to drain while polling
        given = {"source": source, "others": {k: v for k, v in (others or {}).items() if k != module}}
        with tempfile.TemporaryFile() as source_file:
            source_file.write(json.dumps(given).encode("utf-8"))
            source_file.seek(0)
            # -P -s: nothing from the caller's current folder or user site (a json.py there)
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-s", "-m", __name__, module, str(os.getpid()), repr(budget)],
                stdin=source_file,
                stdout=self._out,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # so a timeout kills whatever the module started too
            )

    def poll(self) -> dict[str, str] | None:
        """The services once the child has finished; None while it is still loading."""
        if self.proc.poll() is None:
            if time.monotonic() < self.deadline:
                return None
            self.kill()
            raise DeployError(
                f"module {self.module}: did not finish loading within {self.timeout:g} s "
                "(zato deploy --timeout, or [main] deploy_timeout in server.conf, gives it longer)"
            )
        return self._result()

    def wait(self) -> dict[str, str]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(max(0.0, self.deadline - time.monotonic()))
        result = self.poll()
        assert result is not None  # noqa: S101 - finished, or killed and raised
        return result

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL does not wait for us
            self.proc.wait(5)
        self._out.close()

    def _result(self) -> dict[str, str]:
        self._out.seek(0)
        raw = self._out.read()
        self._out.close()
        try:
            answer = json.loads(raw)
        except ValueError:  # killed, or exited from inside the module (status may be lost)
            code = self.proc.returncode
            raise DeployError(
                f"module {self.module}: its loading process ended without a result (exit code {code})"
            ) from None
        if "error" in answer:
            raise DeployError(str(answer["error"]))
        return {str(k): str(v) for k, v in answer["services"].items()}


def store(
    odb: ODB, client: redis.Redis, cluster: str, module: str, source: str, impls: dict[str, str]
) -> DeployResult:
    """Store a validated module and publish the deploy event; ODBError/CoordError on failure.
    An unchanged module is announced again (workers that have it skip it), so deploying once
    more reaches servers an earlier announcement failed to reach."""
    from zato.coord import events
    from zato.odb import api as odb_api

    events.reachable(client, cluster)  # an unreachable Redis changes nothing
    before = {name for name, owner in odb_api.list_services(odb, cluster).items() if owner == module}
    version, changed = odb_api.store_module(odb, cluster, module, source, impls)
    event = {"kind": "deploy", "module": module, "version": version}
    events.announce(client, cluster, event, f"module {module} version {version}")
    users: tuple[str, ...] = ()
    if changed:
        logger.info("deployed module %s version %d: %s", module, version, ", ".join(sorted(impls)))
        dropped = before - set(impls)
        users = tuple(odb_api.users_of_services(odb, cluster, dropped)) if dropped else ()
    return DeployResult(module, version, changed, tuple(sorted(impls)), users)


def deploy(
    odb: ODB,
    client: redis.Redis,
    cluster: str,
    module: str,
    source: str,
    timeout: float = LOAD_TIMEOUT,
    budget: float = IMPORT_BUDGET,
) -> DeployResult:
    """DeployError if the module is bad or does not load within `timeout` seconds (or its
    import takes longer than `budget`); ODBError/CoordError if storing or publishing fails.
    At most MAX_PARALLEL validations run at once in this process; the others wait their turn
    (as long as `timeout`), so a burst of deploys does not start a process per request."""
    if not _slots.acquire(timeout=timeout):
        raise DeployError(
            f"module {module}: {MAX_PARALLEL} other deploys still loading after {timeout:g} s; retry"
        )
    try:
        impls = LoadCheck(module, source, timeout, budget, deployed_sources(odb, cluster)).wait()
    finally:
        _slots.release()
    return store(odb, client, cluster, module, source, impls)


def deployed_sources(odb: ODB, cluster: str) -> dict[str, str]:
    """Every deployed module's source: what a module being checked may import."""
    from zato.odb import api as odb_api

    return {m.name: m.source for m in odb_api.list_modules(odb, cluster)}


@dataclass(frozen=True)
class UndeployResult:
    module: str
    services: tuple[str, ...]  # the services it defined, gone from every worker
    users: tuple[str, ...]  # channels still naming one of them ("HTTP channel NAME", ...)

    def describe(self) -> str:
        return f"undeployed module {self.module}: {', '.join(self.services) or 'no services'}"

    def warnings(self) -> list[str]:
        return _left_behind(self.users, self.module, "defined")


def _left_behind(users: tuple[str, ...], module: str, how: str) -> list[str]:
    """A warning naming the channels that invoke a service module `module` {how}."""
    if not users:
        return []
    one = len(users) == 1
    return [
        f"{', '.join(users)} still {'invokes' if one else 'invoke'} a service that module {module} {how}: "
        f"{'it fails' if one else 'they fail'} until a module defining it is deployed"
    ]


def undeploy(odb: ODB, client: redis.Redis, cluster: str, module: str) -> UndeployResult:
    """Remove a deployed module and its services from the ODB and tell every worker to drop
    them; DeployError if no such module is deployed, ODBError/CoordError on failure."""
    from zato.coord import events, loaded
    from zato.odb import api as odb_api

    events.reachable(client, cluster)  # an unreachable Redis changes nothing
    services = odb_api.delete_module(odb, cluster, module)
    if services is None:
        deployed = ", ".join(m.name for m in odb_api.list_modules(odb, cluster)) or "none"
        raise DeployError(
            f"no module named {module!r} is deployed in cluster {cluster} (deployed: {deployed})"
        )
    events.announce(
        client, cluster, {"kind": "undeploy", "module": module}, f"the undeployment of module {module}"
    )
    try:  # a module deployed again under this name starts afresh (`zato deploy --wait`)
        loaded.forget(client, cluster, module)
    except CoordError as e:  # undeployed all the same; a --wait on it later may end early
        logger.warning("undeployed module %s, but its workers' load notes stay: %s", module, e)
    logger.info("undeployed module %s: %s", module, ", ".join(services))
    return UndeployResult(module, tuple(services), tuple(odb_api.users_of_services(odb, cluster, services)))


def _over_budget(signum: int, frame: object) -> None:
    raise _OverBudget


def _child(module: str, parent: int, budget: float) -> int:
    """In the child: load the source from stdin, print {"services": ...} or {"error": ...}.
    The import is timed here (SIGALRM after `budget` seconds interrupts it)."""
    if parent_gone(parent):  # SIGKILL when the deploying process goes, so a module that blocks
        os._exit(1)  # is not left running after, say, the server stopped; it went before prctl
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the module prints must not mix with the answer
    given = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    source, others = given["source"], given["others"]
    ServiceStore().know({name: (text, f"deployed:{name}") for name, text in others.items()})
    signal.signal(signal.SIGALRM, _over_budget)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        found = load_source(module, source)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for name, cls in found.items():
            check_usable_name(module, name)
            check_no_json_schema(module, name, cls)
        answer: dict = {"services": {name: f"{module}.{cls.__name__}" for name, cls in found.items()}}
    except DeployError as e:
        answer = {"error": str(e)}
    except _OverBudget:
        answer = {
            "error": f"module {module}: its import took more than {budget:g} s (the import budget; "
            "a module that needs longer: raise [main] import_budget in every server's server.conf)"
        }
    result.write(json.dumps(answer))
    result.flush()
    return 0


# User-config files (services' self.config.NAME) deployed to the whole cluster

USER_CONFIG_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,199}$")


def is_user_config(path: str) -> bool:
    return path.lower().endswith(SUFFIXES)


@dataclass(frozen=True)
class ConfigResult:
    said: str

    def describe(self) -> str:
        return self.said

    def warnings(self) -> list[str]:
        return []


def user_config_name(path: str, name: str | None = None) -> str:
    """`/x/airports.ini` -> `airports` (or `name` if given), or DeployError if that cannot name
    self.config.NAME."""
    name = name or os.path.splitext(os.path.basename(path))[0]
    if not USER_CONFIG_NAME_RE.match(name):
        raise DeployError(
            f"{path}: {name!r} cannot name a user-config file (up to 200 letters, digits, _ and -, "
            "not starting with a digit or -)"
        )
    return name


def deploy_user_config(odb: ODB, client: redis.Redis, cluster: str, name: str, text: str) -> ConfigResult:
    """Check and store a user-config file, and tell every server; DeployError if it does not
    parse (naming the line), ODBError/CoordError if storing or publishing fails."""
    from zato.coord import events
    from zato.odb import api as odb_api
    from zato.service.user_config import parse_text

    try:
        parse_text(text, name)
    except ValueError as e:
        raise DeployError(f"user config {name}: {e}") from None
    events.reachable(client, cluster)  # an unreachable Redis changes nothing
    changed = odb_api.store_user_config(odb, cluster, name, text)
    events.announce(client, cluster, {"kind": "user-config", "name": name}, f"user config {name}")
    if changed:
        logger.info("deployed user config %s", name)
    how = "deployed" if changed else "already deployed (unchanged)"
    return ConfigResult(f"user config {name} {how}: every server reads it as self.config.{name}")


def undeploy_user_config(odb: ODB, client: redis.Redis, cluster: str, name: str) -> ConfigResult:
    from zato.coord import events
    from zato.odb import api as odb_api

    events.reachable(client, cluster)
    if not odb_api.delete_user_config(odb, cluster, name):
        raise DeployError(f"no user config {name} is deployed to cluster {cluster}")
    events.announce(client, cluster, {"kind": "user-config", "name": name}, f"user config {name}")
    logger.info("undeployed user config %s", name)
    return ConfigResult(f"undeployed user config {name} from every server")


if __name__ == "__main__":
    sys.exit(
        _child(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else IMPORT_BUDGET)
    )
