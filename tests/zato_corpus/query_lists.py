# -*- coding: utf-8 -*-

# A search whose filter takes several values: a SimpleIO List input the client fills with a
# repeated query parameter (?status=new&status=paid) or a form's checkboxes, as HTTP clients
# and browsers send lists; and the query string read through self.request.http.GET.
from zato.server.service import Int, List, Service


class FindOrders(Service):
    name = 'orders.find'

    class SimpleIO:
        input_optional = (List('status'), Int('limit'), 'sort')
        output_optional = ('status', 'limit', 'sort', 'get_status', 'get_all_status')

    def handle(self):
        inp = self.request.input
        get = self.request.http.GET
        self.response.payload.status = inp.status
        self.response.payload.limit = inp.limit
        self.response.payload.sort = inp.sort
        self.response.payload.get_status = get.get('status')
        self.response.payload.get_all_status = get.getlist('status')
