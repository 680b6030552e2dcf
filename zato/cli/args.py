"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A duration given on the command line: a number of seconds above 0 (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    return value
