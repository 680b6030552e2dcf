# -*- coding: utf-8 -*-

# An outgoing plain HTTP connection, looked up by its name.
from zato.server.service import Service


class FetchClient(Service):
    name = 'out.http.fetch-client'

    class SimpleIO:
        input_required = ('client_id', 'conn_name')

    def handle(self):
        assert self.out is self.outgoing
        conn = self.outgoing.plain_http[self.request.input.conn_name].conn
        response = conn.get(self.cid, params={'client_id': self.request.input.client_id, 'lang': 'pl'})
        self.response.payload = {'status': response.status_code, 'remote': response.json()}
