# -*- coding: utf-8 -*-

# Zato 2.0's translations (its "Translations" chapter): a code of one system mapped to another
# system's through the KVDB with self.translate. They are not here: the service's 500 says so.
from zato.server.service import Service


class GetCustomerType(Service):
    name = 'zato20.customer.type'

    def handle(self):
        self.response.payload = {
            'billing_type': self.translate('CRM', 'CUSTOMER_TYPE', 'A', 'BILLING', 'CUST_TYPE'),
        }
