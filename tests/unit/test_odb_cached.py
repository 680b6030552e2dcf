"""zato.odb.cached: definitions a worker read from the ODB, read again in the background after
a few seconds (no request waits for the ODB once a name was read), at once after a config
event, and kept on while the ODB is away (logic only: an in-memory loader, a hand-moved clock,
and background work run when the test says)."""

from __future__ import annotations

import logging

import pytest

from zato.common.errors import ODBError
from zato.odb.cached import Cached


class World:
    def __init__(self):
        self.now = 100.0
        self.rows = {"crm": {"name": "crm", "v": 1}}
        self.away = False
        self.loads: list[str] = []
        self.pending: list = []  # background work not run yet

    def load(self, name: str) -> dict | None:
        self.loads.append(name)
        if self.away:
            raise ODBError("ODB at postgresql://db/zato does not answer: connection refused")
        if name == "bug":
            raise KeyError(name)
        return self.rows.get(name)

    def cached(self) -> Cached:
        return Cached(self.load, "thing", recheck=2.0, clock=lambda: self.now, background=self.pending.append)

    def run_background(self) -> None:
        work = list(self.pending)
        self.pending.clear()
        for w in work:
            w()


def test_read_once_then_again_behind_the_next_use_after_the_recheck_and_at_once_after_a_forget():
    w = World()
    c = w.cached()
    assert c.get("crm") == {"name": "crm", "v": 1}
    w.rows["crm"] = {"name": "crm", "v": 2}
    w.now += 1.9
    assert c.get("crm")["v"] == 1 and w.loads == ["crm"] and w.pending == []
    w.now += 0.2
    assert c.get("crm")["v"] == 1  # answered at once with what it has; read behind
    assert c.get("crm")["v"] == 1 and len(w.pending) == 1  # one read however many uses
    w.run_background()
    assert c.get("crm")["v"] == 2 and w.loads == ["crm", "crm"]
    w.rows["crm"] = {"name": "crm", "v": 3}
    c.forget("crm")  # a config event: the change applies on the next use, on its path
    assert c.get("crm")["v"] == 3 and w.pending == []
    assert c.get("nope") is None and c.get("nope") is None and w.loads.count("nope") == 1


def test_while_the_odb_is_away_uses_answer_at_once_from_memory_and_one_read_is_tried_behind(caplog):
    w = World()
    c = w.cached()
    c.get("crm")
    c.get("gone")  # None: there is no such definition, and that is remembered too
    w.away, w.now = True, w.now + 3
    with caplog.at_level(logging.INFO, logger="zato.odb.cached"):
        assert c.get("crm")["v"] == 1
        w.run_background()  # the read behind finds the ODB away
        c.forget("crm")  # an event while away: the definition read before still serves
        for _ in range(5):
            assert c.get("crm")["v"] == 1
            assert c.get("gone") is None
        with pytest.raises(ODBError, match="cannot read thing 'other': .* connection refused"):
            c.get("other")  # never read: no wait for the ODB, an error at once
        assert w.loads == ["crm", "gone", "crm"] and w.pending == []  # nothing more tried
        w.now += 2.1
        for _ in range(3):
            c.get("crm")
            c.get("gone")
        assert len(w.pending) == 1  # one try at a time in the background, once per recheck
        w.run_background()
        assert c.get("crm")["v"] == 1  # still away
        w.now += 2.1
        w.away = False
        w.rows["crm"] = {"name": "crm", "v": 9}
        assert c.get("crm")["v"] == 1  # the read behind has not run yet
        w.run_background()
        assert c.get("crm")["v"] == 9 and c.get("other") is None  # back: read on the request's path
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if m.startswith("cannot read things from the ODB")]) == 1
    assert said.count("the ODB answers again: things are read from it again") == 1


def test_a_bug_in_a_read_behind_is_logged_and_the_reads_go_on(caplog):
    w = World()
    c = w.cached()
    w.rows["bug"] = {"v": 0}
    c._defs["bug"] = (w.now, {"v": 0})  # as if read before the loader broke
    w.now += 3
    assert c.get("bug") == {"v": 0}
    w.run_background()
    assert "cannot read thing 'bug' from the ODB" in caplog.text
    w.now += 3
    c.get("bug")
    assert len(w.pending) == 1  # tried again


def test_a_read_behind_that_began_before_a_change_does_not_undo_it():
    w = World()
    c = w.cached()
    c.get("crm")
    w.now += 3
    c.get("crm")  # a read behind is due; it reads the row as it is now, before the change
    read_behind = w.pending.pop()
    old_load = w.load

    def slow_load(name: str) -> dict | None:  # the change lands while that read is on its way
        value = old_load(name)
        c._load = old_load
        w.rows["crm"] = {"name": "crm", "v": 2}
        c.forget("crm")
        assert c.get("crm")["v"] == 2  # the event's read, on the request's path
        return value

    c._load = slow_load
    read_behind()
    assert w.loads == ["crm", "crm", "crm"]  # first, behind (v1), the event's (v2)
    assert c.get("crm")["v"] == 2  # before: 1 again, for up to 2 s
