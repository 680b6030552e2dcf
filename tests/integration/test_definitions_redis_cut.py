"""Redis going away between a connection change's ODB write and its Redis steps (a ZeroMQ
channel's hand-off lists, the list of outgoing queues that /metrics and zato cluster status
read): the error says nothing changed and the same change, made again once Redis answers, goes
through. Before: the ODB was changed, the error did not say so, and running it again failed
('already exists', 'no ... named'), the hand-off lists and the queue list left behind. A real
ODB (SQLite) and a real redis-server of the test's own, shut down right after the ODB write."""

from __future__ import annotations

import pytest

from tests.conn_support import sqlite_odb_and_redis
from tests.support import private_redis
from zato.common.errors import CoordError
from zato.config.settings import RedisSettings
from zato.connector import definitions
from zato.coord.client import connect
from zato.coord.handoff import Handoff
from zato.coord.queues import registered
from zato.odb import connectors

ZMQ = {"name": "a", "address": "tcp://127.0.0.1:45993", "service": "s"}
OUT = {"name": "a", "def": "rabbit"}


@pytest.fixture
def env(tmp_path):
    with sqlite_odb_and_redis(tmp_path, "cut") as (db, cluster, up):
        definitions.create(db, up, cluster, "amqp-def", {"name": "rabbit"})
        yield db, cluster, up


def cut_after(monkeypatch, step: str, admin) -> None:  # noqa: ANN001
    """Redis shuts down right after connectors.`step` has written to the ODB."""
    done = getattr(connectors, step)

    def then_redis_goes(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        result = done(*args, **kwargs)
        admin.shutdown(nosave=True)
        return result

    monkeypatch.setattr(connectors, step, then_redis_goes)


def names(db, cluster: str, kind: str) -> list[str]:  # noqa: ANN001
    return [v["name"] for v in connectors.list_all(db, cluster, kind)]


@pytest.mark.parametrize(("kind", "values"), [("zmq-channel", ZMQ), ("amqp-outgoing", OUT)])
def test_a_create_cut_from_redis_makes_nothing_and_can_be_made_again(env, monkeypatch, kind, values):
    db, cluster, up = env
    with private_redis() as (port, admin):
        down = connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
        cut_after(monkeypatch, "create", admin)
        with pytest.raises(CoordError, match=r"\(nothing changed: run it again once Redis answers\)$"):
            definitions.create(db, down, cluster, kind, dict(values))
        monkeypatch.undo()
    assert names(db, cluster, kind) == []
    definitions.create(db, up, cluster, kind, dict(values))  # again, Redis answering
    assert names(db, cluster, kind) == ["a"]
    if kind == "amqp-outgoing":
        assert registered(up, cluster) == [("amqp", "a")]


@pytest.mark.parametrize(("kind", "values"), [("zmq-channel", ZMQ), ("amqp-outgoing", OUT)])
def test_a_rename_cut_from_redis_keeps_the_old_name_and_can_be_made_again(env, monkeypatch, kind, values):
    db, cluster, up = env
    definitions.create(db, up, cluster, kind, dict(values))
    if kind == "zmq-channel":
        assert Handoff(up, cluster, kind, "a").hand_over(["m1", "m2"])
    with private_redis() as (port, admin):
        down = connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
        cut_after(monkeypatch, "edit", admin)
        with pytest.raises(CoordError, match=r"nothing changed: run it again once Redis answers"):
            definitions.edit(db, down, cluster, kind, "a", {"name": "b"})
        monkeypatch.undo()
    assert names(db, cluster, kind) == ["a"]  # the connector of 'a' still finds its lists
    definitions.edit(db, up, cluster, kind, "a", {"name": "b"})
    assert names(db, cluster, kind) == ["b"]
    if kind == "zmq-channel":
        assert up.llen(Handoff(up, cluster, kind, "b").queue) == 2  # moved with the rename
    else:
        assert registered(up, cluster) == [("amqp", "b")]


@pytest.mark.parametrize(("kind", "values"), [("zmq-channel", ZMQ), ("amqp-outgoing", OUT)])
def test_a_delete_cut_from_redis_keeps_it_and_can_be_made_again(env, monkeypatch, kind, values):
    db, cluster, up = env
    definitions.create(db, up, cluster, kind, dict(values))
    before = connectors.get(db, cluster, kind, "a")
    with private_redis() as (port, admin):
        down = connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
        cut_after(monkeypatch, "delete", admin)
        with pytest.raises(CoordError, match=r"nothing changed: run it again once Redis answers"):
            definitions.delete(db, down, cluster, kind, "a")
        monkeypatch.undo()
    assert connectors.get(db, cluster, kind, "a") == before  # as it was, every field
    definitions.delete(db, up, cluster, kind, "a")
    assert names(db, cluster, kind) == []
    if kind == "amqp-outgoing":
        assert registered(up, cluster) == []
