# -*- coding: utf-8 -*-

# Zato's own helper services, as its docs invoke them: zato.helpers.input-logger (its
# invoke_async example) and zato.helpers.echo.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import Service


class LogIt(Service):
    name = 'zato20.helpers.log-it'

    def handle(self):
        cid = self.invoke_async('zato.helpers.input-logger', 'My payload')
        echoed = self.invoke('zato.helpers.echo', {'cust_id': 7})
        self.response.payload = {'cid': cid, 'echoed': echoed}
