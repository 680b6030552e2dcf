"""bench/ping: requests/s and p50/p99 latency of /zato/ping on one Zato server against a bare
gunicorn + gevent + bottle app answering the same JSON, same worker count, measured with wrk,
alternating A B A B in one run. Prints each run and the ratio (target >= 0.9)."""

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


def start_bare(tmp: str, workers: int) -> tuple[str, subprocess.Popen]:
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
            "bare_ping:app",
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
    bare_url, bare = start_bare(tmp, workers)
    results: dict[str, list[tuple[float, float, float]]] = {"zato": [], "bare": []}
    try:
        wait_ok(zato_url)
        wrk(zato_url, 1, args.connections)  # warm-up
        wrk(bare_url, 1, args.connections)
        for i in range(args.rounds):
            for name, url in (("zato", zato_url), ("bare", bare_url)):
                rps, p50, p99 = wrk(url, args.duration, args.connections)
                results[name].append((rps, p50, p99))
                print(
                    f"  workers={workers} round {i + 1} {name:4}: {rps:9.0f} req/s  p50 {p50:6.2f} ms"
                    f"  p99 {p99:6.2f} ms",
                    flush=True,
                )
    finally:
        subprocess.run(
            [sys.executable, "-m", "zato", "stop", os.path.join(path, "server1")], capture_output=True
        )
        bare.terminate()
        bare.wait(30)
        cleanup_redis(cluster)
    z = statistics.median(r[0] for r in results["zato"])
    b = statistics.median(r[0] for r in results["bare"])
    p99z = statistics.median(r[2] for r in results["zato"])
    p99b = statistics.median(r[2] for r in results["bare"])
    ratio = z / b
    print(
        f"workers={workers}: zato {z:.0f} req/s (p99 {p99z:.2f} ms), bare {b:.0f} req/s (p99 {p99b:.2f} ms), "
        f"ratio {ratio:.2f} {'OK' if ratio >= 0.9 else 'BELOW TARGET'} (target >= 0.9)",
        flush=True,
    )
    return ratio


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="A B rounds per worker count (default 2)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="zato-bench-") as tmp:
        ratios = [bench(int(w), args, tmp) for w in args.workers.split(",")]
    return 0 if min(ratios) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
