# -*- coding: utf-8 -*-

# Zato 2.0's SimpleIO type names, as its docs and services import them.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import UTC, Integer, ListOfDicts, Nested, Service, Unicode


class CustomerOrders(Service):
    name = 'zato20.customer.orders'

    class SimpleIO:
        input_required = (Unicode('cust_name'), UTC('since'))
        input_optional = (ListOfDicts('filters'), Nested('extra'))
        output_required = (Integer('cust_id'), ListOfDicts('orders'), UTC('last_seen'))
        output_optional = (Nested('extra'), 'since')

    def handle(self):
        self.response.payload.cust_id = 1
        self.response.payload.orders = [{'id': 1, 'status': 'new'}] + (self.request.input.filters or [])
        self.response.payload.last_seen = '2014-01-01T12:00:00+00:00'
        self.response.payload.extra = self.request.input.extra
        self.response.payload.since = self.request.input.since
