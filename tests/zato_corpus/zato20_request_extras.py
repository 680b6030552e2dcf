# -*- coding: utf-8 -*-

# Zato 2.0 services that use what its docs list next to self.request and self.response, each
# as an integration would: who called and how, dates between two systems' formats, another
# service's answer passed on as JSON text, a count of invocations.
from __future__ import absolute_import, division, print_function, unicode_literals

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
