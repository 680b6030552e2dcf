# -*- coding: utf-8 -*-

# A module deployed as Zato's hot-deployment docs say: copied to the server's
# pickup/incoming/services/ folder, its settings in an .ini file copied to
# pickup/incoming/user-conf/ (Zato 3.2's folder for user config).
from __future__ import absolute_import, division, print_function, unicode_literals

# Zato
from zato.server.service import Service


class HotDeployed(Service):
    """ Says where the CRM is, as the user config deployed beside it tells.
    """
    name = 'zato3.hot-deploy.where'

    def handle(self):
        crm = self.config.hot_deploy_crm.crm
        self.response.payload = {'address': crm.address, 'timeout': int(crm.timeout)}
