"""bench/ping: requests/s and p50/p99 latency of /zato/ping on one Zato server against two
baselines on gunicorn + gevent with the same worker count, each answering the same bytes
(Zato's ping JSON with a fresh CID, Content-Type and X-Zato-CID):
  - plain:  a plain WSGI callable (no framework: what gunicorn+gevent themselves cost);
  - bottle: a bottle app (pays bottle's routing, which our /zato/ping skips: a ratio above 1
            against it says more about bottle than about us).
Measured with wrk, every side once per round, the order rotated each round (each side goes
first in turn), at least 5 rounds. Prints each run, the median and spread (min..max) per
side, the ratios of the medians (target >= 0.9 against plain), and `uptime` (the machine may be
shared: read the ratios, not the absolute numbers)."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support import cleanup_redis, cluster_name, free_port, free_port_block  # noqa: E402

BARE_APP = """
import bottle
from zato.common.cid import new_cid

HEAD = b'{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "'
TAIL = b'"}, "zato_ping_response": {"pong": "zato"}}'


def plain(environ, start_response):
    cid = new_cid()
    body = HEAD + cid.encode() + TAIL
    start_response("200 OK", [
        ("Content-Type", "application/json"), ("X-Zato-CID", cid), ("Content-Length", str(len(body))),
    ])
    return [body]


app = bottle.Bottle()

@app.route("/zato/ping")
def ping():
    cid = new_cid()
    bottle.response.content_type = "application/json"
    bottle.response.set_header("X-Zato-CID", cid)
    return ('{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "' + cid + '"}, '
            '"zato_ping_response": {"pong": "zato"}}')
"""


def wait_ok(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench/ping: {url} did not answer within {timeout} s")


def wrk(url: str, duration: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, latency(out, "50%"), latency(out, "99%")


def latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def start_zato(tmp: str, workers: int) -> tuple[str, str, str]:
    path, cluster, port = os.path.join(tmp, f"qs-{workers}"), cluster_name("bench"), free_port_block(1)
    zato = [sys.executable, "-m", "zato"]
    subprocess.run(
        [
            *zato,
            "quickstart",
            "create",
            path,
            "--servers",
            "1",
            "--cluster",
            cluster,
            "--base-port",
            str(port),
            "--lb-port",
            str(free_port()),
            "--workers",
            str(workers),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([*zato, "start", os.path.join(path, "server1")], check=True, capture_output=True)
    return f"http://127.0.0.1:{port}/zato/ping", path, cluster


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def start_bare(tmp: str, workers: int, app: str) -> tuple[str, subprocess.Popen]:
    with open(os.path.join(tmp, "bare_ping.py"), "w") as f:
        f.write(BARE_APP)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gevent",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            tmp,
            "--log-level",
            "warning",
            f"bare_ping:{app}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/zato/ping"
    wait_ok(url)
    return url, proc


def bench(workers: int, args: argparse.Namespace, tmp: str) -> float:
    zato_url, path, cluster = start_zato(tmp, workers)
    plain_url, plain = start_bare(tmp, workers, "plain")
    bottle_url, bottle = start_bare(tmp, workers, "app")
    sides = {"zato": zato_url, "plain": plain_url, "bottle": bottle_url}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
    print(f"workers={workers}   [{uptime()}]", flush=True)
    try:
        wait_ok(zato_url)
        for url in sides.values():
            wrk(url, 1, args.connections)  # warm-up
        names = list(sides)
        for i in range(args.rounds):
            for name in names[i % 3 :] + names[: i % 3]:
                rps, p50, p99 = wrk(sides[name], args.duration, args.connections)
                results[name].append((rps, p50, p99))
                print(
                    f"  workers={workers} round {i + 1} {name:6}: {rps:9.0f} req/s  p50 {p50:6.2f} ms"
                    f"  p99 {p99:6.2f} ms",
                    flush=True,
                )
    finally:
        subprocess.run(
            [sys.executable, "-m", "zato", "stop", os.path.join(path, "server1")], capture_output=True
        )
        for proc in (plain, bottle):
            proc.terminate()
            proc.wait(30)
        cleanup_redis(cluster)
    return summary(workers, results)


def summary(workers: int, results: dict[str, list[tuple[float, float, float]]]) -> float:
    medians = {}
    for name, runs in results.items():
        rps = [r[0] for r in runs]
        medians[name] = statistics.median(rps)
        p99 = statistics.median(r[2] for r in runs)
        spread = f"spread {min(rps):.0f}..{max(rps):.0f} ({(max(rps) - min(rps)) / medians[name] * 100:.0f}%)"
        print(f"  workers={workers} {name:6}: median {medians[name]:7.0f} req/s, {spread}, p99 {p99:.2f} ms")
    vs_plain = medians["zato"] / medians["plain"]
    vs_bottle = medians["zato"] / medians["bottle"]
    print(
        f"workers={workers}: zato/plain {vs_plain:.2f} {'OK' if vs_plain >= 0.9 else 'BELOW TARGET'} "
        f"(target >= 0.9), zato/bottle {vs_bottle:.2f}   [{uptime()}]",
        flush=True,
    )
    return vs_plain


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per worker count, at least 5 (default 5)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    args = p.parse_args()
    if args.rounds < 5:
        p.error("--rounds must be at least 5 (fewer says nothing about the spread)")
    with tempfile.TemporaryDirectory(prefix="zato-bench-") as tmp:
        ratios = [bench(int(w), args, tmp) for w in args.workers.split(",")]
    return 0 if min(ratios) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
