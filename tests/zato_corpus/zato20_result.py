# -*- coding: utf-8 -*-

# Zato 2.0's self.response.result and result_details ("Request and response objects"): a
# service signals a failure with ZATO_ERROR instead of raising, and its caller gets an error.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.common import ZATO_ERROR, ZATO_OK
from zato.server.service import Service


class CheckCustomer(Service):
    name = 'zato20.customer.check'

    class SimpleIO:
        input_required = ('cust_id',)
        output_optional = ('status',)

    def handle(self):
        cust_id = self.request.input.cust_id
        if cust_id > 100:
            self.response.result = ZATO_ERROR
            self.response.result_details = 'No such customer: {}'.format(cust_id)
            if cust_id > 1000:
                self.response.status_code = 404
        else:
            self.response.result = ZATO_OK
            self.response.payload.status = 'active'


class CheckMany(Service):
    """ Invokes the one above for each ID, telling which failed.
    """
    name = 'zato20.customer.check-many'

    def handle(self):
        out = {}
        for cust_id in self.request.payload['ids']:
            try:
                self.invoke('zato20.customer.check', {'cust_id': cust_id})
            except Exception as e:
                out[str(cust_id)] = 'error: {}'.format(e)
            else:
                out[str(cust_id)] = 'ok'
        self.response.payload = out
