"""Zato's import path for services, so modules written for Zato 3.2 and 4.1 deploy unchanged
(Zato 2.0's type names too: ListOfDicts, Nested, UTC, and ForceType to subclass):

    from zato.server.service import Service, AsIs, Integer, Model

The same classes as `zato.service` (and `zato.service.sio` for the I/O field types).
"""

from zato.service.base import Request, Response, Service
from zato.service.sio import (
    CSV,
    UTC,
    UTF8,
    UUID,
    AsIs,
    Bool,
    Boolean,
    Bunch,
    Date,
    DateTime,
    Decimal,
    Dict,
    DictList,
    Float,
    ForceType,
    Int,
    Integer,
    List,
    ListOfDicts,
    Model,
    Nested,
    Opaque,
    Text,
    Unicode,
)

__all__ = [
    "UTC",
    "UTF8",
    "UUID",
    "AsIs",
    "Bool",
    "Boolean",
    "CSV",
    "Bunch",
    "Date",
    "DateTime",
    "Decimal",
    "Dict",
    "DictList",
    "Float",
    "ForceType",
    "Int",
    "Integer",
    "List",
    "ListOfDicts",
    "Model",
    "Nested",
    "Opaque",
    "Request",
    "Response",
    "Service",
    "Text",
    "Unicode",
]
