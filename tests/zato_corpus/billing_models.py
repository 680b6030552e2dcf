# -*- coding: utf-8 -*-

# Zato 4.1 style: dataclass models as input and output.
from dataclasses import dataclass
from typing import Optional

from zato.server.service import Model, Service


@dataclass(init=False)
class InvoiceRequest(Model):
    invoice_id: int
    currency: Optional[str] = None


@dataclass(init=False)
class InvoiceResponse(Model):
    invoice_id: int
    amount: float
    currency: str


class GetInvoice(Service):
    name = 'billing.invoice.get'
    input = InvoiceRequest
    output = InvoiceResponse

    def handle(self):
        request = self.request.input  # type: InvoiceRequest
        response = InvoiceResponse()
        response.invoice_id = request.invoice_id
        response.amount = request.invoice_id * 1.5
        response.currency = request.currency or 'EUR'
        self.response.payload = response
