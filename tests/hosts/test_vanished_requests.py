"""Requests already on a server's host when it vanishes (every packet dropped, no RST), sent
through the LB while a slow service runs: every GET is answered by another server (HAProxy's
server-side TCP keep-alive finds the connection dead in about 3 s and replays it), every POST
that was on the vanished host is answered 504 with Zato's error envelope (it may have run, so
it is not replayed), and the POSTs on live servers finish with their full time: a slow but
live service is never cut. Without keep-alive probes these requests waited for HAProxy's
`timeout server` (30 s); the client here gives up after CLIENT_TIMEOUT."""

from __future__ import annotations

import subprocess
import time

import requests

from tests.hosts.lab import SERVER_PORT, wait_all_up
from tests.support import lb_up, wait_for

CLIENT_TIMEOUT = 12.0  # well under `timeout server` (30 s): a request left hanging fails here
SLOW = 3  # seconds the service takes: the host vanishes while every request is in flight
PATH = "/lab/vanish-slow"


def test_requests_in_flight_to_a_vanished_host_are_replayed_or_answered_504(lab):
    lab.cli("channel create", "--name", "vanish-slow", "--url-path", PATH, "--service", "lab.slow")
    url = f"{lab.lb_url}{PATH}?s={SLOW}"
    wait_for(lambda: requests.get(f"{lab.lb_url}{PATH}?s=0", timeout=5).status_code == 200,
             timeout=30, what="the slow channel on the servers")  # fmt: skip
    holder, _ = lab.wait_holder()
    victim = next(n for n in lab.names if n != holder)  # the lease is another test's matter
    # Every server UP in the LB first: one still DOWN after an earlier test's fault gets no
    # request, and the round robin below would not put a POST on the victim.
    wait_for(lambda: lb_up(lab) == set(lab.names), timeout=30, what="every server UP in the load balancer")
    results: dict[int, tuple[str, int, dict]] = {}

    def call(i: int) -> None:
        method = "GET" if i % 2 == 0 else "POST"
        t0 = time.monotonic()
        try:
            r = requests.request(method, url, json={} if method == "POST" else None, timeout=CLIENT_TIMEOUT)
            results[i] = (method, r.status_code, {**r.json(), "took": round(time.monotonic() - t0, 2)})
        except requests.RequestException as e:
            results[i] = (method, 0, {"error": type(e).__name__})

    # One after another, so HAProxy's round robin gives each server 2 GETs and 2 POSTs.
    threads = []
    for i in range(12):
        threads.append(lab.net.in_host(lab.host("client"), lambda i=i: call(i)))
        time.sleep(0.05)
    wait_for(lambda: in_flight(lab, victim) >= 4, timeout=5, what=f"4 requests in flight on {victim}")
    lab.net.blackhole(lab.host(victim))
    try:
        for t in threads:
            t.join(CLIENT_TIMEOUT + 5)
    finally:
        lab.net.heal(lab.host(victim))
    print(f"{victim} vanished under 12 requests: {sorted(results.items())}")
    assert len(results) == 12
    gets = [r for r in results.values() if r[0] == "GET"]
    posts = [r for r in results.values() if r[0] == "POST"]
    assert all(status == 200 and body["server"] != victim for _, status, body in gets), gets
    lost = [body for _, status, body in posts if status == 504]
    assert lost, f"no POST was in flight on {victim}: {posts}"
    assert all(status in (200, 504) for _, status, _ in posts), posts
    for body in lost:
        assert body["zato_env"]["result"] == "ZATO_ERROR" and "lost" in body["zato_env"]["details"], body
    assert all(body["server"] != victim for _, status, body in posts if status == 200)
    wait_all_up(lab)


def in_flight(lab, name: str) -> int:
    """Established connections to the server's HTTP port on its host."""
    out = subprocess.run(
        ["ip", "netns", "exec", lab.host(name).ns,
         "ss", "-Htn", "state", "established", "sport", "=", f":{SERVER_PORT}"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return len(out.splitlines())
