# -*- coding: utf-8 -*-

# Services with a constructor of their own, as Zato's services may have one: Zato makes each
# service without arguments (its Service.__init__ takes none it needs), so a base class of a
# project's services sets up its state in __init__(self) and calls super().__init__().
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import Service


class AuditedService(Service):
    """A project's base class: every service of it keeps an audit trail of its invocation."""

    def __init__(self):
        super(AuditedService, self).__init__()
        self.audit = ['created']
        self.started_in = None

    def before_handle(self):
        self.started_in = self.channel.type
        self.audit.append('before_handle')


class GetCustomer(AuditedService):
    name = 'zato20.init.customer.get'

    class SimpleIO:
        input_required = ('cust_id',)
        output_required = ('cust_id', 'audit', 'started_in', 'cid_known')

    def handle(self):
        self.audit.append('handle')
        self.response.payload.cust_id = self.request.input.cust_id
        self.response.payload.audit = self.audit
        self.response.payload.started_in = self.started_in
        self.response.payload.cid_known = bool(self.cid)


class Forwarding(Service):
    """A constructor taking Zato's ignored arguments and passing them on."""
    name = 'zato20.init.forwarding'

    def __init__(self, *args, **kwargs):
        super(Forwarding, self).__init__(*args, **kwargs)
        self.calls = 0

    def handle(self):
        self.calls += 1
        got = self.invoke('zato20.init.customer.get', {'cust_id': 7})
        self.response.payload = {'calls': self.calls, 'got': got}
