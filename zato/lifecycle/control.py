"""Starting, stopping and describing components (server, load balancer, quickstart) from the
command line. The CLI modules only parse arguments and print; the work is here."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from zato.common.errors import AlreadyRunning, ComponentError, CoordError, ZatoError
from zato.common.interrupts import Interrupts
from zato.common.pidfile import Owner, read_pidfile, remove_pidfile
from zato.config import component
from zato.config.component import Component
from zato.config.settings import (
    SERVER_CONF,
    DashboardSettings,
    LBSettings,
    ServerSettings,
    load_dashboard_settings,
    load_lb_settings,
    load_server_settings,
    server_drain,
    server_name,
    server_title,
)
from zato.lifecycle.process import (
    GATE_EXIT_WAIT,
    Gate,
    check_disk_room,
    check_folders,
    check_not_running,
    check_port_free,
    check_ports_distinct,
    kill_group,
    python_module_argv,
    spawn_detached,
    stop_by_pidfile,
    stop_side_by_side,
    wait_ready,
    warn_readable,
)

Say = Callable[[str], None]
SERVER_MODULE = "zato.server.main"
LB_MODULE = "zato.lb.main"
DASHBOARD_MODULE = "zato.dashboard.main"
PRECHECKS: dict = {}  # kind -> precheck function, filled below


def pid_owner(comp: Component) -> Owner:
    """What the process in `comp`'s pidfile must be to count as that component (a pid left by a
    stopped one may belong to any process now: zato.common.pidfile)."""
    module = {component.SERVER: SERVER_MODULE, component.LOAD_BALANCER: LB_MODULE}.get(
        comp.kind, DASHBOARD_MODULE
    )
    title = server_title(comp.path) if comp.kind == component.SERVER else None
    return Owner(module, comp.path, (title,) if title else ())


def local_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def http_ok(url: str, timeout: float = 1.0) -> bool:
    # A readiness probe of our own local component: its certificate was checked before start.
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:  # noqa: S310 - our own URL
            return r.status == 200
    except OSError:
        return False


def server_base(s: ServerSettings) -> str:
    """The server's own port as a client on its host reaches it: https with [tls] cert."""
    return f"{'https' if s.tls_cert else 'http'}://{local_host(s.host)}:{s.port}"


def ping_url(s: ServerSettings) -> str:
    return f"{server_base(s)}/zato/ping"


def ready_url(s: ServerSettings) -> str:
    return f"{server_base(s)}/zato/ready"


def lb_alive_url(s: LBSettings) -> str:
    return f"{lb_scheme(s)}://{local_host(s.host)}:{s.port}/zato-lb-alive"


def lb_ready(s: LBSettings, pid: int) -> bool:
    """This controller has HAProxy (started or adopted) and HAProxy answers: HAProxy alone is
    not enough, since one left by a killed controller answers before the new one has it."""
    return read_pidfile(s.ready_file).pid == pid and http_ok(lb_alive_url(s))


def lb_scheme(s: LBSettings) -> str:
    return "https" if s.edge.tls_cert else "http"


def lb_available() -> bool:
    return importlib.util.find_spec(LB_MODULE) is not None


# Pre-checks: each failure is one clear line (a ZatoError). Here only what is local (the
# config, the pidfile, the port); what a component shares (ODB, Redis, the cluster's member
# names) it checks itself once spawned, while `zato start` waits at its gate (start below).


ORPHANS_WAIT = 10.0  # seconds a start after a server died waits for its workers to let go of its port


def precheck_server(comp: Component, say: Say) -> ServerSettings:
    s = load_server_settings(comp.path)
    warn_readable(say, s.config_file, s.tls_cert)
    check_folders(comp.path, ("logs", "work", "pickup"), f"server {s.name}")
    stale = check_not_running(s.pidfile, f"server {s.name}", pid_owner(comp))
    if stale:
        say(stale)
    check_disk_room(comp.path, f"server {s.name}")
    # A server that died without its stop (SIGKILL, a crash; its pidfile stale): its workers hold
    # the port until they see their parent gone, about a second, more with requests to finish
    wait = ORPHANS_WAIT if stale else 0.0
    check_port_free(s.host, s.port, f"server {s.name}", s.config_file, wait, say)
    return s


def precheck_lb(comp: Component, say: Say) -> LBSettings:
    s = load_lb_settings(comp.path)
    warn_readable(say, s.config_file, s.edge.tls_cert)
    check_folders(comp.path, ("logs", "work"), "load balancer")
    if not lb_available():
        raise ComponentError(f"{comp.path}: the load balancer cannot start: {LB_MODULE} is not installed yet")
    from zato.lb.main import check_settings  # the TLS certificate and key too, before HAProxy is touched

    check_settings(s)
    stale = check_not_running(s.pidfile, "load balancer", pid_owner(comp))
    if stale:
        say(stale)
    check_disk_room(comp.path, "load balancer")
    from zato.lb.status import haproxy_left_running  # a new controller adopts that HAProxy

    if not haproxy_left_running(comp.path):
        check_port_free(s.host, s.port, "load balancer", s.config_file)
    return s


def precheck_dashboard(comp: Component, say: Say) -> DashboardSettings:
    s = load_dashboard_settings(comp.path)
    warn_readable(say, s.config_file)
    check_folders(comp.path, ("logs",), "dashboard")
    stale = check_not_running(s.pidfile, "dashboard", pid_owner(comp))
    if stale:
        say(stale)
    check_disk_room(comp.path, "dashboard")
    check_port_free(s.host, s.port, "dashboard", s.config_file)
    return s  # Redis or the ODB being down is something the dashboard shows, not a reason to refuse


PRECHECKS.update(
    {
        component.SERVER: precheck_server,
        component.LOAD_BALANCER: precheck_lb,
        component.DASHBOARD: precheck_dashboard,
    }
)


def members(comp: Component) -> list[Component]:
    """`comp`, or the components of a quickstart directory: ComponentError if it holds none
    (before, `zato start|stop|info` of one said nothing and exited 0)."""
    if comp.kind != component.QUICKSTART:
        return [comp]
    found = component.quickstart_members(comp)
    if not found:
        raise ComponentError(
            f"{comp.path}: a quickstart directory holding no component (no server, load-balancer or"
            f" dashboard directory with a {component.MARKER} file in it)"
        )
    return found


# Start


def start(
    comp: Component,
    say: Say,
    timeout: float = 30.0,
    foreground: bool = False,
    skip_running: bool = False,
    stop_timeout: float | None = None,
) -> None:
    """`stop_timeout`: what a component this start stops again (it failed, or was interrupted)
    has to exit before it is killed (STOP_STARTED_WAIT by default)."""
    if foreground:
        run_foreground(comp, say)
    checked = []
    for m in members(comp):
        live = read_pidfile(m.pidfile, pid_owner(m))
        if skip_running and live.alive:
            say(f"{describe_name(m)} is already running (pid {live.pid})")
            continue
        if m.kind == component.LOAD_BALANCER and comp.kind == component.QUICKSTART and not lb_available():
            say(f"load balancer not started: {LB_MODULE} does not exist yet (servers only)")
            continue
        try:
            checked.append((m, PRECHECKS[m.kind](m, say)))
        except AlreadyRunning as e:
            if comp.kind != component.QUICKSTART:
                raise
            # One member stopped by hand (to try a failover) and `zato start DIR` again: say
            # how to start the rest, which `make run` does
            hint = f"`zato start {comp.path} --skip-running` starts those that are not"
            raise AlreadyRunning(f"{e}; {hint}") from None
    check_ports_distinct([(describe_name(m), s.host, s.port, s.config_file) for m, s in checked])
    # Everything starts side by side: the LB follows membership (it adds each server as it
    # joins), the dashboard shows what is there; then each is waited for in turn. Each one
    # imports, checks what it shares (relaying its warnings here) and waits at its gate until
    # all have passed their checks: one failure, and none of them does anything.
    if any(m.kind == component.SERVER for m, _ in checked):
        # wait_joined's Redis client, imported while the servers start (~80 ms otherwise, after)
        threading.Thread(target=import_coord, name="zato-import-coord", daemon=True).start()
    modules = {
        component.SERVER: SERVER_MODULE,
        component.LOAD_BALANCER: LB_MODULE,
        component.DASHBOARD: DASHBOARD_MODULE,
    }
    started: list[Spawned] = []
    said: set[str] = set()

    def say_once(line: str) -> None:  # the servers of a quickstart share their Redis and its warning
        if line not in said:
            said.add(line)
            say(line)

    # A Ctrl-C interrupts; once what this start began is being stopped (after a Ctrl-C or a
    # failure), further ones are said and ignored: before, a second one aborted the clean-up
    # and left what it had started running.
    with Interrupts(STILL_STOPPING) as ctrl_c:
        try:
            for m, s in checked:
                if m.kind in modules:
                    gate = Gate()
                    proc = spawn(m, modules[m.kind], gate)
                    started.append(Spawned(m, s, proc, gate, (s.logfile, stdout_log(m))))
            for m, _s, proc, gate, logs in started:
                gate.wait_checked(say_once, proc, timeout, describe_name(m), logs)
        except BaseException:
            ctrl_c.hold()
            turn_back(started)
            raise
        for one in started:
            one.gate.open()
        try:
            for one in started:
                wait_started(one, timeout, say)
            if comp.kind == component.QUICKSTART:
                wait_routed(started, min(timeout, LB_ROUTES_WAIT), say)
        except ZatoError:
            # A start that reports failure leaves nothing of its own running (a server that never
            # became ready, e.g. listening where it is not looked for, would serve on unnoticed).
            ctrl_c.hold()
            stop_started(started, say, wait=stop_timeout)
            raise
        except KeyboardInterrupt:  # Ctrl-C: as before the gate, what it started does not go on
            ctrl_c.hold()
            stop_started(started, say, "this start was interrupted", stop_timeout)
            raise


STILL_STOPPING = "still stopping what this start began; wait (it exits once that is done)"
LB_ROUTES_WAIT = 15.0  # seconds a quickstart's start waits for its LB to route /zato/ping


def wait_routed(started: list[Spawned], timeout: float, say: Say) -> None:
    """A quickstart whose LB this start began: return once the LB routes /zato/ping to a
    server. HAProxy answers its own /zato-lb-alive first, and the controller adds each server
    once it joins, checked before it is sent traffic: `make run` returned in that gap, and a
    user's first request through the LB got 503 (tests/integration/test_make_run.py). Not
    within `timeout`: said, not a failure (each component did start)."""
    lbs = [one for one in started if one.comp.kind == component.LOAD_BALANCER]
    if not lbs:
        return
    s = lbs[0].settings
    url = f"{lb_scheme(s)}://{local_host(s.host)}:{s.port}/zato/ping"
    deadline = time.monotonic() + timeout
    while not http_ok(url):
        if time.monotonic() >= deadline:
            say(
                f"warning: the load balancer routed no /zato/ping to a server within {timeout:g} s "
                f"({url}); `zato cluster status` and the LB's logs/ say why"
            )
            return
        time.sleep(0.05)


JOIN_WAIT = 10.0  # seconds `zato start` waits for a server that answers to be a member too
JOIN_POLL = 0.02


def import_coord() -> None:
    import zato.coord.client
    import zato.coord.membership
    import zato.coord.signing  # noqa: F401 - imported for wait_joined, ahead of it


def wait_joined(s: ServerSettings, pid: int, say: Say, timeout: float = JOIN_WAIT) -> None:
    """A started server that answers: until it is a member of its cluster (its supervisor's
    heartbeat), so that what runs next sees it live: the LB's start (which compares cluster
    secrets with the live servers), `zato cluster status`, a start of the same name elsewhere.
    Not within `timeout`, or Redis failing: said, not a failure (the server does run)."""
    from zato.coord import membership
    from zato.coord.client import connect
    from zato.coord.signing import member_key

    key = member_key(s.cluster_secret, s.cluster)
    deadline = time.monotonic() + timeout
    try:
        client = connect(s.redis)
        try:
            while not membership.joined(client, s.cluster, key, s.name, pid):
                if time.monotonic() >= deadline:
                    say(
                        f"warning: server {s.name} answers but has not joined cluster {s.cluster} within"
                        f" {timeout:g} s: the load balancer sends it no traffic until it does; its"
                        f" logs/server.log says why"
                    )
                    return
                time.sleep(JOIN_POLL)
        finally:
            client.close()
    except CoordError as e:
        say(f"warning: cannot tell whether server {s.name} joined cluster {s.cluster}: {e}")


def wait_started(one: Spawned, timeout: float, say: Say) -> None:
    m, s, proc, _gate, logs = one
    if m.kind == component.SERVER:
        # ready, not just alive: its services are loaded when `zato start` returns
        wait_ready(partial(http_ok, ready_url(s)), proc, timeout, f"server {s.name}", logs)
        wait_joined(s, proc.pid, say)
        say(f"server {s.name} started (pid {proc.pid}): {ping_url(s)}")
    elif m.kind == component.LOAD_BALANCER:
        wait_ready(partial(lb_ready, s, proc.pid), proc, timeout, "load balancer", logs)
        say(f"load balancer started (pid {proc.pid}): {lb_scheme(s)}://{local_host(s.host)}:{s.port}/")
    else:
        wait_ready(partial(http_ok, s.url + "login"), proc, timeout, "dashboard", logs)
        say(f"dashboard started (pid {proc.pid}): {s.url}")


STOP_STARTED_WAIT = 30.0  # seconds a component this start stops has to exit (then SIGKILL); --stop-timeout


def stop_started(
    started: list[Spawned], say: Say, why: str = "this start failed", wait: float | None = None
) -> None:
    """Stop (by the pid this command spawned) each component it started that still runs, and
    whatever is left in its process group once it is gone (killed if it has not stopped in
    `wait` seconds, STOP_STARTED_WAIT by default: a worker that hangs outlived its arbiter,
    holding the port); the pidfile of one that is gone goes too (gunicorn leaves its own when
    it cannot bind)."""
    wait = STOP_STARTED_WAIT if wait is None else wait
    running = [one for one in started if one.proc.poll() is None]
    for one in running:
        one.proc.send_signal(signal.SIGTERM)
    for one in running:
        proc, what = one.proc, describe_name(one.comp)
        try:
            proc.wait(wait)
            say(f"{what} stopped (pid {proc.pid}): {why}")
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
            say(f"{what} did not stop in time and was killed (pid {proc.pid}): {why}")
    for one in started:
        kill_leftovers(one.proc)
        remove_pidfile(one.comp.pidfile, one.proc.pid)  # only if it still names that process


def kill_leftovers(proc: subprocess.Popen) -> None:
    """SIGKILL what is left in the process group of `proc` (spawned leading its own session)
    now that it has exited: nothing of a start that failed stays behind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def stdout_log(comp: Component) -> str:
    return os.path.join(comp.logs_dir, "stdout.log")


def spawn(comp: Component, module: str, gate: Gate | None = None):  # noqa: ANN201 - a Popen
    return spawn_detached(python_module_argv(module, comp.path), stdout_log(comp), cwd=comp.path, gate=gate)


class Spawned(NamedTuple):
    """A component `zato start` spawned, waiting at (or past) its gate."""

    comp: Component
    settings: Any  # ServerSettings, LBSettings or DashboardSettings
    proc: subprocess.Popen
    gate: Gate
    logs: tuple[str, str]  # what to show if it dies: its log file and its stdout


def turn_back(started: list[Spawned]) -> None:
    """The checks failed: every component waiting at its gate exits without having done
    anything (killed if it has not within GATE_EXIT_WAIT, as when it hangs importing)."""
    for one in started:
        one.gate.shut()
    for one in started:
        proc = one.proc
        try:
            proc.wait(GATE_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
        kill_leftovers(proc)


def run_foreground(comp: Component, say: Say) -> None:
    if comp.kind == component.SERVER:
        from zato.server.prechecks import check_server

        check_server(precheck_server(comp, say), say)
        argv = python_module_argv(SERVER_MODULE, comp.path, "--fg")
    elif comp.kind == component.LOAD_BALANCER:
        from zato.coord.client import through_failover
        from zato.lb.main import check_shared

        lb_settings = precheck_lb(comp, say)
        through_failover(lb_settings.redis, lambda: check_shared(lb_settings), say)
        argv = python_module_argv(LB_MODULE, comp.path)
    elif comp.kind == component.DASHBOARD:
        precheck_dashboard(comp, say)
        argv = python_module_argv(DASHBOARD_MODULE, comp.path)
    else:
        raise ComponentError(
            f"{comp.path}: --fg runs one component; give a server, load-balancer or dashboard directory"
        )
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter and module, no shell wanted


# Stop

STOP_WAIT = 30.0  # seconds a component has to exit past its own drain before SIGKILL (--timeout)


def stop(comp: Component, say: Say, timeout: float | None = None) -> None:
    """`timeout`: what each component has to exit before it is killed; by default its own
    drain (a server's [main] drain_seconds) and STOP_WAIT more. Before, 30 s whatever the
    drain: a server draining longer was killed mid-drain."""
    found = members(comp)
    if timeout is not None:
        for m in found:
            warn_short_timeout(m, timeout, say)
    if comp.kind != component.QUICKSTART:
        wait = stop_wait(comp) if timeout is None else timeout
        say(stop_by_pidfile(comp.pidfile, wait, pid_owner(comp)).describe(describe_name(comp)))
        return
    # The servers (and the dashboard) side by side: one after another, each server's drain and
    # its workers' exit made `zato stop` of ten servers take 12 s, and each server stopped
    # handed the lease to one about to stop too. The LB last: it follows them out.
    first = [m for m in found if m.kind != component.LOAD_BALANCER]
    last = [m for m in found if m.kind == component.LOAD_BALANCER]
    for group in (first, last):
        wait = max((stop_wait(m) for m in group), default=STOP_WAIT) if timeout is None else timeout
        results = stop_side_by_side([(m.pidfile, pid_owner(m)) for m in group], wait)
        for m, result in zip(group, results, strict=True):
            say(result.describe(describe_name(m)))


def stop_drain(comp: Component) -> float | None:
    """How long `comp` drains when stopped: a server's [main] drain_seconds (None when its
    config cannot be read); None for the others, which do not drain."""
    return server_drain(comp.path) if comp.kind == component.SERVER else None


def warn_short_timeout(comp: Component, timeout: float, say: Say) -> None:
    """Say, before waiting, that an explicit --timeout may cut a running server's drain short."""
    drain = stop_drain(comp)
    if drain is None or timeout > drain:
        return
    with contextlib.suppress(ZatoError):  # its pidfile unreadable: stop says so
        if not read_pidfile(comp.pidfile, pid_owner(comp)).alive:
            return
        conf = os.path.join(comp.config_dir, SERVER_CONF)
        say(
            f"warning: --timeout {timeout:g} s is not longer than the drain of {describe_name(comp)}"
            f" ([main] drain_seconds = {drain:g} in {conf}): it is killed if its load balancers have"
            " not let it go by then; leave --timeout out to wait for its drain"
        )


def stop_wait(comp: Component) -> float:
    """What `zato stop` gives `comp` to exit by default: its drain and STOP_WAIT more."""
    return (stop_drain(comp) or 0.0) + STOP_WAIT


def describe_name(comp: Component) -> str:
    if comp.kind == component.SERVER:  # its [main] name, as `zato start` says it; else its folder's
        return f"server {server_name(comp.path) or os.path.basename(comp.path)}"
    if comp.kind == component.DASHBOARD:
        return "dashboard"
    return "load balancer" if comp.kind == component.LOAD_BALANCER else comp.path


# Info


def info(comp: Component) -> dict:
    if comp.kind == component.QUICKSTART:
        return {
            "kind": comp.kind,
            "path": comp.path,
            "members": [member_info(m) for m in members(comp)],
        }
    status = read_pidfile(comp.pidfile, pid_owner(comp))
    state = "running" if status.alive else ("stale" if status.pid is not None else "stopped")
    out: dict = {
        "kind": comp.kind,
        "path": comp.path,
        "pid": status.pid if status.alive else None,
        "state": state,
    }
    if comp.kind == component.SERVER:
        s = load_server_settings(comp.path)
        from zato.service.user_config import survey, survey_labels

        out.update(
            name=s.name, cluster=s.cluster, host=s.host, port=s.port, workers=s.workers, url=ping_url(s)
        )
        out["user-conf"] = survey(s.user_conf_dirs)
        if s.user_config_files:  # Zato's [user_config] stanza: self.user_config.LABEL
            out["user_config"] = survey_labels(s.user_config_files)
    elif comp.kind == component.DASHBOARD:
        d = load_dashboard_settings(comp.path)
        out.update(cluster=d.cluster, host=d.host, port=d.port, url=d.url)
    else:
        lb = load_lb_settings(comp.path)
        out.update(cluster=lb.cluster, host=lb.host, port=lb.port, url=lb_alive_url(lb))
        out.update(lb_details(comp.path))
    return out


def member_info(comp: Component) -> dict:
    """info() of one member of a quickstart; one that cannot be described (its pidfile a
    directory, its config file unreadable) gets its state unknown and its problem, one line,
    in its own row, and the others are described all the same (before, the first such member
    ended the whole `zato info`)."""
    try:
        return info(comp)
    except ZatoError as e:
        return {"kind": comp.kind, "path": comp.path, "pid": None, "state": "unknown", "problem": str(e)}


class Url(NamedTuple):
    what: str  # "server1", "load balancer", "dashboard"
    url: str
    note: str  # what else is there, or whom to log in as; "not running" when it is not
    problem: bool = False  # its config could not be read: no URL, the note says why


def urls(comp: Component) -> list[Url]:
    """The URL a user opens of each component of `comp` (the load balancer, the servers, the
    dashboard, in that order), from their own config files: what `make run` prints."""
    order = (component.LOAD_BALANCER, component.SERVER, component.DASHBOARD)
    out = []
    for m in sorted(members(comp), key=lambda c: order.index(c.kind)):
        try:
            one = _url(m)
        except ZatoError as e:  # a quickstart member's config broken: said in its row, the others shown
            if m is comp:
                raise
            name = os.path.basename(m.path) if m.kind == component.SERVER else describe_name(m)
            out.append(Url(name, "-", f"cannot be described: {e}", problem=True))
            continue
        try:
            if not read_pidfile(m.pidfile, pid_owner(m)).alive:
                one = one._replace(note=f"{one.note}; not running")
        except ComponentError as e:  # its pidfile a directory: said in its row, the others shown
            one = one._replace(note=f"{one.note}; whether it runs is unknown: {e}")
        out.append(one)
    return out


def _url(m: Component) -> Url:
    """The URL a user opens of the component `m`, from its config file."""
    if m.kind == component.SERVER:
        s = load_server_settings(m.path)
        scrape = (
            f" (user {s.metrics_username}, password: [metrics] in {s.config_file})"
            if s.metrics_password
            else ""
        )
        return Url(s.name, ping_url(s), f"also /metrics{scrape}, /zato/ready")
    if m.kind == component.LOAD_BALANCER:
        lb = load_lb_settings(m.path)
        return Url(
            "load balancer",
            f"{lb_scheme(lb)}://{local_host(lb.host)}:{lb.port}/zato/ping",
            "alive: /zato-lb-alive",
        )
    d = load_dashboard_settings(m.path)
    return Url("dashboard", d.url, f"user {d.admin_username}, password: [auth] in {d.config_file}")


def lb_details(path: str) -> dict:
    if importlib.util.find_spec("zato.lb.status") is None:
        return {}
    from zato.lb import status

    try:
        return {"details": status.describe(path)}
    except Exception as e:  # noqa: BLE001 - a status view must not crash
        return {"details": {"error": str(e)}}


def cluster_settings(path: str) -> ServerSettings:
    """Settings to reach the cluster's ODB and Redis from a server or quickstart directory."""
    comp = component.read_component(path)
    if comp.kind == component.SERVER:
        return load_server_settings(comp.path)
    if comp.kind == component.QUICKSTART:
        for m in component.quickstart_members(comp):
            if m.kind == component.SERVER:
                return load_server_settings(m.path)
    raise ComponentError(f"{comp.path}: a {comp.kind} directory; give a server or quickstart directory")
