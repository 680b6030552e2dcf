"""Zato's short names for type hints, so that service modules and models written for Zato 3.2
and 4.1 import them unchanged (`from zato.common.typing_ import list_, optional`). Each is a
standard type; nothing here checks anything at run time."""

from __future__ import annotations

import dataclasses
import datetime
import typing
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass as dataclass  # also importable from here, as in Zato
from dataclasses import field as field
from typing import Any, BinaryIO, NoReturn, TextIO, TypeAlias, TypeVar, cast

any_ = Any
binaryio_ = BinaryIO
callable_ = Callable[..., Any]
cast_ = cast
dict_ = dict
generator_ = Generator
iterator_ = Iterator
list_ = list
noreturn = NoReturn
optional = typing.Optional  # optional[str]: subscripted as the typing form it is
set_ = set
str_ = str
textio_ = textionone = TextIO
tuple_ = tuple
type_ = type
typealias_ = TypeAlias
typevar_ = TypeVar
union_ = typing.Union

anydict = dict[Any, Any]
anydictnone = anydict | None
anylist = list[Any]
anylistnone = anylist | None
anynone = Any | None
anyset = set[Any]
anytuple = tuple[Any, ...]
boolnone = bool | None
callnone = callable_ | None
commondict = dict[str, int | str | bool | float | anydict | anylist | None]
dictlist = list[anydict]
dictnone = anydict | None
dtnone = datetime.datetime | None
floatnone = float | None
intanydict = dict[int, Any]
intdict = dict[int, int]
intdictdict = dict[int, anydict]
intlist = list[int]
intnone = int | None
intlistempty = list[int | None]
intlistnone = list[int] | None
intset = set[int]
intsetdict = dict[int, anyset]
intstrdict = dict[int, str]
stranydict = dict[str, Any]
strdictdict = dict[str, anydict]
strint = str | int
strintbool = str | int | bool
strintdict = dict[str, int]
strlist = list[str]
strlistdict = dict[str, anylist]
strlistempty = list[str | None]
strlistnone = list[str] | None
strnone = str | None
strorlist = str | anylist
strset = set[str]
strsetdict = dict[str, anyset]
strstrdict = dict[str, str]
strtuple = tuple[str, ...]


def list_field() -> Any:
    """A model's list that starts empty, its own per instance: `phones: list_[Phone] = list_field()`."""
    return dataclasses.field(default_factory=list)


def dict_field() -> Any:
    """A model's dict that starts empty, its own per instance: `extra: anydict = dict_field()`."""
    return dataclasses.field(default_factory=dict)


def instance_from_dict(class_: type, data: dict) -> Any:
    """An instance of `class_` (made without arguments) with `data`'s keys set as attributes."""
    instance = class_()
    for key, value in data.items():
        setattr(instance, key, value)
    return instance
