# -*- coding: utf-8 -*-

# An outgoing SQL connection: a session from the connection's pool.
from contextlib import closing

from sqlalchemy import text

from zato.server.service import Service


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
