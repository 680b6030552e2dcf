# -*- coding: utf-8 -*-

# Zato 4.1 style: the I/O declaration in a nested `class IO`, with dataclass models or with
# element names ("-" marks an optional one).
from dataclasses import dataclass
from typing import Optional

from zato.server.service import Model, Service

# ################################################################################################################################


@dataclass(init=False)
class CreateOrderRequest(Model):
    customer_id: int
    sku: str
    quantity: int = 1
    note: Optional[str] = None


@dataclass(init=False)
class CreateOrderResponse(Model):
    order_id: int
    customer_id: int
    sku: str
    quantity: int


# ################################################################################################################################


class CreateOrder(Service):
    name = 'orders.create'

    class IO:
        input = CreateOrderRequest
        output = CreateOrderResponse

    def handle(self) -> 'None':
        request = self.request.input  # type: CreateOrderRequest

        response = CreateOrderResponse()
        response.order_id = 5000 + request.customer_id
        response.customer_id = request.customer_id
        response.sku = request.sku
        response.quantity = request.quantity

        self.response.payload = response


# ################################################################################################################################


class GetOrder(Service):
    name = 'orders.get'

    class IO:
        input = 'order_id', '-needs_lines'
        output = 'order_id', 'status', '-lines'

    def handle(self) -> 'None':
        order_id = self.request.input.order_id

        self.response.payload.order_id = order_id
        self.response.payload.status = 'open'
        self.response.payload.internal_cost = 12.5  # Not declared as output, never returned

        if self.request.input.needs_lines:
            self.response.payload.lines = [{'sku': 'SKU-{}'.format(order_id), 'quantity': 2}]

# ################################################################################################################################
