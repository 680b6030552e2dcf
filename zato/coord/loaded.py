"""Which version of a deployed module each worker loaded, for `zato deploy --wait`.

`zato deploy` returns once the ODB holds the module and the deploy event went out; the
servers load it afterwards, one worker of the cluster at a time (a hot deploy, zato.server.
worker: 0.1-0.2 s for the 4 workers of a quickstart and a small module here; longer for a
module that imports much). A script that deployed and then called a service at once met 404
"no such service", or the older version. Each worker now notes, in one hash per module, the
version it loaded (or why it could not), and `wait()` reads them until every live worker has
the version deployed.

A worker's notes leave each hash when it is forgotten: at its clean stop, and when a reaper
finds it dead (zato.coord.async_invoke). Before, a note stayed as long as the hash, which every
note kept for another day: a field for every worker that ever started, one more per module at
each server restart, kill or recycled worker.

The live workers are those of the invoke_async set (each worker joins it as it starts, before
its first load) whose servers are live members. A worker that died stays in that set until a
reaper sees it gone (zato.server.async_worker.REAP_EVERY); `wait()` says which workers it
still waits for, so such a moment is named, not silent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from zato.common import jsonenc
from zato.coord.async_invoke import worker_id
from zato.coord.client import translate
from zato.coord.keys import Keys
from zato.coord.membership import live_servers

KEEP = 86400.0  # seconds a module's hash lives after its last note (a module no worker loads again)
POLL = 0.1  # seconds between reads while waiting
MAX_ERROR = 500  # characters of a load error kept


@dataclass(frozen=True)
class Loaded:
    version: int
    error: str | None = None  # why this worker could not load that version


def note(client: redis.Redis, cluster: str, module: str, server: str, pid: int, load: Loaded) -> None:
    """This worker's load of `module` (CoordError if Redis cannot take it)."""
    key = Keys(cluster).deploy_loaded(module)
    doc = {"version": load.version, "error": load.error[:MAX_ERROR] if load.error else None}
    with translate("noting the module loaded", key=key):
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, worker_id(server, pid), json.dumps(doc))
        pipe.pexpire(key, int(KEEP * 1000))
        pipe.execute()


def forget(client: redis.Redis, cluster: str, module: str) -> None:
    """The module was undeployed: its notes go with it."""
    key = Keys(cluster).deploy_loaded(module)
    with translate("forgetting the module's loads", key=key):
        client.delete(key)


def drop(client: redis.Redis, cluster: str, modules: Iterable[str], workers: Iterable[str]) -> None:
    """The notes of `workers` (stopped, or found dead) leave the hash of each of `modules`
    (CoordError if Redis cannot take it)."""
    gone, names = sorted(workers), sorted(modules)
    if not gone or not names:
        return
    keys = Keys(cluster)
    with translate("forgetting the loads of workers gone"):
        pipe = client.pipeline(transaction=False)
        for module in names:
            pipe.hdel(keys.deploy_loaded(module), *gone)
        pipe.execute()


def read(client: redis.Redis, cluster: str, module: str) -> dict[str, Loaded]:
    """Each worker's note (notes that are not this project's are left out)."""
    key = Keys(cluster).deploy_loaded(module)
    with translate("reading the module's loads", key=key):
        raw = client.hgetall(key)
    out = {}
    for field, value in raw.items():
        try:
            doc = jsonenc.loads(value)
            version, error = doc["version"], doc.get("error")
        except (ValueError, TypeError, KeyError):
            continue
        if isinstance(version, int) and (error is None or isinstance(error, str)):
            worker = field.decode("utf-8", "replace") if isinstance(field, bytes) else str(field)
            out[worker] = Loaded(version, error)
    return out


def live_workers(client: redis.Redis, cluster: str, key: bytes) -> list[str]:
    """The workers (server:pid) of the live servers, as the invoke_async set knows them."""
    servers = {m.name for m in live_servers(client, cluster, key)}
    with translate("reading the cluster's workers"):
        members = client.smembers(Keys(cluster).async_workers)
    names = [m.decode("utf-8", "replace") if isinstance(m, bytes) else str(m) for m in members]
    return sorted(w for w in names if w.rpartition(":")[0] in servers)


@dataclass(frozen=True)
class Waited:
    workers: list[str]  # the live workers at the end
    missing: list[str]  # those without the version (at the end of a timeout)
    failed: dict[str, str]  # worker -> why it could not load the version
    seconds: float

    @property
    def everywhere(self) -> bool:
        """Every live worker (one at least) loaded the version."""
        return bool(self.workers) and not self.missing and not self.failed


def wait(  # noqa: PLR0913
    client: redis.Redis,
    cluster: str,
    key: bytes,
    module: str,
    version: int,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited:
    """Until every live worker noted `version` of `module` (or a later one), one noted that it
    could not load it, or `timeout` seconds passed; no live worker: at once, workers []."""
    start = clock()
    while True:
        workers = live_workers(client, cluster, key)
        notes = read(client, cluster, module)
        failed = {
            w: n.error
            for w in workers
            if (n := notes.get(w)) and n.version == version and n.error is not None
        }
        missing = [w for w in workers if w not in notes or notes[w].version < version]
        seconds = clock() - start
        if not workers or failed or not missing or seconds >= timeout:
            return Waited(workers, missing, failed, seconds)
        sleep(POLL)
