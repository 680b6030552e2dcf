# -*- coding: utf-8 -*-

# The request/response API of a Zato service, reported back as JSON.
from zato.server.service import Service


class Inspect(Service):
    name = 'demo.inspect'

    def before_handle(self):
        self.environ['before'] = True

    def handle(self):
        http = self.request.http
        self.response.payload = {
            'name': self.name,
            'cid': self.cid,
            'channel_name': self.channel.name,
            'channel_type': self.channel.type,
            'method': http.method,
            'path': http.path,
            'GET': dict(http.GET),
            'POST': dict(http.POST),
            'params': dict(http.params),
            'content_type': http.headers.get('Content-Type'),
            'content_length': http.headers.get('Content-Length'),
            'x_custom': http.headers.get('X-Custom'),
            'raw_request': self.request.raw_request,
            'payload': self.request.payload,
            'wsgi_method': self.wsgi_environ.get('REQUEST_METHOD'),
            'before': self.environ.get('before'),
            'utcnow': self.time.utcnow(),
            'server': self.server.name,
        }
        self.response.content_type = 'application/vnd.demo+json'
        self.response.headers['X-Demo'] = 'yes'
