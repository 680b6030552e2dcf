# -*- coding: utf-8 -*-

# Zato 3.2's list response: self.response.payload[:] = records (here a generator of objects,
# as a query gives), each filtered by the declared output.
from zato.server.service import Integer, Service


class Client(object):
    def __init__(self, client_id, name):
        self.client_id = client_id
        self.name = name
        self.internal_note = 'never returned'


class GetList(Service):
    name = 'crm.client.get-list'

    class SimpleIO:
        input_optional = (Integer('count'),)
        output_required = (Integer('client_id'), 'name')
        response_elem = 'clients'

    def handle(self):
        count = self.request.input.count or 2
        self.response.payload[:] = (Client(i, 'Client {}'.format(i)) for i in range(1, count + 1))
