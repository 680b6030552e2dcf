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


class CacheByPrefix(Service):
    """Zato's cache API by prefix, and as a dict."""
    name = 'demo.cache.by-prefix'

    def handle(self):
        prefix = self.request.payload['prefix']
        cache = self.cache.get_cache('builtin', 'default')
        for n in range(3):
            cache[prefix + str(n)] = {'n': n}
        cache.set(prefix + '*odd', 'star')  # a glob character in a key is only a character
        found = cache.get_by_prefix(prefix)
        del cache[prefix + '0']
        deleted = cache.delete_by_prefix(prefix, return_found=True)
        cache.set(prefix + 'short', 1)
        self.response.payload = {
            'found': sorted(found), 'values': found[prefix + '1'], 'deleted': sorted(deleted),
            'left': cache.get_by_prefix(prefix), 'expire': cache.expire(prefix + 'short', 0.2),
            'expire_missing': cache.expire(prefix + 'missing', 1),
        }


class Cache41(Service):
    """Zato 4.1's cache examples: the calls are on self.cache itself, with exists()."""
    name = 'demo.cache.zato41'

    def handle(self):
        key = self.request.payload['key']
        self.cache.set(key, {'username': 'joe', 'roles': ['admin', 'editor']}, expiry=300)
        cached = self.cache.get(key)
        present = self.cache.exists(key)
        self.cache.delete(key)
        self.response.payload = {
            'roles': cached['roles'], 'present': present, 'gone': not self.cache.exists(key),
            'after': self.cache.get(key), 'same_as_default': self.cache.default.get(key) is None,
        }
