# -*- coding: utf-8 -*-

# Zato 3.2's services as containers of methods (its blog, "Zato services as containers for
# Python functions and methods"): one service makes an instance of another with
# self.new_instance(name) and calls its methods, without handle() running.
from zato.server.service import Service


class CustomerAccount(Service):
    name = 'zato32.customer.account'

    def create_account(self):
        username = self.request.payload['username']
        self.environ['created'] = username
        return {'created': username, 'channel': self.channel.type}

    def delete_account(self):
        return {'deleted': self.environ['created']}

    def handle(self):
        self.response.payload = {'handle': 'ran'}


class AccountAPI(Service):
    name = 'zato32.customer.account-api'

    def handle(self):
        instance = self.new_instance('zato32.customer.account')
        self.response.payload = {
            'created': instance.create_account(),
            'deleted': instance.delete_account(),
            'same_cid': instance.cid == self.cid,
            'name': instance.name,
            'environ': self.environ,
        }
