"""I/O declarations of services, both generations Zato users write:

Zato 3.2 `class SimpleIO` (input_required, input_optional, output_required, output_optional,
or input / output with a "-" prefix for optional names), the same attributes directly on the
service (`input = "id", "-name"`) or in a `class IO`, and Zato 4.1 dataclass models
(`input = GetClientRequest`, a `Model` whose Optional fields are optional).

A declaration is parsed once per service class (`io_of`); per request, `parse_input` builds
`self.request.input` and `render_output` keeps only the declared output fields. A missing
or malformed input raises InputError (a 400 naming the field).

Empty output, as Zato's SimpleIO documents it (https://zato.io/docs/progguide/sio.html): an
optional output element whose value is None is returned (JSON null) "unless skip_empty_keys is
True"; then empty ones (None, "", an empty list or object) are left out, but those named in
force_empty_keys (True: all). An output element's own default (`Int("max_size", default=100)`)
is returned when the payload lacks the key. Dataclass models (Zato 4.1) leave out None fields,
as before.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import decimal
import math
import sys
import typing
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from zato.common import jsonenc
from zato.common.errors import InputError, ServiceError
from zato.service.query import QueryDict

# Zato's SimpleIO type inference from names alone.
INT_NAMES = ("id",)
INT_SUFFIXES = ("_id", "_count", "_size", "_timeout")
BOOL_PREFIXES = ("by_", "has_", "is_", "may_", "needs_", "should_")
_TRUE = ("true", "1", "yes", "on", "y", "t")
_FALSE = ("false", "0", "no", "off", "n", "f", "")


class Bunch(dict):
    """A dict with attribute access (what Zato users get as self.request.input), with the
    methods of the bunch package Zato 2.0's docs use it through: toDict(), fromDict(d) and
    toJSON(**options) (`self.response.payload = customer.toJSON()`)."""

    def toDict(self) -> dict:  # noqa: N802 - the bunch package's name
        """A plain dict of it: every Bunch inside it, however deep (in lists too), a dict."""
        return unbunchify(self)

    @classmethod
    def fromDict(cls, d: Any) -> Any:  # noqa: N802 - the bunch package's name
        """`d` with attribute access on every dict in it, however deep (bunchify)."""
        return bunchify(d)

    def toJSON(self, **options: Any) -> str:  # noqa: N802 - the bunch package's name
        """Its JSON text; `options` are json.dumps's (indent=2, sort_keys=True...)."""
        import json

        return json.dumps(self, **options)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class NoneOfInputs(InputError, ValueError):
    """require_any found none of its inputs: a 400 naming them. A ValueError too, as Zato's is,
    so a service's own `except ValueError:` around the call still catches it."""


class Input(Bunch):
    """self.request.input of a SimpleIO service (a Bunch), with Zato 2.0's helpers on it."""

    def require_any(self, *names: str) -> None:
        """Zato's `self.request.input.require_any("email", "phone")`: at least one of these
        inputs must be given, else the request is a 400 naming them all. As in Zato, given
        means a true value: one that is missing, None, "", 0, false or an empty list or object
        does not count (Zato's own services test what they got the same way right after)."""
        if not names or not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"require_any takes one or more input names, not {names!r}")
        if not any(self.get(name) for name in names):
            raise NoneOfInputs(f"missing input: at least one of {', '.join(names)} is required")

    def deepcopy(self) -> Input:
        """Zato's `self.request.input.deepcopy()`: a copy of the input, however deep, that the
        service may change without changing self.request.input."""
        return copy.deepcopy(self)


def unbunchify(value: Any) -> Any:
    """The bunch package's unbunchify: every dict in `value`, however deep, a plain dict."""
    if isinstance(value, dict):
        return {k: unbunchify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(unbunchify(v) for v in value)
    return value


def bunchify(value: Any) -> Any:
    """Zato's bunchify: every dict in `value`, however deep (in lists too), as a Bunch of its own."""
    if isinstance(value, dict):
        return Bunch((k, bunchify(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(bunchify(v) for v in value)
    return value


class Payload(Bunch):
    """self.response.payload of a service that declares output: fields set as attributes or
    keys (`payload.name = ...`), or a list of records given at once, Zato's
    `self.response.payload[:] = rows` (any iterable: a list, a generator, query results), or
    one by one, `self.response.payload.append(row)`."""

    _items: list | None = None

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, slice):
            if key != slice(None):
                raise TypeError("only payload[:] = records is supported, not a part of a list")
            object.__setattr__(self, "_items", list(value))
            return
        super().__setitem__(key, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return (self._items or [])[key]
        return super().__getitem__(key)

    def append(self, record: Any) -> None:
        """Zato's `self.response.payload.append(record)` (a service whose SimpleIO says
        `output_repeated = True` adds its records one by one): the answer is the list of
        them, after any given with `payload[:] = ...`."""
        items = self._items
        if items is None:
            items = []
            object.__setattr__(self, "_items", items)
        items.append(record)

    def records(self, repeated: bool = False) -> Any:
        """What the service gave: the list when it assigned or appended one, else the fields
        (self); for a `repeated` output (SimpleIO's output_repeated) given nothing, an empty
        list, as Zato answers."""
        if self._items is None:
            return [] if repeated and not self else self
        return self._items


class Model:
    """Base of Zato 4.1 dataclass models: `@dataclass(init=False) class Req(Model): id: int`."""

    def __init__(self, **kwargs: Any):
        for key, value in kwargs.items():
            setattr(self, key, value)

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


# Field types (Zato's names)


class Elem:
    """One declared field; subclasses convert a value or raise ValueError saying why.

    Zato 2.0 calls this class ForceType, and a type of one's own subclasses it (or one of the
    types below) with `from_json(self, value, *ignored)`, which makes an input value what the
    service gets, and `to_json(self, value, *ignored)`, which makes an output value what the
    response carries (both are given the value and the field's name, as in Zato). Either hook
    runs only for a value that is there: not None, and on input not "" either (an optional
    input sent as "" gets its default, as in Zato). A ValueError from from_json is the
    client's 400 naming the field and the reason; Zato's BadRequest(cid, msg) (any Reportable)
    answers as raised; anything else is the service's 500, logged naming the type and the field.
    """

    kind = "a value"
    default_factory: Any = None  # a dataclass field's default_factory, called per request
    as_is = False

    def __init__(self, name: str, *args: Any, default: Any = None, **kwargs: Any):
        self.name = name
        self.default = default
        self.required = True
        self.args, self.kwargs = args, kwargs  # Zato's ForceType keeps them for its subclasses

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "from_json" in own:  # a ForceType of the user's: its hook converts the input
            cls.convert = _input_hook  # type: ignore[method-assign]
            if "to_json" not in own and "output" not in own:
                cls.output = _output_as_given  # type: ignore[method-assign]
        if "to_json" in own:
            cls.output = _output_hook  # type: ignore[method-assign]
            cls.as_is = False  # its hook runs on output, even on an AsIs subclass

    def convert(self, value: Any) -> Any:
        return value

    def output(self, value: Any) -> Any:
        """The value as the response carries it (Zato's SimpleIO: the declared type, and
        dates, Decimals and UUIDs as text); ValueError saying why it cannot be."""
        return self.convert(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


ForceType = Elem  # Zato 2.0's name of the base of every SimpleIO type


def _input_hook(self: Elem, value: Any) -> Any:
    """convert() of a type with its own from_json: ValueError stays a 400 (with the hook's
    name in it); any other failure is a bug in the service's code, a 500."""
    hook = f"{type(self).__name__}.from_json"
    try:
        return self.from_json(value, self.name)  # type: ignore[attr-defined]
    except ServiceError:  # BadRequest and the other Reportables: answered as raised
        raise
    except (ValueError, decimal.InvalidOperation) as e:  # int("x"), Decimal("x"): the client's
        raise ValueError(f"is refused by {hook}: {e}" if str(e) else f"is refused by {hook}") from None
    except Exception as e:
        raise ServiceError(f"{hook} failed on input {self.name}: {type(e).__name__}: {e}") from e


def _output_hook(self: Elem, value: Any) -> Any:
    """output() of a type with its own to_json: any failure is the service's (a 500 naming
    the field and the hook)."""
    hook = f"{type(self).__name__}.to_json"
    try:
        return self.to_json(value, self.name)  # type: ignore[attr-defined]
    except ServiceError:
        raise
    except Exception as e:  # noqa: BLE001 - the caller answers it as the service's invalid output (500)
        raise ValueError(f"is refused by {hook}: {type(e).__name__}: {e}") from None


def _output_as_given(self: Elem, value: Any) -> Any:
    """output() of a type with from_json but no to_json of its own: the value as it is."""
    return value


class AsIs(Elem):
    as_is = True  # the response carries the value unchanged (no output() call per field)


Opaque = Nested = AsIs  # Nested: Zato 2.0 and 3.0's name for the same pass-through


class Named(AsIs):
    """A field declared by its name alone ("name", "-nick"), which no prefix or suffix types:
    Zato's default type is Text ("Unless it is overridden, the data type of an SIO element
    implicitly defaults to Text", its SimpleIO docs), so a JSON number in the input arrives as
    its text (`{"phone_no": 48600123456}` gives "48600123456", and `.startswith("48")` works
    as in Zato). true/false, an object or a list arrive as they are; the response carries the
    value as given."""

    def convert(self, value: Any) -> Any:
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            return str(value)
        return value


class Text(Elem):
    kind = "a string"

    def convert(self, value: Any) -> Any:
        if isinstance(value, (dict, list)):
            raise ValueError("is not a string")
        return value if isinstance(value, str) else str(value)


Unicode = UTF8 = Text


class Integer(Elem):
    kind = "an integer"

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float):  # JSON's 5.0 (a client that writes every number as a double)
            if value.is_integer():  # 5.5 is refused, not cut to 5
                return int(value)
            raise ValueError("is not a whole number")
        if isinstance(value, str):
            text = value.strip()
            digits = text[1:] if text[:1] in ("+", "-") else text
            # isdecimal: the digits int() reads (isdigit took '²' and a second sign, '+-5', and
            # the client got int()'s own words)
            if digits.isdecimal():
                most = sys.get_int_max_str_digits()  # 4300 unless the interpreter was told otherwise
                if most and len(digits) > most:  # before, Python's advice to raise that limit
                    raise ValueError(f"is too long for an integer: {len(digits)} digits (at most {most})")
                return int(text)
        raise ValueError("is not an integer")

    def output(self, value: Any) -> Any:
        if type(value) is int:  # the usual case, first
            return value
        if isinstance(value, (float, decimal.Decimal)):  # a database's NUMERIC or a computed 3.0
            try:
                whole = int(value)
            except (OverflowError, ValueError):
                raise ValueError("is not an integer") from None
            if whole != value:
                raise ValueError("is not a whole number")
            return whole
        return self.convert(value)


Int = Integer


class Float(Elem):
    """A double. NaN and infinities are refused, as Decimal refuses them: `?amount=nan` would
    pass every check a service makes (`if amount > limit` is false), and JSON cannot carry
    them back; so is a JSON integer too large for a double (10**400)."""

    kind = "a number"

    def convert(self, value: Any) -> Any:
        if isinstance(value, (bool, dict, list)):
            raise ValueError("is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("is not a number") from None
        except OverflowError:
            raise ValueError("is out of range: more than a double holds") from None
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return number


class Decimal(Elem):
    """decimal.Decimal in, its exact digits as text out (as Zato's SimpleIO)."""

    kind = "a decimal number"

    def convert(self, value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return value
        if isinstance(value, (bool, dict, list)) or value is None:
            raise ValueError("is not a decimal number")
        try:
            number = decimal.Decimal(str(value).strip())  # str: 0.1 stays 0.1, not its binary double
        except decimal.InvalidOperation:
            raise ValueError("is not a decimal number") from None
        if not number.is_finite():
            raise ValueError("is not a decimal number")
        return number

    def output(self, value: Any) -> Any:
        return str(self.convert(value))


class Boolean(Elem):
    kind = "true or false"

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("is not true or false")


Bool = Boolean


class List(Elem):
    kind = "a list"

    def convert(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):
            return [item for item in value.split(",") if item]
        raise ValueError("is not a list")


class CSV(List):
    """Zato's CSV element: comma-separated text in (a list too), a list; out, its items joined
    with commas."""

    def output(self, value: Any) -> Any:
        items = self.convert(value)
        return ",".join("" if item is None else str(item) for item in items)


class Dict(Elem):
    kind = "an object"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("is not an object")
        return Bunch(value)


class DictList(Elem):
    """Zato's DictList element: a list of objects (each a Bunch in the input)."""

    kind = "a list of objects"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, dict) for item in value):
            raise ValueError("is not a list of objects")
        return [Bunch(item) for item in value]


ListOfDicts = DictList  # Zato 2.0 and 3.0's name for it


class Date(Elem):
    """A datetime.date; on input also the date of an ISO 8601 date and time, as a browser's
    `toISOString()` writes a date picker's day ("1990-05-01T00:00:00.000Z" is 1990-05-01), which
    Zato's Date takes too."""

    def convert(self, value: Any) -> Any:
        if isinstance(value, dt.date):
            return value
        text = str(value).strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        if len(text) > 10:  # a date and time: its date
            try:
                return dt.datetime.fromisoformat(text).date()
            except ValueError:
                pass
        raise ValueError("is not a date (YYYY-MM-DD)")

    def output(self, value: Any) -> Any:
        day = self.convert(value)
        return (day.date() if isinstance(day, dt.datetime) else day).isoformat()


class DateTime(Elem):
    def convert(self, value: Any) -> Any:
        try:
            return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError("is not an ISO 8601 date and time") from None

    def output(self, value: Any) -> Any:
        return self.convert(value).isoformat()


class UTC(Elem):
    """Zato 2.0's UTC element: a date and time in UTC as text, its "+00:00" left out, in and
    out (a datetime given to the output is written in ISO 8601 first)."""

    kind = "a date and time"

    def convert(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        if not isinstance(value, str):
            raise ValueError("is not a date and time")
        return value.replace("+00:00", "")


class UUID(Elem):
    def convert(self, value: Any) -> Any:
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise ValueError("is not a UUID") from None

    def output(self, value: Any) -> Any:
        return self.convert(value).hex  # Zato's form: 32 hex digits


_PY_TYPES: dict[Any, type[Elem]] = {
    int: Integer,
    float: Float,
    bool: Boolean,
    str: Text,
    list: List,
    dict: Dict,
    dt.date: Date,
    dt.datetime: DateTime,
    uuid.UUID: UUID,
    decimal.Decimal: Decimal,
}


def elem_of(item: Any) -> Elem:
    """A declaration item ("name", "-name", Integer("id"), Integer("-id")) as an Elem with its
    required flag."""
    if isinstance(item, Elem):
        if item.name.startswith("-"):  # Integer("-count"): optional, as a plain "-count" is
            if not item.name.strip("-").strip():
                raise ServiceError(f"I/O declaration {item!r} is not a field name")
            item.name = item.name.lstrip("-")
            item.required = False
        return item
    if not isinstance(item, str) or not item.strip("-").strip():
        raise ServiceError(f"I/O declaration {item!r} is not a field name")
    optional = item.startswith("-")
    name = item.lstrip("-")
    if name in INT_NAMES or name.endswith(INT_SUFFIXES):
        elem: Elem = Integer(name)
    elif name.startswith(BOOL_PREFIXES):
        elem = Boolean(name)
    else:
        elem = Named(name)
    elem.required = not optional
    return elem


@dataclasses.dataclass(frozen=True)
class Fields:
    elems: tuple[Elem, ...] = ()
    model: type | None = None  # a dataclass the input is built as

    def __bool__(self) -> bool:
        return bool(self.elems)


@dataclasses.dataclass(frozen=True)
class IODecl:
    input: Fields = Fields()
    output: Fields = Fields()
    response_elem: str | None = None
    default_value: Any = None
    skip_empty_keys: bool = False  # optional output that is empty is left out ...
    force_empty_keys: frozenset[str] | bool = frozenset()  # ... but these (True: all of them)
    repeated: bool = False  # Zato 2.0's output_repeated: the output is a list of records

    def keeps_empty(self, name: str) -> bool:
        """Whether an optional output element `name` whose value is empty is in the response."""
        if not self.skip_empty_keys or self.force_empty_keys is True:
            return True
        return self.force_empty_keys is not False and name in self.force_empty_keys

    @property
    def declared(self) -> bool:
        return bool(self.input.elems or self.output.elems)


NO_IO = IODecl()


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, Elem)):
        return (value,)
    return tuple(value)


class ModelElem(Elem):
    """A field whose type is itself a dataclass model (Zato 4.1's nested models): an object in
    the input is built as that model, its own fields checked as the top level's are."""

    kind = "an object"

    def __init__(self, name: str, model: type):
        super().__init__(name)
        self.model = model
        self._fields: Fields | None = None  # read at first use: a model may name itself

    def convert(self, value: Any) -> Any:
        return self.at(self.name, value)

    def at(self, path: str, value: Any) -> Any:
        if isinstance(value, self.model):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"invalid input {path}: {_short(value)} is not an object")
        if self._fields is None:
            self._fields = _model_fields(self.model)
        return _build(self._fields, value, None, f"{path}.")

    def output(self, value: Any) -> Any:
        return value  # a model or a dict: JSON as it is (zato.common.jsonenc writes a dataclass)


class ModelList(List):
    """`list_[Phone]`: a list whose items are built as the model."""

    def __init__(self, name: str, item: ModelElem):
        super().__init__(name)
        self.item = item

    def convert(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise ValueError("is not a list")
        return [self.item.at(f"{self.name}[{i}]", v) for i, v in enumerate(value)]

    def output(self, value: Any) -> Any:
        return super().convert(value)


def _model_type(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _model_fields(model: type) -> Fields:
    hints = typing.get_type_hints(model)
    elems = []
    for f in dataclasses.fields(model):
        hint = hints.get(f.name, Any)
        optional = type(None) in typing.get_args(hint)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
        origin = typing.get_origin(base) or base
        nested = _model_type(base)
        items = typing.get_args(base) if origin is list else ()
        item_model = _model_type(items[0]) if len(items) == 1 else None
        if nested is not None:
            elem: Elem = ModelElem(f.name, nested)
        elif item_model is not None:
            elem = ModelList(f.name, ModelElem(f.name, item_model))
        else:
            elem = _PY_TYPES.get(origin, AsIs)(f.name)
        if f.default is not dataclasses.MISSING:
            elem.default = f.default
        if f.default_factory is not dataclasses.MISSING:
            elem.default_factory = f.default_factory
        has_default = f.default is not dataclasses.MISSING or elem.default_factory is not None
        elem.required = not (optional or has_default)
        elems.append(elem)
    return Fields(tuple(elems), model)


def _fields(source: Any, side: str) -> Fields:
    plain = getattr(source, side, None)
    if isinstance(plain, type) and dataclasses.is_dataclass(plain):
        return _model_fields(plain)
    items = [elem_of(i) for i in _as_tuple(plain)]
    for item in _as_tuple(getattr(source, f"{side}_required", None)):
        items.append(elem_of(item))
    for item in _as_tuple(getattr(source, f"{side}_optional", None)):
        elem = elem_of(item)
        elem.required = False
        items.append(elem)
    names = [e.name for e in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ServiceError(f"I/O declaration names {', '.join(dupes)} more than once")
    return Fields(tuple(items))


def io_of(cls: type) -> IODecl:
    """The I/O declaration of a service class (SimpleIO, IO, or input/output attributes)."""
    source = cls.__dict__.get("SimpleIO") or cls.__dict__.get("IO")
    if source is None:
        source = getattr(cls, "SimpleIO", None) or getattr(cls, "IO", None)
    if source is None and any(getattr(cls, side, None) is not None for side in ("input", "output")):
        source = cls
    if source is None:
        return NO_IO
    return IODecl(
        _fields(source, "input"),
        _fields(source, "output"),
        getattr(source, "response_elem", None),
        getattr(source, "default_value", None),
        bool(getattr(source, "skip_empty_keys", False)),
        _force_empty_keys(getattr(source, "force_empty_keys", ())),
        bool(getattr(source, "output_repeated", False)),
    )


def _force_empty_keys(value: Any) -> frozenset[str] | bool:
    """SimpleIO's force_empty_keys: names (one, or a list), or True / False for all or none."""
    if isinstance(value, bool):
        return value
    names = _as_tuple(value)
    if not all(isinstance(n, str) for n in names):
        raise ServiceError(f"force_empty_keys {value!r} is not True, False or a list of output names")
    return frozenset(n.lstrip("-") for n in names)


# Per request


def parse_input(decl: IODecl, payload: Any, query: dict, path_params: dict) -> Any:
    """self.request.input: declared fields from the JSON body, the query string and the URL
    path parameters (path parameters win, then the query string). A payload given as the JSON
    text of an object (Zato's `invoke_async(..., to_json_string=True)`, a text channel's JSON
    body) is that object parsed."""
    payload = _object_of_json_text(payload)
    sources: dict = payload if isinstance(payload, dict) else {}
    if query or path_params:
        sources = {**sources, **query, **path_params}
    fields = decl.input
    if not fields.elems:
        return Input(sources)  # a copy: the service may change it
    lists = _repeated_lists(fields, (payload, query), path_params)
    if lists:
        sources = {**sources, **lists}
    try:
        return _build(fields, sources, decl)
    except RecursionError:  # a model that holds itself (`children: list_[Node]`), given deep input
        raise InputError("input nested too deeply for its model") from None


def _object_of_json_text(payload: Any) -> Any:
    """The dict of a payload that is the JSON text of an object; any other payload as it is."""
    if not isinstance(payload, (str, bytes, bytearray)) or payload.lstrip()[:1] not in ("{", b"{"):
        return payload
    try:
        parsed = jsonenc.loads_strict(bytes(payload) if isinstance(payload, bytearray) else payload)
    except ValueError:  # not JSON after all (UnicodeDecodeError is one): input from elsewhere alone
        return payload
    return parsed if isinstance(parsed, dict) else payload


def _repeated_lists(fields: Fields, given: tuple[Any, ...], path_params: dict) -> dict:
    """A `List` (or `CSV`) input whose name a query string or a form gives more than once
    (`?tags=a&tags=b`, a form's checkboxes): all its values, not the last one alone. `given`:
    the sources in the order parse_input merges them, a later one winning (the form's payload,
    then the query string); a URL path parameter of that name wins over both."""
    names = {elem.name for elem in fields.elems if isinstance(elem, List)}
    out: dict = {}
    for source in given:
        if not names or not isinstance(source, dict):
            continue
        repeated = source.repeated() if isinstance(source, QueryDict) else {}
        for name in names & source.keys():
            if name in repeated:
                out[name] = repeated[name]
            else:
                out.pop(name, None)  # given once in a source that wins: that one value
    for name in path_params or ():
        out.pop(name, None)
    return out


def _build(fields: Fields, sources: Mapping, decl: IODecl | None, prefix: str = "") -> Any:
    """The declared fields of `sources` (a Bunch, or the model's instance); prefix: where a
    nested model's object is in the input (`phones[1].`), for the 400's text."""
    out = Input() if not prefix else Bunch()
    missing = []
    for elem in fields.elems:
        value = sources.get(elem.name)
        if value is None or value == "" and not isinstance(elem, (AsIs, Text)):
            if elem.required:
                missing.append(prefix + elem.name)
            else:
                out[elem.name] = _default(elem, decl)
            continue
        try:
            out[elem.name] = elem.convert(value)
        except ValueError as e:
            raise InputError(f"invalid input {prefix}{elem.name}: {_short(value)} {e}") from None
    if missing:
        raise InputError(f"missing input: {', '.join(missing)}")
    if fields.model is not None:
        model: Any = fields.model  # typeshed reads model.__new__ as type.__new__ (a metaclass call)
        obj = model.__new__(model)
        for key, value in out.items():
            setattr(obj, key, value)
        return obj
    return out


def _default(elem: Elem, decl: IODecl | None) -> Any:
    """An optional input that was not given: the field's own default (a dataclass model's
    `quantity: int = 1`), else the declaration's default_value."""
    if elem.default_factory is not None:
        return elem.default_factory()
    if elem.default is not None or decl is None:
        return elem.default
    return decl.default_value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_item(payload: Any) -> bool:
    """A payload that is one record although it iterates: a mapping, or a named tuple such as
    a database row (SQLAlchemy's Row and RowMapping, collections.namedtuple)."""
    return isinstance(payload, Mapping) or callable(getattr(payload, "_asdict", None))


def _item_dict(item: Any) -> Any:
    if isinstance(item, Mapping):
        return item
    if callable(getattr(item, "_asdict", None)):
        return item._asdict()
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item) if hasattr(item, f.name)}
    return _Attributes(item)


class _Attributes(Mapping):
    """An output object's attributes, read as Zato's SimpleIO reads them, by name: a property
    (`full_name`), a class attribute, a column an ORM loads on access, or a __slots__ field
    counts, not only what the instance's __dict__ holds. Names starting with _ are never read."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __getitem__(self, name: str) -> Any:
        if name.startswith("_"):
            raise KeyError(name)
        try:
            return getattr(self.obj, name)
        except AttributeError:
            raise KeyError(name) from None

    def __iter__(self) -> Any:
        return (k for k in getattr(self.obj, "__dict__", ()) if not k.startswith("_"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _empty(value: Any) -> bool:
    """What skip_empty_keys leaves out: None, "", an empty list or object (not 0 or False)."""
    return value is None or (not value and isinstance(value, (str, bytes, list, tuple, dict)))


def _filter(decl: IODecl, item: Any, service: str) -> dict:
    fields = decl.output
    simple_io = fields.model is None  # a dataclass model leaves out its None fields
    data = _item_dict(item)
    out: dict[str, Any] = {}
    missing = []
    for elem in fields.elems:
        value = data.get(elem.name)  # one lookup (a Payload's get is dict's own, in C)
        if value is None and simple_io and elem.default is not None and elem.name not in data:
            value = elem.default  # Int("max_size", default=100): when the payload lacks it
        if value is None:
            if elem.required:
                missing.append(elem.name)
            elif simple_io and elem.name in data and decl.keeps_empty(elem.name):
                out[elem.name] = None  # set to None: returned; not set at all: left out
            continue
        if decl.skip_empty_keys and not elem.required and _empty(value) and not decl.keeps_empty(elem.name):
            continue
        try:
            out[elem.name] = value if elem.as_is else elem.output(value)
        except ValueError as e:
            bad = f"{elem.name}: {_short(value)} {e}"
            raise ServiceError(f"service {service} produced invalid output {bad}") from None
    if missing:
        raise ServiceError(f"service {service} did not produce required output: {', '.join(missing)}")
    return out


def render_output(decl: IODecl, payload: Any, service: str) -> Any:
    """The response payload with only the declared output fields (dicts, objects, dataclasses,
    or a list of them); anything else (str, bytes) passes as it is."""
    fields = decl.output
    if not fields.elems or payload is None or isinstance(payload, (str, bytes)):
        return payload
    if _one_item(payload):
        out: Any = _filter(decl, payload, service)
    elif isinstance(payload, (list, tuple, Iterable)):  # list, tuple checked before the ABC
        out = [_filter(decl, item, service) for item in payload]
    else:
        out = _filter(decl, payload, service)
    return {decl.response_elem: out} if decl.response_elem else out
