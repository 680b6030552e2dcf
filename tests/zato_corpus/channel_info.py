# -*- coding: utf-8 -*-

# Zato's constants: which channel a message came through (self.channel.name / .type).
from zato.common import DATA_FORMAT
from zato.common.api import CHANNEL
from zato.server.service import Service


class Record(Service):
    name = 'channel.record'

    def handle(self):
        kinds = {CHANNEL.AMQP: 'AMQP', CHANNEL.ZMQ: 'ZeroMQ', CHANNEL.IBM_MQ: 'IBM MQ', CHANNEL.INVOKE: 'invoke'}
        got = self.request.payload
        self.kvdb.conn.rpush('demo:channel:' + got['tag'], '{} {} {}'.format(
            self.channel.name, self.channel.type, kinds.get(self.channel.type, '?')))
        echoed = self.invoke('channel.echo', got, data_format=DATA_FORMAT.JSON)
        self.kvdb.conn.rpush('demo:channel:' + got['tag'], echoed['type'])


class Echo(Service):
    name = 'channel.echo'

    def handle(self):
        self.response.payload = {'type': self.channel.type}
