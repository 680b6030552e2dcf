"""Natural order of names: `server2` before `server10`, as a person counts."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """A sort key comparing runs of digits as numbers and the rest as text: sorted() with it
    gives server1, server2, ..., server10 (plain text order puts server10 before server2)."""
    return tuple(
        (0, int(part), part) if part.isdigit() else (1, part, "") for part in _DIGITS.split(name) if part
    )
