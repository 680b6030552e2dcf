# -*- coding: utf-8 -*-

# Zato 2.0 services that use what its docs list next to self.request and self.response, each
# as an integration would: who called and how, dates between two systems' formats, another
# service's answer passed on as JSON text, a count of invocations.
from __future__ import absolute_import, division, print_function, unicode_literals

from json import loads

from zato.server.service import Service


class AuditRequest(Service):
    """ Notes who called and how, as an audit trail keeps it.
    """
    name = 'zato20.audit.request'

    def handle(self):
        http = self.request.http
        self.response.payload = {
            'user_agent': http.user_agent,
            'method': http.method,
            'path': http.path,
            'query': dict(http.GET),
            'params': dict(http.params),
            'form': dict(http.get_form_data()),
            'pid_is_int': isinstance(self.server.pid, int),
            'pid': self.server.pid,
        }


class ConvertDates(Service):
    """ A partner sends dates as DD-MM-YYYY; the backend wants MM/DD/YY.
    """
    name = 'zato20.dates.convert'

    def handle(self):
        self.response.payload = {
            'backend_date': self.time.reformat(self.request.payload['date'], 'DD-MM-YYYY', 'MM/DD/YY'),
            'long_date': self.time.reformat(self.request.payload['date'], 'DD-MM-YYYY', 'dddd, MMMM Do YYYY'),
            'utcnow': self.time.utcnow(),
            'today': self.time.today(),
            'today_eu': self.time.today('DD.MM.YYYY'),
            'due': self.time.one_day_from('2013-12-31'),
        }


class GetCustomer(Service):
    name = 'zato20.customer.get'

    def handle(self):
        self.response.payload = {'cust_id': self.request.payload['cust_id'], 'name': 'Jane'}


class GetCustomerJSON(Service):
    """ Passes another service's answer on as the JSON text it is, as Zato 2.0's docs show
    self.invoke(..., serialize=True).
    """
    name = 'zato20.customer.get-json'

    def handle(self):
        response = self.invoke('zato20.customer.get', {'cust_id': 7}, serialize=True)
        self.response.payload = {
            'is_text': isinstance(response, str),
            'parsed': loads(response) if isinstance(response, str) else None,
        }


class UsageCount(Service):
    name = 'zato20.stats.usage'

    def handle(self):
        self.response.payload = {'invoked': self.usage}
