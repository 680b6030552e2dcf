# -*- coding: utf-8 -*-

# No I/O declaration at all: the payload as it came, text or JSON.
from json import dumps

from zato.server.service import Service


class Echo(Service):
    name = 'demo.echo.plain'

    def handle(self):
        self.response.payload = self.request.payload


class SimpleEcho(Service):
    name = 'demo.echo.sio'

    class SimpleIO:
        input_required = ('id', 'msg')
        output_required = ('id', 'msg')

    def handle(self):
        self.response.payload = self.request.input


class Dumped(Service):
    name = 'demo.echo.dumped'

    def handle(self):
        self.response.payload = dumps({'echo': self.request.payload})


class Delete(Service):
    """A DELETE answered 204 No Content, as REST APIs do."""
    name = 'demo.no-content'

    def handle(self):
        self.response.status_code = 204
        self.response.payload = {'ignored': 'a 204 has no body'}
