"""`zato stop DIR`: SIGTERM by pidfile, wait (by default the component's drain and 30 s more),
SIGKILL after that."""

from __future__ import annotations

import argparse

from zato.cli.args import seconds
from zato.cli.output import say
from zato.config.component import read_component
from zato.lifecycle import control


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stop",
        help="stop a server, load balancer, dashboard or quickstart cluster",
        description="Send SIGTERM to the component of DIR (by its pidfile) and wait for it to exit;"
        " one still running after --timeout is killed (SIGKILL). A server first drains: it stops its"
        " connectors (the lease goes to another live server), answers 503 on /zato/ready and waits,"
        " at most [main] drain_seconds, until its load balancers no longer send to it, then its"
        " workers finish what they run. A quickstart's servers and dashboard are stopped side by"
        " side, then its load balancer.",
    )
    p.add_argument("path", metavar="DIR", help="a server, load-balancer, dashboard or quickstart directory")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help=(
            f"seconds each component has to stop before SIGKILL (default: its drain, a server's [main]"
            f" drain_seconds, and {control.STOP_WAIT:g} more)"
        ),
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    control.stop(read_component(args.path), say, timeout=args.timeout)
    return 0
