"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
import math

MAX_SECONDS = 86400.0  # a day: far beyond any wait these commands make, and within what a socket takes


def seconds(text: str) -> float:
    """A duration given on the command line: a number of seconds above 0 and at most a day (not
    nan or inf; a socket's timeout of 1e10 s is an OverflowError)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be a number of seconds above 0, at most {MAX_SECONDS:g}"
        )
    return value


MAX_WAIT = 3600.0  # --wait (conn edit, deploy)


def wait_seconds(text: str) -> float:
    """--wait SECONDS: more than 0 and at most an hour."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_WAIT:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds, more than 0 and at most 3600")
    return value


def check_cluster(flag: str, name: str) -> None:
    """A cluster name given on the command line, refused before anything is written."""
    from zato.common.errors import ConfigError
    from zato.config.settings import cluster_name_problem

    problem = cluster_name_problem(name)
    if problem:
        raise ConfigError(f"{flag} {problem}")


def check_redis(flag: str, url: str) -> None:
    """A Redis URL given on the command line, refused before anything is written."""
    from zato.common.errors import ConfigError
    from zato.config.settings import redis_url_problem

    problem = redis_url_problem(url)
    if problem:
        raise ConfigError(f"{flag} {problem}")


STDIN = "-"  # a URL given as "-": read from stdin (a line each, in the order the flags are named)
STDIN_HELP = "; - reads it from stdin (not seen in ps or shell history)"


def urls_from_stdin(args: argparse.Namespace, *flags: tuple[str, str]) -> None:
    """Each (attribute, flag) of `args` given as "-" is replaced by a line of stdin: a URL with
    a password (the ODB's, Redis's) given on the command line is seen by every user of the host
    in `ps` (/proc/PID/cmdline) while the command runs, and stays in the shell's history, as
    `zato conn ... --password -` avoids for a connection's password. At a terminal each is
    asked for, unechoed."""
    import getpass
    import sys

    from zato.common.errors import ConfigError

    for attr, flag in flags:
        if getattr(args, attr, None) != STDIN:
            continue
        if sys.stdin.isatty():
            try:
                value = getpass.getpass(f"{flag} (not shown; Enter ends it): ")
            except EOFError:  # Ctrl-D at the prompt
                raise ConfigError(f"{flag} -: nothing given") from None
        else:
            value = sys.stdin.readline().rstrip("\r\n")
        if not value.strip():
            raise ConfigError(f"{flag} -: stdin gave no URL (one line each, in the order {flag} came)")
        setattr(args, attr, value.strip())


def described(text: str, *examples: str) -> dict:
    """add_parser() keywords for a command's --help: `text` (what it does) wrapped as argparse
    would, then its example command lines as given (argparse's own wrapping would run them
    together)."""
    import textwrap

    kw: dict = {
        "description": "\n\n".join(textwrap.fill(p, 79) for p in text.split("\n\n")),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    if examples:
        kw["epilog"] = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return kw
