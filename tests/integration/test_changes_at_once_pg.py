"""Two admins changing the same definitions at once, on a cluster whose ODB is PostgreSQL.

The other admin's change is made with zato's own functions (as a second server or CLI makes
it) and held just before its commit, so the server's admin API request meets it in flight every
time: the test waits until that request either answered or waits on a lock in PostgreSQL, then
lets the other change commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import requests
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session

from tests.support import PG_URL, cluster_name, wait_for
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.engine import ODB, normalize_url


@pytest.fixture
def pg_database() -> Iterator[str]:
    """An empty PostgreSQL database of the test's own (its URL), dropped at the end."""
    name = cluster_name("pgmany").replace("-", "_")
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def pg_cluster(quickstart, pg_database):
    qs = quickstart(servers=1, workers=1, odb=pg_database, lb=False)
    qs.start()
    odb = ODB(pg_database)
    yield qs, odb
    odb.dispose()


class Held:
    """Another admin's change, made in a thread through `odb`, stopped just before it commits
    until release()."""

    def __init__(self, odb: ODB, change: Callable[[], object]):
        self.at_commit, self.go, self.error = threading.Event(), threading.Event(), None
        self._odb = odb

        def hold(_session: Session) -> None:
            if threading.current_thread() is self._thread:
                self.at_commit.set()
                self.go.wait(60)

        self._hold = hold
        event.listen(Session, "before_commit", hold)

        def run() -> None:
            try:
                change()
            except Exception as e:  # noqa: BLE001 - said by the test
                self.error = e

        self._thread = threading.Thread(target=run)
        self._thread.start()
        assert self.at_commit.wait(30), "the other admin's change never reached its commit"

    def release(self) -> None:
        self.go.set()
        self._thread.join(30)
        event.remove(Session, "before_commit", self._hold)
        assert self.error is None, self.error


def waits_on_a_lock(odb: ODB) -> bool:
    with odb.engine.connect() as conn:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return bool(conn.execute(text(query)).scalar())


def meets(odb: ODB, held: Held, request: Callable[[], requests.Response]) -> requests.Response:
    """The answer to `request`, sent while `held` is in flight and released once the request
    answered or waits for it in PostgreSQL."""
    answer: list[requests.Response] = []
    sender = threading.Thread(target=lambda: answer.append(request()))
    sender.start()
    wait_for(lambda: answer or waits_on_a_lock(odb), 30, what="the request to answer or wait for the other")
    held.release()
    sender.join(60)
    return answer[0]


def said(answer: requests.Response) -> tuple[int, object]:
    """The status and the error's details (any other answer whole)."""
    body = answer.json()
    return answer.status_code, body["zato_env"]["details"] if "zato_env" in body else body


def _admin(qs, method: str, path: str, body: dict | None = None) -> requests.Response:  # noqa: ANN001
    url = f"{qs.server_url('server1')}/zato/admin{path}"
    return requests.request(method, url, json=body, auth=qs.admin_auth, timeout=60)


def _names(odb: ODB, cluster: str, kind: str) -> list[str]:
    return sorted(c["name"] for c in connectors.list_all(odb, cluster, kind))


CHANGE_WAIT = 15  # zato.odb.engine.CHANGE_WAIT: how long a change waits for a lock another holds
AMQP_DEF = {"name": "rabbit", "password": "pw", "use_tls": "no", "port": 1}  # never reached


def test_two_renames_of_one_connection_at_once_one_is_told_it_is_gone(pg_cluster):
    """Before, both were answered 200, each with its own new name, and the ODB kept one: the
    admin told `orders-b` had a connection the services could not find."""
    qs, odb = pg_cluster
    connectors.create(odb, qs.cluster, "amqp-def", AMQP_DEF)
    connectors.create(odb, qs.cluster, "amqp-outgoing", {"name": "orders", "def": "rabbit"})
    held = Held(
        odb, lambda: connectors.edit(odb, qs.cluster, "amqp-outgoing", "orders", {"name": "orders-a"})
    )
    answer = meets(odb, held, lambda: _admin(qs, "PATCH", "/conn/amqp-outgoing/orders", {"name": "orders-b"}))
    assert said(answer) == (
        404,
        "no amqp-outgoing named 'orders'",
    )
    assert _names(odb, qs.cluster, "amqp-outgoing") == ["orders-a"]


def test_a_name_created_twice_at_once_is_refused_as_existing(pg_cluster):
    """Before: 503 (as if the ODB were away) with PostgreSQL's UniqueViolation."""
    qs, odb = pg_cluster
    connectors.create(odb, qs.cluster, "amqp-def", AMQP_DEF)
    new = {"name": "orders", "def": "rabbit"}
    held = Held(odb, lambda: connectors.create(odb, qs.cluster, "amqp-outgoing", new))
    answer = meets(odb, held, lambda: _admin(qs, "POST", "/conn/amqp-outgoing", new))
    status, details = said(answer)
    assert (status, str(details).split(":")[0]) == (400, "amqp-outgoing 'orders' already exists")


def test_an_edit_of_a_connection_being_deleted_says_it_is_gone(pg_cluster):
    """Before: 503 'ODB error: UPDATE statement on table ... expected to update 1 row(s); 0 were
    matched.' (200 for an edit that changed nothing)."""
    qs, odb = pg_cluster
    connectors.create(odb, qs.cluster, "amqp-def", AMQP_DEF)
    connectors.create(odb, qs.cluster, "amqp-outgoing", {"name": "orders", "def": "rabbit"})
    held = Held(odb, lambda: connectors.delete(odb, qs.cluster, "amqp-outgoing", "orders"))
    answer = meets(odb, held, lambda: _admin(qs, "PATCH", "/conn/amqp-outgoing/orders", {"is_active": False}))
    assert said(answer) == (
        404,
        "no amqp-outgoing named 'orders'",
    )


def test_a_definition_deleted_while_a_channel_is_made_through_it_is_refused_as_used(pg_cluster):
    """Before, the deletion checked for users before the channel was committed, was answered
    200, and took the new channel with it (ON DELETE CASCADE): the admin who had made the
    channel was told 201 and the channel was gone."""
    qs, odb = pg_cluster
    connectors.create(odb, qs.cluster, "amqp-def", AMQP_DEF)
    channel = {"name": "in", "def": "rabbit", "queue": "q", "service": "s"}
    held = Held(odb, lambda: connectors.create(odb, qs.cluster, "amqp-channel", channel))
    answer = meets(odb, held, lambda: _admin(qs, "DELETE", "/conn/amqp-def/rabbit"))
    assert said(answer) == (
        400,
        "amqp-def 'rabbit' is used by amqp-channel 'in'; delete or move those first",
    )
    assert _names(odb, qs.cluster, "amqp-channel") == ["in"]


def test_two_http_channels_made_at_once_on_one_path_the_second_is_refused(pg_cluster):
    """Before, each checked that no channel served the path before the other was committed:
    both were made, two channels on one path."""
    qs, odb = pg_cluster
    first = odb_api.make_channel("first", "/orders", "orders.get")
    held = Held(odb, lambda: odb_api.save_channel(odb, qs.cluster, first))
    second = {"name": "second", "url_path": "/orders", "service": "orders.list"}
    answer = meets(odb, held, lambda: _admin(qs, "POST", "/channels", second))
    assert said(answer) == (
        400,
        "channel 'first' already serves /orders",
    )
    assert [c.name for c in odb_api.list_channels(odb, qs.cluster)] == ["first"]


def test_a_change_behind_one_that_does_not_end_is_refused_saying_so(pg_cluster):
    """The other admin's change stops before its commit and does not go on (its process
    stopped; a psql transaction left open does the same). Before, an edit of the same
    connection waited as long as that did: the admin's request had no answer at all."""
    qs, odb = pg_cluster
    connectors.create(odb, qs.cluster, "amqp-def", AMQP_DEF)
    connectors.create(odb, qs.cluster, "amqp-outgoing", {"name": "orders", "def": "rabbit"})
    held = Held(
        odb, lambda: connectors.edit(odb, qs.cluster, "amqp-outgoing", "orders", {"is_active": False})
    )
    try:
        url = f"{qs.server_url('server1')}/zato/admin/conn/amqp-outgoing/orders"
        answer = requests.patch(url, json={"delivery_mode": 1}, auth=qs.admin_auth, timeout=CHANGE_WAIT + 30)
    finally:
        held.release()
    status, details = said(answer)
    assert status == 503
    assert str(details).startswith(
        f"ODB error: what this change needs was held for over {CHANGE_WAIT:g} s by another change or"
        " transaction that has not ended"
    )
    assert connectors.get(odb, qs.cluster, "amqp-outgoing", "orders")["is_active"] is False


def test_one_cluster_made_from_two_hosts_at_once_is_made_once_and_the_other_told_it_exists(pg_database):
    """`zato create cluster` of one name run on two hosts at once. Before, the second was
    `zato: error: ODB error: (psycopg.errors.UniqueViolation) duplicate key value violates unique
    constraint "zato_cluster_name_key"` (exit 1) instead of `cluster ... already exists`."""
    from zato.odb.engine import create_schema

    odb, other = ODB(pg_database), ODB(pg_database)
    try:
        create_schema(odb.engine)
        held = Held(odb, lambda: odb_api.ensure_cluster(odb, "twice"))
        got: list[object] = []

        def make() -> None:
            try:
                got.append(odb_api.ensure_cluster(other, "twice"))
            except Exception as e:  # noqa: BLE001 - said by the assertion
                got.append(e)

        second = threading.Thread(target=make)
        second.start()
        wait_for(lambda: got or waits_on_a_lock(odb), 30, what="the second to end or wait for the first")
        held.release()
        second.join(30)
        assert got == [False]  # made by the first: not made again, no error
    finally:
        odb.dispose()
        other.dispose()
