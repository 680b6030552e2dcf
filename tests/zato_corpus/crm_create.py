# -*- coding: utf-8 -*-

# Zato 3.2 shorthand: input/output on the class, "-" marks an optional element.
from zato.server.service import Service


class CreateClient(Service):
    name = 'crm.client.create'

    input = 'name', '-email', '-account_id'
    output = 'client_id', 'name', '-email'

    def handle(self):
        self.response.payload = {
            'client_id': 1000 + len(self.request.input.name),
            'name': self.request.input.name,
            'email': self.request.input.email,
            'account_id': self.request.input.account_id,
        }
        self.response.status_code = 201
        self.response.headers['Location'] = '/crm/clients/{}'.format(self.response.payload['client_id'])
