"""JSON of what services hand over (responses, messages, async calls, outgoing HTTP bodies).

The standard library's encoder, plus the values a service commonly holds after reading a
database: datetimes, dates and times become ISO 8601 text, Decimals their exact digits as text
(as Zato's SimpleIO sends a Decimal), UUIDs their usual 36-character form, any other mapping
(a database row's RowMapping) an object, and a dataclass instance (a Zato model, nested in
another one's list) an object of the fields it has. NaN and infinities are refused, as no JSON parser
reads them back. Anything else still raises TypeError naming its type, for the caller to
report with the service's name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def loads(raw: str | bytes) -> Any:
    """json.loads for what another process wrote (Redis entries, notices, messages): a document
    nested deeper than the parser goes raises ValueError like any other malformed one (json
    raises RecursionError for it), so a reader that skips malformed entries skips that too."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None


_DIGITS = re.compile(r"^Exceeds the limit \((\d+) digits\) for integer string conversion: value has (\d+)")


def error_text(e: ValueError) -> str:
    """Why a JSON document could not be read, for whoever sent it. Python's refusal of a long
    integer says to call sys.set_int_max_str_digits(), which only the server's code could do:
    it says what the sender can do instead."""
    if m := _DIGITS.match(str(e)):
        return f"a number of {m[2]} digits (at most {m[1]} are read: send a longer one as a string)"
    return str(e)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or infinities)")


_INF = float("inf")


def _finite(text: str) -> float:
    """A number with a fraction or exponent, refused when a double cannot hold it: Python reads
    1e400 as infinity, which dumps() refuses to write, as it does NaN."""
    value = float(text)
    if value in (_INF, -_INF):
        said = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"the number {said} is out of range: more than a double holds (send it as a string)")
    return value


_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def loads_strict(raw: str | bytes) -> Any:
    """json.loads of what a client sent, refusing NaN, Infinity and -Infinity with ValueError:
    Python's parser takes them, no other JSON parser does, and dumps() refuses to write them
    (a service answering with the payload it was given would fail after it ran). So is a
    number out of a double's range (1e400), which Python reads as infinity."""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads does
    if raw.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", raw, 0)
    return _STRICT.decode(raw)


def nests_deeper(value: object, limit: int) -> bool:
    """Whether dicts and lists (tuples) in `value` nest more than `limit` levels; walked without
    recursion, so any depth is safe to ask about."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def media_type(content_type: str | None) -> str:
    """A Content-Type value's media type, lower-case (media types are case-insensitive, RFC
    9110 8.3.1), its parameters (charset) aside."""
    return (content_type or "").split(";")[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """A Content-Type value names JSON (its parameters, such as charset, aside)."""
    return media_type(content_type) == JSON_TYPE


def is_form(content_type: str | None) -> bool:
    """A Content-Type value names a URL-encoded form, whatever its case (before, only the
    lower-case spelling was one: `Application/x-www-form-urlencoded` was read as JSON)."""
    return media_type(content_type) == FORM_TYPE


def is_model(value: Any) -> bool:
    """A dataclass instance (a Zato model, written as an object of its fields), not the class."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if is_model(value):  # init=False: only fields set
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if hasattr(value, f.name)}
    raise TypeError(f"a {type(value).__name__} is not JSON (give a dict, list, str, number, bool or None)")


_ENCODER = json.JSONEncoder(default=_default, allow_nan=False)  # built once: dumps is per response


def dumps(value: Any) -> str:
    """json.dumps with dates, Decimals and UUIDs as text; raises TypeError or ValueError."""
    return _ENCODER.encode(value)


def _lenient(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return _default(value)
    except TypeError:
        return repr(value)


_LENIENT = json.JSONEncoder(default=_lenient, allow_nan=True)


def dumps_lenient(value: Any) -> str:
    """JSON of what a broker says of a message (its headers may hold bytes, timestamps,
    Decimals, NaN): what is not JSON becomes text (bytes as UTF-8, invalid bytes replaced;
    anything else its repr). Never raises for a value it can walk, so a message is never
    failed for its metadata."""
    return _LENIENT.encode(value)
