"""25% packet loss on every link between the LB and the servers (each way; the clients, Redis
and the broker keep clean links), with the setting docs/multi-host.md and etc/lb.conf tell
operators to use on such links (lb.conf [haproxy] check_inter_ms = 1500,
timeout_connect_ms = 1500 and retries = 5, applied here as they would: lb.conf, then SIGHUP to the LB): no
request is answered `503 No server available`, live servers are seldom marked DOWN (what the
LB's stats page, the dashboard and HAProxy's log show), every GET is answered 200 (a client
sending again a GET whose connection ended without an answer, as browsers and curl do), and
no POST runs twice.

With the defaults (check_inter_ms 300, timeout_connect_ms 1000; kept for a fast DOWN of a
dead or hung server) a health check has 300 ms to connect (HAProxy connects a check within
the smaller of `inter` and `timeout connect`), less than TCP's first SYN retransmission
(1 s), so two lost SYNs in a row mark a live server DOWN, now and then all three at once:
requests get 503s while every server is alive (bench/lb-loss; here 25-26 DOWN in 30 s, against
1-3 with the setting). With the setting a check waits out one lost SYN. A POST may still end
without an answer (HAProxy closes a kept-alive client connection whose request's server
connection failed, so that the client may send it again: HAProxy cannot tell whether it
ran), or get a 504 (it may have run): never a second run. GETs are replayed by the LB
itself on another server in most such cases (retry-on, zato/lb/render.py). The lab's LB
gets its defaults back afterwards."""

from __future__ import annotations

import os
import re
import time
import uuid

import requests

from tests.hosts.checkers import MixedLoad
from tests.support import lb_up, wait_for

PATH = "/lab/lossy-lb"
LOSS = 25  # % of the packets between the LB and each server, each way
SECONDS = 30
# A GET whose connection HAProxy closed without an answer, whose body broke off (a live
# server's connection given up after two lost keep-alive probes) or that took over 10 s is
# sent again by the client, as browsers and curl do: at most this many times in all.
GET_TRIES = 3
# Live servers marked DOWN at most once every this many seconds of loss, all servers together.
DOWN_EVERY = 3
# The documented opt-in for links that lose packets (docs/multi-host.md, etc/lb.conf).
LOSSY_LINKS = {"check_inter_ms": 1500, "timeout_connect_ms": 1500, "retries": 5}


def marked_down(lab, since: int) -> int:
    """How many times HAProxy marked a server DOWN, from byte `since` of the LB's haproxy.log
    (the controller appends HAProxy's output to it; each event has one `Server ... is DOWN` line)."""
    with open(os.path.join(lab.lb_dir, "logs", "haproxy.log"), errors="replace") as f:
        f.seek(since)
        return len(re.findall(r"^Server \S+ is DOWN", f.read(), re.M))


def test_lossy_lb_links_with_the_lossy_link_setting_answer_every_get_and_run_no_post_twice(lab):
    lab.cli("channel create", "--name", "lossy-lb", "--url-path", PATH, "--service", "lab.slow")
    wait_for(lambda: requests.get(f"{lab.lb_url}{PATH}?s=0&id=warm", timeout=5).status_code == 200,
             timeout=30, what="the channel on the servers")  # fmt: skip
    wait_for(lambda: lb_up(lab) == set(lab.names), timeout=30, what="every server UP in the load balancer")
    try:
        lab.set_lb_haproxy(LOSSY_LINKS)  # lb.conf, then SIGHUP: as an operator applies it
        with open(os.path.join(lab.lb_dir, "config", "haproxy.cfg")) as f:
            running = f.read()
        assert "timeout connect 1500ms" in running and " check inter 1500 " in running, running
        assert "retries 5" in running, running
        counts, downs, failed_gets = lossy_load(lab)
    finally:
        lab.set_lb_haproxy({})  # the defaults again, for the tests after this one
    print(f"{LOSS}% loss between the LB and every server: {counts}; live servers marked DOWN {downs} times")
    gets, posts = counts["GET"], counts["POST"]
    assert gets["sent"] > 0 and posts["sent"] > 0, counts
    assert downs <= SECONDS // DOWN_EVERY, f"live servers marked DOWN {downs} times in {SECONDS} s; {counts}"
    assert gets["ok"] == gets["sent"], f"{counts}; what the LB logged of each GET not answered: {failed_gets}"
    assert posts["twice_run"] == 0, counts
    assert "status:503" not in posts["not_ok"], counts  # No server available: none of them DOWN


def lossy_load(lab) -> tuple[dict, int, dict]:
    """MixedLoad through the LB for SECONDS with LOSS% loss between it and every server: what
    each method got, how many times HAProxy marked a server DOWN meanwhile, and for each GET
    not answered its outcome with HAProxy's log lines of it (none: HAProxy closed the client's
    connection without logging it, its way with a request whose server connection failed)."""
    run = uuid.uuid4().hex[:8]  # lab.slow records each call's id (lab.slow_runs)
    load = MixedLoad(lab, f"{lab.lb_url}{PATH}?s=0", run, clients=4, get_tries=GET_TRIES)
    log_at = os.path.getsize(os.path.join(lab.lb_dir, "logs", "haproxy.log"))
    for name in lab.names:
        lab.net.loss(lab.host(name), LOSS, peer=lab.host("lb"))
    try:
        load.start()
        time.sleep(SECONDS)
        load.stop()
    finally:
        for name in lab.names:
            lab.net.heal(lab.host(name))
    failed = {i: o for i, (method, o) in load.results.items() if method == "GET" and o != "ok"}
    return load.counts(lab.slow_runs(run)), marked_down(lab, log_at), logged(lab, log_at, failed)


def logged(lab, since: int, outcomes: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """Each call id of `outcomes` -> (its outcome, the LB's haproxy.log lines from byte `since` of
    requests with that id: one per try HAProxy logged, with its termination state)."""
    with open(os.path.join(lab.lb_dir, "logs", "haproxy.log"), errors="replace") as f:
        f.seek(since)
        lines = f.read().splitlines()
    return {i: (o, [line for line in lines if f"&id={i} " in line]) for i, o in outcomes.items()}
