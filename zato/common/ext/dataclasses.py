"""Zato 3.2's `zato.common.ext.dataclasses` (its copy of the standard library's module), so that
models written for it (`from zato.common.ext.dataclasses import dataclass`) load unchanged:
here it is the standard library's own."""

from dataclasses import (
    MISSING,
    Field,
    FrozenInstanceError,
    InitVar,
    asdict,
    astuple,
    dataclass,
    field,
    fields,
    is_dataclass,
    make_dataclass,
    replace,
)

__all__ = [
    "MISSING",
    "Field",
    "FrozenInstanceError",
    "InitVar",
    "asdict",
    "astuple",
    "dataclass",
    "field",
    "fields",
    "is_dataclass",
    "make_dataclass",
    "replace",
]
