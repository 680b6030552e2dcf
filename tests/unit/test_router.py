"""Channel routing: Zato's {param} paths, literal segments first, many channels."""

from __future__ import annotations

import pytest

from zato.common.errors import ConfigError
from zato.server.router import Router, param_names, shape


def test_params_literals_and_misses() -> None:
    r: Router[str] = Router()
    r.add("/items", "list")
    r.add("/items/{id}", "one")
    r.add("/items/new", "new")
    r.add("/items/{id}/notes/{note_id}", "note")
    assert r.match("/items") == ("list", {})
    assert r.match("/items/new") == ("new", {})
    assert r.match("/items/42") == ("one", {"id": "42"})
    assert r.match("/items/42/notes/7") == ("note", {"id": "42", "note_id": "7"})
    assert r.match("/items/42/notes") is None
    assert r.match("/items/") is None  # an empty segment is no parameter value
    assert r.match("/other") is None


def test_thousands_of_channels_each_found() -> None:
    r: Router[int] = Router()
    for i in range(3000):
        r.add(f"/api/v{i % 7}/res{i}/{{id}}", i)
    assert len(r) == 3000
    assert all(r.match(f"/api/v{i % 7}/res{i}/x{i}") == (i, {"id": f"x{i}"}) for i in range(3000))


@pytest.mark.parametrize("bad", ["/items/{id", "/items/x{id}", "/a/{1x}", "/a/{id}/{id}"])
def test_bad_parameter_syntax_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="url_path"):
        param_names(bad)


def test_each_path_keeps_its_own_parameter_names() -> None:
    r: Router[str] = Router()
    r.add("/items/{id}", "one")
    r.add("/items/{item_id}/notes", "notes")
    r.add("/items/{item_id}/notes/{note}", "note")
    assert r.match("/items/7") == ("one", {"id": "7"})
    assert r.match("/items/7/notes") == ("notes", {"item_id": "7"})
    assert r.match("/items/7/notes/3") == ("note", {"item_id": "7", "note": "3"})
    assert shape("/items/{id}") == shape("/items/{item_id}") == "/items/{}"
