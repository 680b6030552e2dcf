# -*- coding: utf-8 -*-

# Zato 2.0's helpers on self.request.input: require_any(...) and deepcopy().
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.common.exception import BadRequest
from zato.server.service import Bool, Dict, Service


class Register(Service):
    name = 'zato20.customer.register'

    class SimpleIO:
        input_optional = ('email', 'phone', 'customer_id', Dict('address'))
        output_required = ('contact', 'city_sent', 'city_used')

    def handle(self):
        self.request.input.require_any('email', 'phone', 'customer_id')

        sent = self.request.input.deepcopy()
        address = self.request.input.address
        address['city'] = address['city'].upper()  # the copy keeps what the client sent

        self.response.payload.contact = self.request.input.email or self.request.input.phone or \
            self.request.input.customer_id
        self.response.payload.city_sent = sent.address['city']
        self.response.payload.city_used = address['city']


class Subscribe(Service):
    """ A service that maps require_any's error to its own, as Zato users do.
    """
    name = 'zato20.subscribe'

    class SimpleIO:
        input_optional = ('email', 'phone')
        output_required = ('via',)

    def handle(self):
        try:
            self.request.input.require_any('email', 'phone')
        except ValueError:
            self.response.status_code = 422
            self.response.payload.via = 'nothing'
        else:
            self.response.payload.via = 'email' if self.request.input.email else 'phone'


class Settle(Service):
    """ Acknowledges or rejects a message, as Zato's own pub/sub services check their flags:
    require_any first, then the values themselves.
    """
    name = 'zato20.message.settle'

    class SimpleIO:
        input_required = ('msg_id',)
        input_optional = (Bool('ack'), Bool('reject'))
        output_required = ('msg_id', 'state')

    def handle(self):
        input = self.request.input
        input.require_any('ack', 'reject')

        if input.ack and input.reject:
            raise BadRequest(self.cid, 'Cannot both acknowledge and reject a message')

        self.response.payload.msg_id = input.msg_id
        self.response.payload.state = 'acknowledged' if input.ack else 'rejected'


class RawOfInvoked(Service):
    """ Zato 2.0's docs: a service invoked directly gets the Python object it was given as
    its raw_request.
    """
    name = 'zato20.raw-of-invoked'

    def handle(self):
        raw = self.request.raw_request
        self.response.payload = {'type': type(raw).__name__, 'raw': raw}


class InvokeForRaw(Service):
    name = 'zato20.invoke-for-raw'

    def handle(self):
        self.response.payload = {
            'dict': self.invoke('zato20.raw-of-invoked', {'cust_id': 1}),
            'list': self.invoke('zato20.raw-of-invoked', [1, 2]),
            'nothing': self.invoke('zato20.raw-of-invoked'),
            'http': self.request.raw_request,
        }
