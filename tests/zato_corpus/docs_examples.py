# -*- coding: utf-8 -*-

# Services written the way Zato's public documentation shows them, where what it documents is
# more than "it runs": the hooks chapter (an exception in before_handle / after_handle is
# logged and the next step runs), the SQL chapters (rows read by column name, a session closed
# in `finally`), and `zato service invoke` on a service with no response.
from contextlib import closing

from zato.server.service import Service


class FailingHooks(Service):
    """zato.io/docs/progguide/hooks/service.html: "For all other hooks, if an exception is
    raised, it will be caught by Zato, logged, and the next method will be called as though
    there was no exception in the previous one." """
    name = 'docs.hooks.failing'

    def before_handle(self):
        self.environ['before'] = 'ran'
        raise ValueError('before_handle of docs.hooks.failing broke')

    def handle(self):
        self.response.payload = {'before': self.environ.get('before'), 'handled': True}

    def after_handle(self):
        raise KeyError('after_handle of docs.hooks.failing broke')


CLIENTS = (
    "SELECT * FROM (VALUES (1, 'John Doe', 'ABC'), (2, 'Jane Roe', 'ABC'), (3, 'Max Poe', 'XYZ'))"
    " AS c(client_id, name, segment) WHERE segment = :segment ORDER BY client_id"
)


class ClientsByColumn(Service):
    """Zato 4.1's SQL page (dev/rest/sql-stored-procedures): a session from the connection,
    rows read by column name (`row['CompanyName']`), the session closed in `finally`."""
    name = 'docs.sql.by-column'

    def handle(self):
        conn = self.outgoing.sql.get('demo-db')
        session = conn.session()
        try:
            result = session.execute(CLIENTS, {'segment': self.request.payload['segment']})
            clients = []
            for row in result:
                clients.append({'id': row['client_id'], 'name': row['name'], 'segment': row.segment})
            self.response.payload = {'clients': clients}
        finally:
            session.close()


class ClientsAsDicts(Service):
    """Zato 3.2's examples/sql page: `with closing(...session()) as session`, a template with
    bind variables; the rows turned into dicts and fetched with fetchall() / first()."""
    name = 'docs.sql.as-dicts'

    def handle(self):
        with closing(self.outgoing.sql.get('demo-db').session()) as session:
            rows = session.execute(CLIENTS, {'segment': 'ABC'}).fetchall()
            first = session.execute(CLIENTS, {'segment': 'XYZ'}).first()
            self.response.payload = {'rows': [dict(row) for row in rows], 'first': dict(first.items())}


class NoResponse(Service):
    """A service that produces no response (`zato service invoke` prints '(None)' for it)."""
    name = 'docs.no-response'

    def handle(self):
        self.logger.info('cid %s: nothing to answer', self.cid)
