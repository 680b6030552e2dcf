"""Every bench script runs in the project's virtualenv ($VENV, default .venv at the root):
enter() re-executes the script with its python, or, when there is none, says how to make it
and exits, instead of a traceback from os.execv."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def enter() -> str:
    """Re-exec into the virtualenv unless already in it; then put the project on sys.path and
    return its root."""
    # Every process the bench starts (`python -m zato ...`, servers, connectors) imports the
    # zato of this tree: PYTHONPATH names it first, and PYTHONSAFEPATH keeps `python -m` from
    # putting the working directory before it (run from another checkout, the `zato` commands
    # measured that checkout's code).
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not paths or os.path.realpath(paths[0]) != os.path.realpath(ROOT):
        os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *paths])
    os.environ["PYTHONSAFEPATH"] = "1"
    venv = os.environ.get("VENV", os.path.join(ROOT, ".venv"))
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) != os.path.realpath(venv):
        if not os.access(python, os.X_OK):
            script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "bench"
            sys.exit(f"{script}: no virtualenv at {venv}: run `make deps` in {ROOT} first (or set VENV)")
        os.execv(python, [python, *sys.argv])
    sys.path.insert(0, ROOT)
    return ROOT
