"""Settings handed from a parent process to its child, instead of the child re-reading the
config file: the child runs on the very values its parent validated at start, even if the
file changed on disk since (a change takes effect when the server restarts, for all of its
processes at once).

The text is JSON; it carries secrets (the ODB URL's password), so it travels only where no
other user can read it: an inherited socketpair (the zygote) or a child's environment
(connectors: /proc/PID/environ is readable by the same user and root only). Never argv, never
a log line. Keep out of it what the child must not hold (`without_secrets`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from zato.common.errors import ConfigError

T = TypeVar("T")

# What a connector process or the zygote never needs: the cluster secret (a connector holds
# its epoch's key only), the admin API's passwords and the one of /metrics.
SECRETS = ("cluster_secret", "admin_password", "invoke_password", "metrics_password")


def without_secrets(settings: T) -> T:
    """`settings` with the SECRETS fields it has emptied."""
    names = {f.name for f in dataclasses.fields(settings)}  # type: ignore[arg-type]
    return dataclasses.replace(settings, **{k: "" for k in SECRETS if k in names})  # type: ignore[type-var]


def to_dict(settings: Any) -> dict:
    """A frozen settings dataclass as plain JSON values."""
    return dataclasses.asdict(settings)


def from_dict(cls: type[T], doc: Any) -> T:
    """The settings `to_dict` gave, as `cls` again; ConfigError if `doc` is not that."""
    try:
        return _build(cls, doc)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"settings from the parent process are not {cls.__name__}: {e}") from None


def dumps(settings: Any) -> str:
    """to_dict as one line of JSON."""
    return json.dumps(to_dict(settings), separators=(",", ":"))


def loads(cls: type[T], text: str) -> T:
    """The settings `dumps` wrote, as `cls` again; ConfigError if the text is not that."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"settings from the parent process are not JSON: {e}") from None
    return from_dict(cls, doc)


def _build(cls: type[T], doc: Any) -> T:
    if not isinstance(doc, dict):
        raise TypeError(f"{cls.__name__} expects an object, got {type(doc).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = set(doc) - names
    if unknown:
        raise KeyError(f"unknown fields {sorted(unknown)}")
    return cls(**{name: _decode(hints[name], value) for name, value in doc.items()})


def _decode(tp: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value)
    origin = get_origin(tp)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    return value
