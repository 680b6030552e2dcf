"""Component directories: each one has a `.zato` marker naming what it is.

quickstart DIR/   .zato {"component": "quickstart"}  server1/ server2/ ... load-balancer/
server DIR/       .zato {"component": "server"}      config/server.conf logs/ pickup/ pidfile
load-balancer/    .zato {"component": "load-balancer"}
                  config/lb.conf config/haproxy.cfg logs/ work/ pidfile
dashboard/        .zato {"component": "dashboard"}  config/dashboard.conf logs/ pidfile
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from zato.common.errors import ComponentError
from zato.common.fs import atomic_write
from zato.common.order import natural_key

MARKER = ".zato"
SERVER = "server"
LOAD_BALANCER = "load-balancer"
QUICKSTART = "quickstart"
DASHBOARD = "dashboard"
KINDS = (SERVER, LOAD_BALANCER, QUICKSTART, DASHBOARD)


@dataclass(frozen=True)
class Component:
    kind: str
    path: str  # absolute

    @property
    def pidfile(self) -> str:
        return os.path.join(self.path, "pidfile")

    @property
    def config_dir(self) -> str:
        return os.path.join(self.path, "config")

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.path, "logs")

    @property
    def work_dir(self) -> str:
        return os.path.join(self.path, "work")


def write_marker(path: str, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(kind)
    os.makedirs(path, exist_ok=True)
    body = {"component": kind, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(os.path.join(path, MARKER), json.dumps(body) + "\n")


def read_component(path: str) -> Component:
    """The component at `path`, or ComponentError saying clearly what is wrong."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise ComponentError(f"{path}: {'not a directory' if os.path.exists(path) else 'no such directory'}")
    marker = os.path.join(path, MARKER)
    try:
        with open(marker) as f:
            kind = json.load(f)["component"]
    except FileNotFoundError:
        raise ComponentError(f"{path}: not a Zato component directory (no {MARKER} file)") from None
    except OSError as e:  # a directory, unreadable
        raise ComponentError(f"{marker}: cannot read: {e.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ComponentError(f"{marker}: malformed marker file") from None
    if kind not in KINDS:
        raise ComponentError(f"{marker}: unknown component kind {kind!r}")
    return Component(kind, path)


def quickstart_members(qs: Component) -> list[Component]:
    """Servers first (in natural name order: server2 before server10), then the dashboard and
    the load balancer."""
    found = []
    for name in sorted(os.listdir(qs.path), key=natural_key):
        sub = os.path.join(qs.path, name)
        if os.path.isfile(os.path.join(sub, MARKER)):
            found.append(read_component(sub))
    return sorted(found, key=lambda c: (c.kind != SERVER, natural_key(c.path)))
