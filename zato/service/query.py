"""Query string and form fields as services see them (`self.request.http.GET`, `.POST`, and
`self.request.input`): a dict of each name's last value, as Django's and Zato's QueryDict
answer `GET["tags"]`, that also keeps every value of a name given more than once
(`?tags=a&tags=b`: `getlist("tags")` is `["a", "b"]`), so a SimpleIO `List` input gets them
all instead of the last one alone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl


class QueryDict(dict):
    """name -> its last value; getlist(name) -> all of them, in the order given."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        super().__init__()
        self._lists: dict[str, list[str]] = {}
        for key, value in pairs:
            dict.__setitem__(self, key, value)
            self._lists.setdefault(key, []).append(value)

    @classmethod
    def parse(cls, text: str, max_num_fields: int | None = None) -> QueryDict:
        """`a=1&b=2&b=3` (empty values kept, as `?q=`); ValueError past max_num_fields."""
        return cls(parse_qsl(text, keep_blank_values=True, max_num_fields=max_num_fields))

    def getlist(self, key: str, default: Any = None) -> list:
        """Every value given for `key`; `default` (else []) when it was not given. Another value
        the service set since (`GET["tags"] = "x"`) is the only one. Compared by equality, not
        identity: CPython hands out one shared object for many short strings ("b" parsed and
        "b" written in a service are the same object), so identity told nothing."""
        if key not in self:
            return [] if default is None else default
        current = dict.__getitem__(self, key)
        values = self._lists.get(key)
        if not values or values[-1] != current:
            return [current]
        return list(values)

    def repeated(self) -> dict[str, list[str]]:
        """The names given more than once, with all their values."""
        out = {}
        for key in self._lists:
            values = self.getlist(key)
            if len(values) > 1:
                out[key] = values
        return out
