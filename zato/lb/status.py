"""`describe(lb_dir)`: what `zato info` and `zato cluster status` show about a load balancer.

Never includes the stats password. Works whether or not the controller is running.
"""

from __future__ import annotations

import os

from zato.common.errors import LBError, ZatoError
from zato.common.order import natural_key
from zato.common.pidfile import Owner, read_pidfile
from zato.config.settings import load_lb_settings
from zato.lb.render import ALIVE_URI, BACKEND, STATS_URI
from zato.lb.runtime import RuntimeAPI


def controller_owner(lb_dir: str) -> Owner:
    """What the process in the LB's pidfile must be: its controller (a reused pid is not)."""
    return Owner("zato.lb.main", lb_dir)


def haproxy_left_running(lb_dir: str) -> int | None:
    """The pid of this LB's HAProxy if it runs without its controller (which died): a new
    controller adopts it, so its port being busy is expected. None otherwise."""
    path = os.path.abspath(lb_dir)
    if read_pidfile(os.path.join(path, "pidfile"), controller_owner(path)).alive:
        return None
    haproxy = read_pidfile(os.path.join(path, "work", "haproxy.pid"))
    return haproxy.pid if haproxy.alive else None


def describe(lb_dir: str) -> dict:
    """Controller pid, HAProxy pid and version, and every backend server with its state."""
    path = os.path.abspath(lb_dir)
    try:
        settings = load_lb_settings(path)
    except ZatoError as e:
        return {"path": path, "error": str(e)}
    controller = read_pidfile(settings.pidfile, controller_owner(path))
    haproxy = read_pidfile(os.path.join(settings.work_dir, "haproxy.pid"))
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"{'https' if settings.edge.tls_cert else 'http'}://{host}:{settings.port}"
    result: dict = {
        "path": path,
        "cluster": settings.cluster,
        "url": base,
        "alive_url": base + ALIVE_URI,
        "stats_url": base + STATS_URI,
        "stats_username": settings.stats_username,
        "controller": {"pid": controller.pid, "running": controller.alive},
        "haproxy": {"pid": haproxy.pid, "running": haproxy.alive, "version": None},
        "servers": [],
    }
    if not haproxy.alive:
        return result
    runtime = RuntimeAPI(settings.stats_socket, timeout=1.0)
    try:
        result["haproxy"]["version"] = runtime.info().get("Version")
        servers = runtime.servers(BACKEND)
    except LBError as e:
        result["haproxy"]["error"] = str(e)
        return result
    result["servers"] = [
        {"name": s.name, "address": s.address, "state": s.status, "check": s.check, "sessions": s.sessions}
        for s in sorted(servers.values(), key=lambda s: natural_key(s.name))
    ]
    return result
