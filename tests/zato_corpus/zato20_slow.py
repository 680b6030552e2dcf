# -*- coding: utf-8 -*-

# Zato's slow_threshold: milliseconds past which an invocation of the service is slow. A report
# known to take long sets its own; the other keeps Zato's default.
from __future__ import absolute_import, division, print_function, unicode_literals

from gevent import sleep

from zato.server.service import Service


class MonthlyReport(Service):
    name = 'zato20.report.monthly'
    slow_threshold = 100

    def handle(self):
        sleep(0.3)  # the query behind the report
        self.response.payload = {'rows': 3, 'slow_threshold': self.slow_threshold}


class DailyReport(Service):
    name = 'zato20.report.daily'

    def handle(self):
        self.response.payload = {'rows': 1, 'slow_threshold': self.slow_threshold}
