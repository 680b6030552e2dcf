# -*- coding: utf-8 -*-

# self.crypto: what one server encrypts or hashes, any server of the cluster decrypts or verifies.
from zato.server.service import Service


class Encrypt(Service):
    name = 'crypto.encrypt'

    def handle(self):
        self.response.payload = {'token': self.crypto.encrypt(self.request.payload['data'].encode('utf8'))}


class Decrypt(Service):
    name = 'crypto.decrypt'

    def handle(self):
        self.response.payload = {'data': self.crypto.decrypt(self.request.payload['token'])}


class Hash(Service):
    name = 'crypto.hash'

    def handle(self):
        self.response.payload = {'hashed': self.crypto.hash_secret(self.request.payload['password'])}


class Verify(Service):
    name = 'crypto.verify'

    def handle(self):
        given = self.request.payload
        self.response.payload = {'ok': self.crypto.verify_hash(given['password'], given['hashed'])}
