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
