"""`zato stop DIR`: SIGTERM by pidfile, wait, SIGKILL after the timeout."""

from __future__ import annotations

import argparse

from zato.cli.args import seconds
from zato.config.component import read_component
from zato.lifecycle import control


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stop", help="stop a server, load balancer, dashboard or quickstart cluster")
    p.add_argument("path", metavar="DIR", help="a server, load-balancer, dashboard or quickstart directory")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        help="seconds each component has to stop before SIGKILL (default 30)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    control.stop(read_component(args.path), print, timeout=args.timeout)
    return 0
