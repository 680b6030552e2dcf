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
from zato.common.errors import ZatoError
from zato.common.said import say

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


class Parser(argparse.ArgumentParser):
    """Every parser of the command line (add_subparsers makes its subparsers of this class too):
    an argument the command does not take is said with that command's usage. argparse leaves
    extra arguments to the top parser, which said `usage: zato [-h] [--version] COMMAND ...`
    for `zato stop DIR1 DIR2`, not which command took what."""

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's own signature
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, "usage_error"):  # the innermost parser, the command's, returns first
            namespace.usage_error = self.error
        return namespace, extras

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's own signature
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            namespace.usage_error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only` (the command argv names), only that command's module is
    imported: the others get an empty parser, so `zato stop` does not import what `zato
    deploy` needs (SQLAlchemy and all)."""
    parser = Parser(
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
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM / SIGHUP taken as one (zato.common.interrupts)
        from zato.common.interrupts import last_signal

        return 128 + last_signal()
    except BrokenPipeError:  # `zato ... | head` and the reader left: no traceback, as a C tool
        with contextlib.suppress(OSError):  # nor another one when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
