"""The config files a user edits, rendered from the commented templates shipped in `etc/`
(installed with the package as `zato.etc`): every comment and commented default stays, the
values given replace the template's, and keys or sections the template lacks are added."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from zato.common.errors import ComponentError

_SECTION = re.compile(r"^\s*(#\s*)?\[([^\]]+)\]")
_KEY = re.compile(r"^\s*(#\s*)?([A-Za-z0-9_.-]+)\s*=")


# A source checkout (also an editable install, which does not map zato.etc): etc/ next to zato/
_CHECKOUT_ETC = Path(__file__).resolve().parent.parent.parent / "etc"


def template(name: str) -> str:
    """The text of etc/NAME as installed (package zato.etc), else from the source checkout."""
    try:
        return resources.files("zato.etc").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    try:
        return (_CHECKOUT_ETC / name).read_text(encoding="utf-8")
    except OSError as e:
        raise ComponentError(f"the config template {name} is not installed with zato: {e.strerror}") from None


def render_ini(text: str, sections: Mapping[str, Mapping[str, object]]) -> str:
    """The template `text` with `sections` filled in (see the module's docstring)."""
    todo = {s: {k.lower(): (k, v) for k, v in values.items()} for s, values in sections.items()}
    out: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:  # "# [name]" documents an optional section: uncommented when values come
            _flush(out, current, todo)
            name = header.group(2).strip()
            commented = bool(header.group(1))
            current = name if not commented or name in todo else None
            out.append(f"[{name}]" + line.split("]", 1)[1] if commented and current else line)
            continue
        key = _KEY.match(line)
        left = todo.get(current or "", {})
        if key and key.group(2).lower() in left:
            name, value = left.pop(key.group(2).lower())
            out.append(f"{name} = {value}")
            continue
        out.append(line)
    _flush(out, current, todo)
    for section in [s for s in sections if s in todo]:
        out += ["", f"[{section}]"]
        _flush(out, section, todo)
    return "\n".join(out).rstrip("\n") + "\n"


def _flush(out: list[str], section: str | None, todo: dict[str, dict[str, tuple[str, object]]]) -> None:
    """Add the keys of `section` the template had no line for, after its last setting."""
    if section is None or section not in todo:
        return
    extra = [f"{name} = {value}" for name, value in todo.pop(section).values()]
    at = len(out)
    while at > 0 and (not out[at - 1].strip() or out[at - 1].lstrip().startswith("#")) and extra:
        at -= 1
    out[at:at] = extra
