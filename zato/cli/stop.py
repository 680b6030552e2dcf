"""`zato stop DIR`: SIGTERM by pidfile, wait (by default the component's drain and 30 s more),
SIGKILL after that."""

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
        default=None,
        help=(
            f"seconds each component has to stop before SIGKILL (default: its drain, a server's [main]"
            f" drain_seconds, and {control.STOP_WAIT:g} more)"
        ),
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    control.stop(read_component(args.path), print, timeout=args.timeout)
    return 0
