# -*- coding: utf-8 -*-

# Zato 3.2 style: SimpleIO with required/optional input and output.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import AsIs, Integer, Service


class GetClient(Service):
    name = 'crm.client.get'

    class SimpleIO:
        input_required = (Integer('client_id'),)
        input_optional = ('is_vip', AsIs('lang'))
        output_required = ('client_id', 'name')
        output_optional = ('is_vip', 'lang')

    def handle(self):
        input = self.request.input
        self.logger.info('Getting client %s (cid %s)', input.client_id, self.cid)
        self.response.payload.client_id = input.client_id
        self.response.payload.name = 'Client {}'.format(input.client_id)
        self.response.payload.is_vip = input.is_vip
        self.response.payload.lang = input.lang
        self.response.payload.internal_note = 'never leaves the server'
