# -*- coding: utf-8 -*-

# No I/O declaration at all: the payload as it came, text or JSON.
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
