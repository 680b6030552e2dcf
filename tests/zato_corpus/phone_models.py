# -*- coding: utf-8 -*-

# Zato 3.2 / 4.1 data models nested in one another, with Zato's typing_ names.
from dataclasses import dataclass

from zato.common.typing_ import list_, list_field, optional
from zato.server.service import Model, Service


@dataclass(init=False)
class Phone(Model):
    imei: str
    owner_id: int
    owner_name: str


@dataclass(init=False)
class Address(Model):
    city: str
    zip_code: optional[str] = None


@dataclass(init=False)
class PhoneListRequest(Model):
    client_id: int


@dataclass(init=False)
class PhoneListResponse(Model):
    phone_list: list_[Phone]
    response_type: str


@dataclass(init=False)
class RegisterRequest(Model):
    client_id: int
    phones: list_[Phone] = list_field()
    address: optional[Address] = None


class GetPhoneList(Service):
    name = 'phones.get-list'

    input = PhoneListRequest
    output = PhoneListResponse

    def handle(self):
        request = self.request.input  # type: PhoneListRequest

        first = Phone()
        first.imei = '123'
        first.owner_id = request.client_id
        first.owner_name = 'Jane Doe'

        second = Phone()
        second.imei = '789'
        second.owner_id = request.client_id
        second.owner_name = 'John Doe'

        response = PhoneListResponse()
        response.response_type = 'RZH'
        response.phone_list = [first, second]
        self.response.payload = response


class RegisterPhones(Service):
    name = 'phones.register'

    input = RegisterRequest

    def handle(self):
        request = self.request.input  # type: RegisterRequest
        self.response.payload = {
            'client_id': request.client_id,
            'imeis': [phone.imei for phone in request.phones],
            'owners': [phone.owner_id for phone in request.phones],
            'kinds': sorted({type(phone).__name__ for phone in request.phones}),
            'city': request.address.city if request.address else None,
            'zip_code': request.address.zip_code if request.address else None,
        }
