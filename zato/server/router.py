"""HTTP channel routing: exact URL paths by one dict lookup, paths with Zato's `{name}`
parameters (`/items/{id}/notes`) through a tree of path segments, so matching costs the
depth of the path, never a scan of every channel.

A parameter takes one whole segment; a literal segment wins over a parameter at the same
place. Parameter names belong to the path that was added (kept at its leaf), so `/items/{id}`
and `/items/{item_id}/notes` each get their own names. `match(path)` returns
(channels by method, {parameter: value}) or None.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar

from zato.common.errors import ConfigError

T = TypeVar("T")
PARAM_RE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def param_names(url_path: str) -> list[str]:
    """The `{name}` parameters of a channel's URL path; ConfigError naming a bad one."""
    names = []
    for segment in url_path.split("/"):
        if "{" not in segment and "}" not in segment:
            continue
        m = PARAM_RE.match(segment)
        if m is None:
            raise ConfigError(
                f"channel url_path {url_path!r}: {segment!r} is not a parameter; "
                "a parameter is a whole path segment such as {id}"
            )
        if m.group(1) in names:
            raise ConfigError(f"channel url_path {url_path!r}: parameter {m.group(1)} appears twice")
        names.append(m.group(1))
    return names


def shape(url_path: str) -> str:
    """The path with every parameter's name left out: two paths of one shape match the same
    requests (`/items/{id}` and `/items/{item_id}` are both `/items/{}`)."""
    return "/".join("{}" if PARAM_RE.match(segment) else segment for segment in url_path.split("/"))


class _Node(Generic[T]):
    __slots__ = ("literal", "names", "param", "value")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.value: T | None = None
        self.names: list[str] = []  # at a leaf: the parameter names of the path added there


class Router(Generic[T]):
    def __init__(self) -> None:
        self.exact: dict[str, T] = {}
        self._root: _Node[T] = _Node()
        self._seen: dict[str, tuple[T, dict[str, str]] | None] = {}  # path -> last match

    CACHE_SIZE = 10000  # paths remembered; the cache starts over when full

    def __len__(self) -> int:
        return len(self.exact) + self._count(self._root)

    def _count(self, node: _Node[T]) -> int:
        n = int(node.value is not None)
        for child in node.literal.values():
            n += self._count(child)
        return n + (self._count(node.param) if node.param else 0)

    def add(self, url_path: str, value: T) -> None:
        """Add (or replace) what `url_path` leads to. A path of the same shape as one added
        before replaces it (callers refuse such paths when channels are created)."""
        self._seen = {}
        names = param_names(url_path)
        if not names:
            self.exact[url_path] = value
            return
        node = self._root
        for segment in url_path.split("/"):
            if PARAM_RE.match(segment) is None:
                node = node.literal.setdefault(segment, _Node())
                continue
            if node.param is None:
                node.param = _Node()
            node = node.param
        node.value, node.names = value, names

    def get(self, url_path: str) -> T | None:
        """What was added under exactly this url_path (static paths only)."""
        return self.exact.get(url_path)

    def match(self, path: str) -> tuple[T, dict[str, str]] | None:
        found = self.exact.get(path)
        if found is not None:
            return found, {}
        if not (self._root.literal or self._root.param):
            return None
        try:
            return self._seen[path]
        except KeyError:
            pass
        values: list[str] = []
        leaf = self._walk(self._root, path.split("/"), 0, values)
        result = None
        if leaf is not None and leaf.value is not None:  # a leaf _walk returns always has a value
            result = (leaf.value, dict(zip(leaf.names, values, strict=True)))
        if len(self._seen) >= self.CACHE_SIZE:
            self._seen = {}
        self._seen[path] = result
        return result

    def _walk(self, node: _Node[T], segments: list[str], i: int, values: list[str]) -> _Node[T] | None:
        """The leaf `segments[i:]` leads to from `node`; the parameters' values are put in
        `values`, in path order."""
        if i == len(segments):
            return node if node.value is not None else None
        segment = segments[i]
        child = node.literal.get(segment)
        if child is not None:
            leaf = self._walk(child, segments, i + 1, values)
            if leaf is not None:
                return leaf
        if node.param is not None and segment:
            leaf = self._walk(node.param, segments, i + 1, values)
            if leaf is not None:
                values.insert(0, segment)
                return leaf
        return None
