"""One documented exception tree: every exception class in zato/ derives from ZatoError (one
deliberate exception, named in the docstring) and is listed in zato/common/errors.py's docstring."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import zato
from zato.common import errors, exception

ROOT = Path(zato.__file__).parent
OUTSIDE_ON_PURPOSE = {"_OverBudget", "SlowClient"}  # BaseExceptions: the deploy child's, the dashboard's 408
BUILTIN = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


def _classes() -> list[tuple[str, str, list[str]]]:
    """(file, class name, base names) of every class defined in zato/."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
                found.append((str(path.relative_to(ROOT.parent)), node.name, bases))
    return found


def _exception_classes() -> dict[str, tuple[str, list[str]]]:
    """Name -> (file, bases) of every class that derives from an exception, found by closure."""
    classes, known, result = _classes(), set(BUILTIN), {}
    grew = True
    while grew:
        grew = False
        for where, name, bases in classes:
            if name not in result and known.intersection(bases):
                result[name] = (where, bases)
                known.add(name)
                grew = True
    return result


def test_every_exception_class_is_in_the_tree_and_listed():
    tree = errors.__doc__ or ""
    found = _exception_classes()
    assert {"ZatoError", "HTTPError", "BodyError", "StaleEpoch", "NoServer"} <= set(found)  # the scan works
    unlisted = sorted(f"{where}::{name}" for name, (where, _) in found.items() if name not in tree)
    assert not unlisted, f"exception classes missing from zato/common/errors.py's docstring: {unlisted}"
    for name, (where, _) in found.items():
        if name in OUTSIDE_ON_PURPOSE or where.endswith("common/errors.py"):
            continue
        module = ".".join(Path(where).with_suffix("").parts)
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, errors.ZatoError), f"{where}::{name} does not derive from ZatoError"
        assert module in tree, f"errors.py's docstring does not say {name} lives in {module}"


def test_the_dynamic_zato_exceptions_are_listed():
    tree = errors.__doc__ or ""
    made = [
        v for v in vars(exception).values() if isinstance(v, type) and issubclass(v, exception.Reportable)
    ]
    assert len(made) > 5
    for cls in made:
        assert cls.__name__ in tree, f"{cls.__name__} (zato.common.exception) is not in errors.py's docstring"
