# -*- coding: utf-8 -*-

# Zato's cache API and the key-value DB, shared by every server of the cluster.
from zato.server.service import Service


class CacheSet(Service):
    name = 'demo.cache.set'

    class SimpleIO:
        input_required = 'key', 'value'
        input_optional = 'expiry',

    def handle(self):
        input = self.request.input
        self.cache.default.set(input.key, input.value, expiry=float(input.expiry or 0))
        self.kvdb.conn.incr('demo:cache-sets')
        self.response.payload = {'stored': input.key, 'server': self.server.name}


class CacheGet(Service):
    name = 'demo.cache.get'

    class SimpleIO:
        input_required = 'key',
        input_optional = 'delete',

    def handle(self):
        key = self.request.input.key
        value = self.cache.default.get(key)
        if self.request.input.delete:
            self.cache.default.delete(key)
        self.response.payload = {'key': key, 'value': value, 'sets': int(self.kvdb.conn.get('demo:cache-sets') or 0)}
