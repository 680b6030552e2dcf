# -*- coding: utf-8 -*-

# Zato 2.0's JSON chapter builds a response with a Bunch and its toJSON() (the bunch package's
# methods), with Bunch imported from zato.server.service as this server's refusal of
# `from bunch import Bunch` says to.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import Bunch, Service


class GetCustomer(Service):
    name = 'zato20.json.customer'

    def handle(self):
        customer = Bunch()
        customer.customer_name = 'Max Derkov'
        customer.address = Bunch.fromDict({'city': 'Prague', 'lines': [{'no': 1}]})
        customer.address.lines[0].no += 1
        self.response.payload = customer.toJSON(sort_keys=True)


class Details(Service):
    name = 'zato20.json.details'

    def handle(self):
        cust = self.request.bunchified().cust
        plain = cust.toDict()
        self.response.payload = {
            'id': cust.details.id,
            'types': [type(plain).__name__, type(plain['details']).__name__],
        }
