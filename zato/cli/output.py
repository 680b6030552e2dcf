"""What the commands print: what happened on standard output, warnings on standard error (as
`zato deploy` and `zato conn` print theirs), so a script that keeps the output of
`zato start DIR > started.txt` keeps what started, and its warnings still reach the terminal."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """One line of `zato start` / `zato stop`: a `warning: ...` to stderr, the rest to stdout;
    flushed, so the two keep their order at a terminal."""
    print(line, file=sys.stderr if line.startswith("warning: ") else sys.stdout, flush=True)
