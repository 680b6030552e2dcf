"""`zato` command line: one module per command under zato/cli, no business logic here.

Each command module defines `add_parser(subparsers)`, which registers its parser(s) and sets
`func` to a callable taking the parsed args and returning an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys

from zato import __version__
from zato.common.errors import CoordError, CoordNotSent, CoordUnavailable, ODBError, ZatoError

# Order is the order of `zato --help`.
COMMANDS = [
    "quickstart",
    "create",
    "start",
    "stop",
    "info",
    "cluster",
    "deploy",
    "undeploy",
    "service",
    "channel",
    "conn",
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only` (the command argv names), only that command's module is
    imported: the others get an empty parser, so `zato stop` does not import what `zato
    deploy` needs (SQLAlchemy and all)."""
    parser = argparse.ArgumentParser(
        prog="zato",
        description="Zato-HA: create, start, stop and inspect servers, load balancers and clusters.",
    )
    parser.add_argument("--version", action="version", version=f"zato {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        if only is None or name == only:
            importlib.import_module(f"zato.cli.{name.replace('-', '_')}").add_parser(sub)
        else:
            sub.add_parser(name)
    return parser


def named_command(argv: list[str]) -> str | None:
    """The command argv names, if it is a known one and comes first (options before it, such
    as --help, need every command's help)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(named_command(given))
    args = parser.parse_args(given)
    try:
        return int(args.func(args) or 0)
    except ZatoError as e:
        print(f"zato: error: {say(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zato ... | head` and the reader left: no traceback, as a C tool
        with contextlib.suppress(OSError):  # nor another one when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def say(e: ZatoError) -> str:
    """The error's one line; when it ends with redis-py's own words for a Redis that did not
    answer at all, what to do (one that answered with a refusal, NOPERM, says its own; a
    message that goes on after them says what to do itself); when Redis is a read-only replica,
    what to do as the servers' logs say it (zato.coord.health.REPLICA); an ODB error, which ODB."""
    from zato.coord import health

    text = str(e)
    if type(e) in (CoordUnavailable, CoordNotSent) and text.endswith(_not_answering(e)):
        return f"{text.rstrip('.')}: is Redis running there? ([kvdb] in the cluster's server.conf says where)"
    if isinstance(e, CoordError) and health.is_replica(e) and health.REPLICA not in text:
        return f"{text.rstrip('.')}; {health.REPLICA}"
    if isinstance(e, ODBError) and e.where and e.where not in text:  # which ODB, and where that is set
        return f"{text.rstrip('.')} (the ODB at {e.where}: [odb] url in the cluster's server.conf)"
    return text


def _not_answering(e: BaseException) -> str:
    """redis-py's text of the ConnectionError or TimeoutError under `e`, or a text no message ends with."""
    cause = e.__cause__
    while cause is not None:
        kind = type(cause)
        if kind.__module__.startswith("redis") and kind.__name__ in ("ConnectionError", "TimeoutError"):
            return f"{kind.__name__}: {cause}"
        cause = cause.__cause__
    return "\0"


if __name__ == "__main__":
    sys.exit(main())
