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
