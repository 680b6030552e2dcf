# -*- coding: utf-8 -*-

# Zato's exception names answer with their HTTP status.
from zato.common.exception import BadRequest, NotFound
from zato.server.service import Service


class Lookup(Service):
    name = 'demo.lookup'

    class SimpleIO:
        input_required = ('sku',)

    def handle(self):
        sku = self.request.input.sku
        if not sku.startswith('SKU-'):
            raise BadRequest(self.cid, 'sku must start with SKU-')
        if sku != 'SKU-1':
            raise NotFound(self.cid, 'no product {}'.format(sku))
        self.response.payload = {'sku': sku, 'price': 10}
