"""bench/dashboard: how soon an open dashboard page learns of a change in the cluster.

A change: a member joins (its membership key appears in Redis), then leaves (the key goes).
Two sides, alternating every round, each timing the same changes from the moment the key is
written or deleted:
  - dashboard: an SSE client on GET /api/events of a real dashboard process (what the page's
    EventSource receives: the snapshot refreshed every 0.5 s, pushed on change);
  - baseline:  a client polling Redis itself (membership.live_servers) every 0.5 s, the same
    period, with no HTTP and no snapshot in between: the floor for this refresh period.
Prints each side's p50 / p90 / max in ms over all changes, and `uptime` (the machine may be
shared). Target: the page within a second of the change."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import requests  # noqa: E402

from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, free_port_block  # noqa: E402
from zato.config.settings import RedisSettings, load_server_settings  # noqa: E402
from zato.coord import membership  # noqa: E402
from zato.coord.client import connect  # noqa: E402
from zato.coord.signing import member_key  # noqa: E402

PERIOD = 0.5
ZATO = [sys.executable, "-m", "zato"]


class Watcher(threading.Thread):
    """Keeps the set of live names it last learnt; wait() returns when `name` is (not) in it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.present: set[str] = set()
        self.changed = threading.Condition()

    def learnt(self, names: set[str]) -> None:
        with self.changed:
            self.present = names
            self.changed.notify_all()

    def wait(self, name: str, present: bool, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while (name in self.present) != present:
                if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"{name} never {'appeared' if present else 'went'}")
        return time.monotonic()


class SSEWatcher(Watcher):
    """The dashboard side: reads GET /api/events as the page's EventSource does."""

    def __init__(self, session: requests.Session, url: str):
        super().__init__()
        self.session, self.url = session, url

    def run(self) -> None:
        try:
            with self.session.get(self.url + "api/events", stream=True, timeout=(5, 60)) as r:
                for line in r.iter_lines(decode_unicode=True):
                    if line and line.startswith("data: "):
                        doc = json.loads(line[6:])
                        self.learnt({s["name"] for s in doc.get("servers", []) if s.get("live")})
        except requests.RequestException:
            return  # the dashboard stopped at the end of the run


class PollWatcher(Watcher):
    """The baseline: polls Redis itself every PERIOD, on its own clock like the dashboard."""

    def __init__(self, client, cluster: str):  # noqa: ANN001
        super().__init__()
        self.client, self.cluster = client, cluster

    def run(self) -> None:
        while True:
            self.learnt({m.name for m in membership.live_servers(self.client, self.cluster, None)})
            time.sleep(PERIOD)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10, help="rounds: a join and a leave per side each")
    args = ap.parse_args()
    cluster = cluster_name("bd")
    base = tempfile.mkdtemp(prefix="zato-bench-dash-")
    qs, port = os.path.join(base, "qs"), free_port()
    subprocess.run(
        ZATO
        + [
            "quickstart",
            "create",
            qs,
            "--cluster",
            cluster,
            "--servers",
            "1",
            "--base-port",
            str(free_port_block(1)),
            "--lb-port",
            str(free_port()),
            "--dashboard-port",
            str(port),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(ZATO + ["start", os.path.join(qs, "dashboard")], check=True, capture_output=True)
    client = connect(RedisSettings(REDIS_URL))
    key = member_key(load_server_settings(os.path.join(qs, "server1")).cluster_secret, cluster)
    try:
        url = f"http://127.0.0.1:{port}/"
        password = load_server_settings(os.path.join(qs, "server1")).admin_password
        session = requests.Session()
        session.post(url + "login", data={"username": "admin", "password": password}, timeout=10)
        watchers = {"dashboard": SSEWatcher(session, url), "baseline": PollWatcher(client, cluster)}
        for w in watchers.values():
            w.start()
        sides: dict[str, list[float]] = {"dashboard": [], "baseline": []}
        for i in range(args.rounds):
            for side in ("dashboard", "baseline") if i % 2 == 0 else ("baseline", "dashboard"):
                name = f"bench-{side}-{i}"
                member = membership.Member(name, "127.0.0.1", 1, os.getpid(), time.time())
                for present in (True, False):
                    time.sleep(random.uniform(0, PERIOD))  # a change at any phase of either side's period
                    t0 = time.monotonic()
                    if present:
                        membership.announce(client, cluster, member, 30, key)
                    else:
                        membership.withdraw(client, cluster, name)
                    sides[side].append((watchers[side].wait(name, present) - t0) * 1000)
        for side, values in sides.items():
            values.sort()
            p90 = values[int(len(values) * 0.9) - 1]
            print(
                f"{side:9} changes={len(values)} p50={statistics.median(values):.0f} ms "
                f"p90={p90:.0f} ms max={values[-1]:.0f} ms"
            )
        print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    finally:
        subprocess.run(ZATO + ["stop", os.path.join(qs, "dashboard")], capture_output=True)
        cleanup_redis(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())
