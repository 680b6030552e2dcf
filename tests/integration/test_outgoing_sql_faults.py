"""Outgoing SQL connections (`self.outgoing.sql.get(name).session()`, `self.out.sql[name]`) to
a real PostgreSQL, through a forwarder the test cuts, as services call them on a real server:

- a session a service left open in a transaction (it raised, or never closed it) is rolled
  back and closed when its call ends, and said in server.log: before, it stayed 'idle in
  transaction' until Python's garbage collector found it, holding its row locks, so the next
  call that updated that row waited for ever (and the pool ran dry behind it);
- a database that takes the connection and never answers is the service's error within
  libpq's connect_timeout (10 s, as the ODB's), not a call that waits for ever;
- a database that goes away and comes back: an error meanwhile, then served again, no restart."""

from __future__ import annotations

import socket
import uuid

import requests
from sqlalchemy import create_engine, text

from tests.conn_support import TCPProxy
from tests.support import PG_URL, free_port, wait_for, zato
from zato.odb.engine import normalize_url

MODULE = """
from contextlib import closing
from zato.server.service import Service


class Leave(Service):
    name = "sqlf.leave"

    def handle(self):
        q = self.request.http.GET
        session = self.outgoing.sql.get(q["conn"]).session()
        session.execute("update {table} set balance = balance + 1 where id = 1")
        if q.get("raise"):
            raise ValueError("failing after an update")


class Add(Service):
    name = "sqlf.add"

    def handle(self):
        with closing(self.outgoing.sql.get(self.request.http.GET["conn"]).session()) as session:
            session.execute("update {table} set balance = balance + 1 where id = 1")
            session.commit()
            self.response.payload = {{"balance": session.execute("select balance from {table}").scalar()}}


class One(Service):
    name = "sqlf.one"

    def handle(self):
        self.response.payload = self.out.sql[self.request.http.GET["conn"]].one("select 42 as answer")
"""


def in_transaction(app: str) -> int:
    """How many of PostgreSQL's sessions of application_name `app` are idle in a transaction."""
    engine = create_engine(normalize_url(PG_URL))
    try:
        with engine.connect() as c:
            query = (
                "select count(*) from pg_stat_activity where application_name = :a and state like 'idle in%'"
            )
            return c.execute(text(query), {"a": app}).scalar()
    finally:
        engine.dispose()


def test_sessions_left_open_and_databases_away(quickstart):
    table = f"sqlf_{uuid.uuid4().hex[:10]}"
    app = f"sqlf-{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(PG_URL))
    with admin.begin() as c:
        c.execute(text(f"create table {table} (id int primary key, balance int)"))
        c.execute(text(f"insert into {table} values (1, 0)"))  # noqa: S608 - the test's own name
    proxy = TCPProxy(free_port(), ("127.0.0.1", int(PG_URL.rsplit(":", 1)[1].split("/")[0])))
    proxy.start()
    silent = socket.create_server(("127.0.0.1", free_port()), backlog=16)  # takes, never answers
    try:
        qs = quickstart(servers=1, workers=1)
        qs.start()
        qs.deploy("sqlf", MODULE.format(table=table))
        qs.open_channels("sqlf", ("leave", "add", "one"))
        user, rest = PG_URL.split("://", 1)[1].split("@", 1)
        db = rest.split("/", 1)[1]
        for name, port in (("pg", proxy.port), ("silent", silent.getsockname()[1])):
            zato("conn", "create", "sql-outgoing", qs.path, "--name", name, "--url",
                 f"postgresql://{user.split(':')[0]}@127.0.0.1:{port}/{db}?application_name={app}",
                 "--password", "-", "--pool-size", "2", input=user.split(":")[1] + "\n")  # fmt: skip
        base = qs.server_url("server1")
        wait_for(
            lambda: requests.get(f"{base}/sqlf/one?conn=pg", timeout=30).status_code == 200, 30, what="pg"
        )

        for leave in ("/sqlf/leave?conn=pg", "/sqlf/leave?conn=pg&raise=1"):
            answer = requests.get(base + leave, timeout=30)
            assert answer.status_code in (200, 500), answer.text
            assert in_transaction(app) == 0  # rolled back, the connection back in the pool
            added = requests.get(f"{base}/sqlf/add?conn=pg", timeout=60)  # waited for ever before
            assert added.status_code == 200, added.text
        assert added.json() == {"balance": 2}  # what the sessions left open wrote was rolled back
        said = (
            "service sqlf.leave left a session of outgoing SQL connection 'pg' in a transaction: rolled back"
        )
        log = qs.server_logs()
        assert said in log
        # two calls left one each: said once (a service that never closes its sessions is not a
        # line a call), the next line a minute later with the count
        assert log.count(said) == 1 and "said once a minute at most, 0 more time(s)" in log, log

        # taken, never answered: the call ends at libpq's connect_timeout (the client's 60 s only sees it end)
        answer = requests.get(f"{base}/sqlf/one?conn=silent", timeout=60)
        assert answer.status_code == 500, answer.text
        wait_for(lambda: "connection timeout expired" in qs.server_logs(), 10, what="connect_timeout")

        # the database away: the service's error; back: served again by the same worker
        proxy.stop()
        assert requests.get(f"{base}/sqlf/one?conn=pg", timeout=60).status_code == 500
        proxy.start()
        wait_for(
            lambda: requests.get(f"{base}/sqlf/one?conn=pg", timeout=30).status_code == 200, 30, what="back"
        )
        assert requests.get(f"{base}/sqlf/one?conn=pg", timeout=30).json() == {"answer": 42}
    finally:
        silent.close()
        proxy.stop()
        with admin.begin() as c:  # the server's sessions first: one left holding a lock would hold the drop
            ended = "select pg_terminate_backend(pid) from pg_stat_activity where application_name = :a"
            c.execute(text(ended), {"a": app})
            c.execute(text(f"drop table if exists {table}"))
        admin.dispose()
