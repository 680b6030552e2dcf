"""Fault injection behind the load balancer: servers killed or restarted, the controller
killed, HAProxy killed. Real HAProxy, real gunicorn + gevent servers, steady GET load."""

from __future__ import annotations

import glob
import os
import signal
import tempfile

from tests.integration.test_lb_support import (  # noqa: F401 - lb_fixture provides `lb`
    BareServer,
    Controller,
    Load,
    add_server,
    backend_pids,
    lb_fixture,
    servers_on_disk,
)
from tests.support import wait_for
from zato.common.pidfile import pid_alive
from zato.config.settings import load_lb_settings
from zato.lb.haproxy import CHECK_PREFIX
from zato.lb.render import BACKEND, server_options
from zato.lb.runtime import RuntimeAPI
from zato.lb.status import describe


def server_states(lb: Controller) -> dict[str, str]:
    return {s["name"]: s["state"] for s in describe(lb.lb_dir)["servers"]}


def two_servers(lb: Controller) -> list[BareServer]:
    """Two servers, both receiving traffic through the LB."""
    servers = [add_server(lb, "server1"), add_server(lb, "server2")]
    wait_for(lambda: len(backend_pids(lb)) == 2, 20, what="traffic on both servers")
    return servers


def test_sigkill_of_a_server_under_load_fails_no_request(lb):
    lb.start()
    _, victim = two_servers(lb)
    with Load(lb.url + "/zato/ping") as load:
        load.wait_requests(100)
        victim.kill()
        wait_for(lambda: "server2" not in server_states(lb), 20, what="killed server removed")
        load.wait_requests(300)
    assert load.failed_but_cut(victim_workers=1) == []
    wait_for(lambda: servers_on_disk(lb) == {"server1"}, 20, what="haproxy.cfg in step")


def test_rolling_restart_of_every_server_under_load_fails_no_request(lb):
    lb.start()
    servers = two_servers(lb)
    with Load(lb.url + "/zato/ping") as load:
        for i, old in enumerate(servers):
            old.stop_gracefully(drain=1.0)
            new = add_server(lb, old.name, old.port)
            wait_for(
                lambda new=new: new.proc.pid and server_states(lb).get(new.name, "").startswith("UP"), 20
            )
            servers[i] = new
            load.wait_requests(100)
        before = load.ok
        wait_for(lambda: load.ok > before + 100, 20)
    assert load.failed == []
    assert set(server_states(lb)) == {"server1", "server2"}


def test_controller_killed_and_restarted_under_load_adopts_haproxy(lb):
    lb.start()
    two_servers(lb)
    with Load(lb.url + "/zato/ping") as load:
        haproxy_pid = lb.haproxy_pid()
        killed = lb.proc.pid
        lb.kill()  # SIGKILL: HAProxy keeps serving on its own
        load.wait_requests(100)
        left = left_checks(killed)  # a config check (a copy of haproxy.cfg) cut short, if one was on
        lb.start()
        assert lb.haproxy_pid() == haproxy_pid  # adopted, not restarted
        # the new controller removes the killed one's copies (lb.start returns as soon as HAProxy,
        # still serving, answers: the controller may not have begun yet)
        wait_for(lambda: left_checks(killed) == [], 20, what="the killed controller's check folders removed")
        if left:
            wait_for(lambda: "a killed controller left" in controller_log(lb), 20, what="the removal logged")
        third = add_server(lb, "server3")
        wait_for(lambda: server_states(lb).get(third.name, "").startswith("UP"), 20, what="server3 added")
        load.wait_requests(100)
    assert load.failed == []
    wait_for(lambda: servers_on_disk(lb) == {"server1", "server2", "server3"}, 20, what="haproxy.cfg in step")


def left_checks(pid: int) -> list[str]:
    """The `haproxy -c` folders (zato.lb.haproxy.validate) of controller `pid` still on disk."""
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), f"{CHECK_PREFIX}{pid}-*")))


def controller_log(lb) -> str:  # noqa: ANN001
    with open(os.path.join(lb.lb_dir, "logs", "lb.log"), errors="replace") as f:
        return f.read()


def test_haproxy_killed_is_restarted_with_the_same_servers(lb):
    lb.start()
    add_server(lb, "server1")
    wait_for(lambda: "server1" in server_states(lb), 20, what="server1 added")
    old = lb.haproxy_pid()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: lb.haproxy_pid() != old and pid_alive(lb.haproxy_pid()), 30, what="a new HAProxy")
    wait_for(
        lambda: server_states(lb).get("server1", "").startswith("UP"), 30, what="server1 back in HAProxy"
    )
    with Load(lb.url + "/zato/ping") as load:
        load.wait_requests(50)
    assert load.failed == []


def test_lost_heartbeats_of_a_live_server_fail_no_request(lb):
    """A server whose membership key expires (heartbeats lost) while it still serves is
    drained, not cut off; when its heartbeat resumes it gets traffic again."""
    lb.start()
    _, quiet = two_servers(lb)
    with Load(lb.url + "/zato/ping") as load:
        load.wait_requests(100)
        quiet._stop_heartbeat()  # no withdraw: the key just expires after its TTL
        wait_for(lambda: not server_states(lb).get("server2", "").startswith("UP"), 20, what="server2 out")
        load.wait_requests(100)
        quiet.join()
        wait_for(lambda: server_states(lb).get("server2", "").startswith("UP"), 20, what="server2 back")
        wait_for(lambda: len(backend_pids(lb)) == 2, 20, what="traffic on server2 again")
        load.wait_requests(100)
    assert load.failed == []


def test_a_server_half_added_by_a_killed_controller_is_health_checked(lb):
    """The controller adds a server with three Runtime API commands: `add server` (a dynamic
    server starts in maintenance with its checks off), `enable health`, `set server ... state
    ready`. Killed (or refused) between the first two, it left the server without checks, and
    the next controller only set it ready: HAProxy showed it 'no check' and sent it requests
    for good, hung or dead (a SIGSTOPped one held each of them for `timeout server`), until
    HAProxy was restarted by hand. Now the checks of such a server are turned on."""
    lb.start()
    add_server(lb, "server1")
    wait_for(lambda: server_states(lb).get("server1", "").startswith("UP"), 20, what="server1 added")
    lb.kill()
    second = BareServer(lb.cluster, "server2").start(announce_it=False)
    lb.servers.append(second)
    settings = load_lb_settings(lb.lb_dir)
    half = f"add server {BACKEND}/server2 127.0.0.1:{second.port} {server_options(settings)}"
    assert "New server registered" in RuntimeAPI(settings.stats_socket).command(half)  # then killed
    second.join()
    lb.start()
    wait_for(lambda: len(backend_pids(lb)) == 2, 20, what="traffic on both servers")
    os.killpg(second.proc.pid, signal.SIGSTOP)  # hung: its kernel still takes connections
    try:
        wait_for(lambda: server_states(lb)["server2"].startswith("DOWN"), 20,
                 what=f"hung server2 DOWN (it was {server_states(lb)['server2']!r} as it hung)")  # fmt: skip
    finally:
        os.killpg(second.proc.pid, signal.SIGCONT)


def test_a_hung_haproxy_left_running_is_replaced_at_restart(lb):
    """The controller restarts while the HAProxy an earlier one left running is hung (here its
    whole process group SIGSTOPped): its runtime socket does not answer. Before, the new
    controller started a second HAProxy, which could not bind the port, and exited: the hung
    one was left holding the port, unmanaged, until someone killed it by hand. Now it is
    stopped (it is ours: its pid is in work/haproxy.pid) and a new one serves and is managed."""
    lb.start()
    add_server(lb, "server1")
    wait_for(lambda: server_states(lb).get("server1", "").startswith("UP"), 20, what="server1 added")
    lb.kill()
    hung = lb.haproxy_pid()
    os.killpg(hung, signal.SIGSTOP)
    try:
        lb.start()  # waits until the LB answers again
        wait_for(lambda: lb.haproxy_pid() != hung, 20, what="a new HAProxy's pidfile")
        wait_for(lambda: not pid_alive(hung), 20, what="the hung HAProxy stopped")
        second = add_server(lb, "server2")
        wait_for(lambda: server_states(lb).get(second.name, "").startswith("UP"), 20, what="server2 added")
        wait_for(lambda: len(backend_pids(lb)) == 2, 20, what="traffic on both servers")
        assert "does not answer on its runtime socket" in controller_log(lb)
        assert "stopped the HAProxy that did not answer" in controller_log(lb)
    finally:
        if pid_alive(hung):
            os.killpg(hung, signal.SIGKILL)
            os.killpg(hung, signal.SIGCONT)


def test_haproxy_left_running_without_its_socket_is_replaced(lb):
    """The runtime socket file of a serving HAProxy was removed (a clean-up of work/, say)
    while no controller ran. Before, the next controller started a second HAProxy beside it
    (both bound the port: it took part of the connections) and lost track of the first, for
    good. Now the first is stopped once a new one serves, and the new one is managed."""
    lb.start()
    add_server(lb, "server1")
    wait_for(lambda: server_states(lb).get("server1", "").startswith("UP"), 20, what="server1 added")
    lb.kill()
    running = lb.haproxy_pid()
    os.rename(load_lb_settings(lb.lb_dir).stats_socket, os.path.join(lb.lb_dir, "work", "moved.sock"))
    try:
        lb.start()
        wait_for(lambda: lb.haproxy_pid() != running, 20, what="a new HAProxy's pidfile")
        wait_for(lambda: not pid_alive(running), 20, what="the HAProxy without its socket stopped")
        second = add_server(lb, "server2")
        wait_for(lambda: server_states(lb).get(second.name, "").startswith("UP"), 30, what="server2 added")
        wait_for(lambda: len(backend_pids(lb)) == 2, 20, what="traffic on both servers")
    finally:
        if pid_alive(running):
            os.killpg(running, signal.SIGKILL)
