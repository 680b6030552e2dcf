# -*- coding: utf-8 -*-

# A Zato 2.0 service run both by the scheduler and over HTTP: Zato's scheduler docs say to
# check self.channel and self.job_type to tell how a service was invoked, and its service
# attributes include self.data_format and self.transport.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.common import DATA_FORMAT
from zato.server.service import Service


class SyncBillings(Service):
    name = 'zato20.billings.sync'

    def handle(self):
        if self.job_type:
            invoked_by = 'job: {}'.format(self.job_type)
        else:
            invoked_by = self.channel.type

        self.response.payload = {
            'invoked_by': invoked_by,
            'is_json': self.data_format == DATA_FORMAT.JSON,
            'transport': self.transport,
        }


class SyncAll(Service):
    """ Runs the one above as another service would.
    """
    name = 'zato20.billings.sync-all'

    def handle(self):
        self.response.payload = self.invoke('zato20.billings.sync')
