# -*- coding: utf-8 -*-

# Services calling services, by name and by class; a name from get_name().
from zato.server.service import Service


class Doubler(Service):

    @staticmethod
    def get_name():
        return 'demo.doubler'

    class SimpleIO:
        input_required = ('number_count',)
        output_required = ('number_count',)

    def handle(self):
        self.response.payload = {'number_count': self.request.input.number_count * 2}


class Quadrupler(Service):
    name = 'demo.quadrupler'

    def handle(self):
        once = self.invoke('demo.doubler', {'number_count': self.request.payload['number_count']})
        twice = self.invoke(Doubler, once)
        self.response.payload = twice
