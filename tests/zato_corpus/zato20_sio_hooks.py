# -*- coding: utf-8 -*-

# Zato 2.0's SimpleIO types of one's own: ForceType subclasses with from_json and to_json,
# in a service that also uses self.request.input.require_any(...) and .deepcopy().
from __future__ import absolute_import, division, print_function, unicode_literals

from decimal import Decimal

from zato.common.exception import BadRequest
from zato.server.service import ForceType, Integer, Service


class Money(ForceType):
    """ '12,50' or '12.50' on input, a Decimal in the service, '12.50 EUR' on output.
    """
    def from_json(self, value, *ignored):
        return Decimal(str(value).replace(',', '.'))

    def to_json(self, value, *ignored):
        return '{:.2f} EUR'.format(value)


class Quantity(Integer):
    """ An Integer that may not be negative.
    """
    def from_json(self, value, param_name):
        value = int(value)
        if value < 0:
            raise BadRequest(None, '{} must not be negative, is {}'.format(param_name, value))
        return value


class PriceOrder(Service):
    name = 'zato20.order.price'

    class SimpleIO:
        input_required = (Money('unit_price'), Quantity('quantity'))
        input_optional = ('email', 'phone', 'customer_id')
        output_required = (Money('total'), 'contact', 'as_sent')

    def handle(self):
        self.request.input.require_any('email', 'phone', 'customer_id')

        original = self.request.input.deepcopy()
        self.request.input.unit_price = self.request.input.unit_price * 2  # a copy stays as it was

        self.response.payload.total = original.unit_price * self.request.input.quantity
        self.response.payload.contact = self.request.input.email or self.request.input.phone or \
            self.request.input.customer_id
        self.response.payload.as_sent = '{}'.format(original.unit_price)

