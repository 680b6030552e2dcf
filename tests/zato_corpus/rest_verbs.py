# -*- coding: utf-8 -*-

# Zato 3.x's REST services: one method per HTTP verb, handle_GET, handle_POST...
from zato.server.service import Service


class Customer(Service):
    name = 'rest.customer'

    class SimpleIO:
        input_optional = ('cust_id', 'name')

    def handle_GET(self):
        self.response.payload = {'cust_id': self.request.input.cust_id, 'name': 'Jane', 'by': 'handle_GET'}

    def handle_POST(self):
        self.response.status_code = 201
        self.response.payload = {'name': self.request.input.name, 'by': 'handle_POST'}

    def handle_DELETE(self):
        self.response.status_code = 204


class Order(Service):
    """handle() for every method but POST, which has its own."""

    name = 'rest.order'

    def handle(self):
        self.response.payload = {'by': 'handle', 'method': self.request.http.method}

    def handle_POST(self):
        self.response.payload = {'by': 'handle_POST'}
