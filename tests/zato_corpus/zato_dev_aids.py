# -*- coding: utf-8 -*-

# Zato's aids a service uses while it is being written: log_input / log_output, and a body the
# service compresses itself with self.response.content_encoding.
import gzip
import json

from zato.server.service import Service


class Logged(Service):
    name = 'aids.logged'

    class SimpleIO:
        input_required = ('cust_id',)

    def handle(self):
        logged = self.log_input('Before processing')
        self.response.payload = {'cust_id': self.request.input.cust_id, 'logged': sorted(logged)}
        self.log_output(suppress_keys=('wsgi_environ', 'environ'))


class Compressed(Service):
    name = 'aids.compressed'

    def handle(self):
        self.response.content_type = 'application/json'
        self.response.content_encoding = 'gzip'
        self.response.payload = gzip.compress(json.dumps({'compressed': True}).encode('utf-8'))
