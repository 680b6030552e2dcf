"""`zato start DIR`: start a server, a load balancer, or a whole quickstart cluster."""

from __future__ import annotations

import argparse

from zato.cli.args import seconds
from zato.cli.output import say
from zato.config.component import read_component
from zato.lifecycle import control


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "start",
        help="start a server, load balancer, dashboard or quickstart cluster",
        description="Start the component of DIR in the background and wait, at most --timeout, until it"
        " is ready: a server answers /zato/ready (its services loaded), a load balancer its"
        " /zato-lb-alive, a dashboard its login page. Each first checks what it shares (its config,"
        " the ODB, Redis) and none starts unless all of a quickstart's passed; a quickstart's start"
        " then waits for its load balancer to route /zato/ping. A start that fails stops what it"
        " started and says why (exit 1); its log files say more.",
    )
    p.add_argument("path", metavar="DIR", help="a server, load-balancer, dashboard or quickstart directory")
    p.add_argument("--fg", action="store_true", help="run in the foreground (one component only)")
    p.add_argument("--timeout", type=seconds, default=30.0, help="seconds to wait until ready (default 30)")
    p.add_argument(
        "--stop-timeout",
        type=seconds,
        default=control.STOP_STARTED_WAIT,
        help="when the start fails or is interrupted: seconds each component it started has to stop"
        f" before it is killed with its workers (default {control.STOP_STARTED_WAIT:g})",
    )
    p.add_argument(
        "--skip-running",
        action="store_true",
        help="leave components that already run alone instead of failing (make run uses it)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    control.start(
        read_component(args.path),
        say,
        timeout=args.timeout,
        stop_timeout=args.stop_timeout,
        foreground=args.fg,
        skip_running=args.skip_running,
    )
    return 0
