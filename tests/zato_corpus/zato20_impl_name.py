# -*- coding: utf-8 -*-

# Zato 2.0's invoke_by_impl_name: another service invoked by its module and class name (its
# impl_name, "zato20_impl_name.GetRate"), not by the name it was given.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import Service


class GetRate(Service):
    name = 'zato20.rates.get'

    class SimpleIO:
        input_required = ('currency',)
        output_required = ('currency', 'rate')

    def handle(self):
        rates = {'EUR': '4.31', 'USD': '3.97'}
        self.response.payload.currency = self.request.input.currency
        self.response.payload.rate = rates[self.request.input.currency]


class Convert(Service):
    name = 'zato20.rates.convert'

    def handle(self):
        impl_name = self.request.payload.get('impl_name', 'zato20_impl_name.GetRate')
        got = self.invoke_by_impl_name(impl_name, {'currency': 'EUR'}, as_bunch=True)
        self.response.payload = {'rate': got.rate, 'impl_name': self.impl_name}
