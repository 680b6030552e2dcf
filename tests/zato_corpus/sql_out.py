# -*- coding: utf-8 -*-

# An outgoing SQL connection: a session from the connection's pool.
from contextlib import closing

from sqlalchemy import text

from zato.server.service import UUID, Date, DateTime, Decimal, Int, Service


class Sum(Service):
    name = 'out.sql.sum'

    class SimpleIO:
        input_required = ('a_count', 'b_count')
        output_required = ('total',)

    def handle(self):
        input = self.request.input
        with closing(self.outgoing.sql.get('demo-db').session()) as session:
            total = session.execute(text('select :a + :b'), {'a': input.a_count, 'b': input.b_count}).scalar()
        self.response.payload.total = total


# What a database hands back: NUMERIC as Decimal, DATE, TIMESTAMP, UUID.
ROW = (
    "select cast(:price as numeric(10, 2)) as price, cast(3 as numeric) as units,"
    " date '2026-01-02' as due, timestamp '2026-01-02 03:04:05' as created,"
    " cast('d011d054-db4b-4320-9e24-7f4c217af673' as uuid) as ref"
)


class OrderRow(Service):
    name = 'out.sql.order-row'

    def handle(self):
        with closing(self.outgoing.sql.get('demo-db').session()) as session:
            row = session.execute(text(ROW), {'price': self.request.payload['price']}).mappings().one()
        self.response.payload = {'order': row}


class OrderRowIO(Service):
    name = 'out.sql.order-row-io'

    class SimpleIO:
        input_required = (Decimal('price'),)
        output_required = (Decimal('price'), Int('units'), Date('due'), DateTime('created'), UUID('ref'))

    def handle(self):
        with closing(self.outgoing.sql.get('demo-db').session()) as session:
            self.response.payload = session.execute(text(ROW), {'price': self.request.input.price}).one()


class NotJSON(Service):
    name = 'demo.not-json'

    def handle(self):
        self.response.payload = {'tags': {'a', 'b'}}  # a set: JSON has no such thing


class ClientsLegacy(Service):
    """Zato 3.2's SQL example: a query as a plain string, with bind variables."""
    name = 'out.sql.zato32-raw'

    def handle(self):
        template = 'SELECT :name AS name, :segment AS segment'
        parameters = {'name': 'John Doe', 'segment': 'ABC'}
        with closing(self.outgoing.sql.get('demo-db').session()) as session:
            result = session.execute(template, parameters)
            self.response.payload = [list(item) for item in result]


class Runways(Service):
    """Zato 3.3 / 4.1's SQL examples: self.out.sql[name].execute / one / one_or_none."""
    name = 'out.sql.zato41'

    def handle(self):
        conn = self.out.sql['demo-db']
        query = 'SELECT * FROM (VALUES (1, :status), (2, :status), (3, :other)) AS r(runway_id, status) WHERE status = :wanted'
        params = {'status': 'active', 'other': 'closed', 'wanted': self.request.payload['wanted']}
        rows = conn.execute(query, params)
        one = conn.one('SELECT 7 AS runway_id, :s AS status', {'s': 'active'})
        none = conn.one_or_none('SELECT 1 AS x WHERE 1 = 0')
        try:
            conn.one(query, params)
            several = 'one row'
        except Exception as e:
            several = type(e).__name__
        self.response.payload = {'rows': rows, 'one': one, 'none': none, 'several': several}
