# -*- coding: utf-8 -*-

# Zato 3.2 / 4.1 outgoing REST: self.out.rest[name].conn, response.data, http_request and send;
# a dataclass (a Zato model) given as the payload goes as JSON (Zato 4.1's docs).
from dataclasses import dataclass

from zato.server.service import Model, Service


@dataclass(init=False)
class NewClient(Model):
    name: str


class RESTClientName(Service):
    name = 'out.rest.client-name'

    input = 'client_id', 'conn_name'
    output = 'name', 'lang'

    def handle(self):
        conn = self.out.rest[self.request.input.conn_name].conn
        response = conn.get(self.cid, {'client_id': self.request.input.client_id, 'lang': 'en'})
        self.response.payload.name = response.data['name']
        self.response.payload.lang = response.data['lang']


class RESTCreateClient(Service):
    name = 'out.rest.create-client'

    input = 'conn_name', 'client_name'

    def handle(self):
        conn = self.out.rest[self.request.input.conn_name].conn
        created = conn.http_request('POST', self.cid, data={'name': self.request.input.client_name})
        sent = conn.send(self.cid, {'name': 'x'})
        model = NewClient()
        model.name = 'Bobby'
        as_model = conn.post(self.cid, model)
        self.response.payload = {
            'model': as_model.data['client_id'],
            'status': created.status_code,
            'location': created.headers['Location'],
            'created': created.data,
            'sent': sent.data['client_id'],
        }
