# -*- coding: utf-8 -*-

# Zato 2.0's self.channel is the type of the channel a service was invoked through (its
# "Writing a service" chapter: "Type of the channel (not its name)"), compared with Zato's
# constants and logged as text; Zato 3.x's self.channel.name and .type read the same object.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.common import CHANNEL
from zato.server.service import Service


class WhoCalled(Service):
    name = 'zato20.channel.who-called'

    def handle(self):
        if self.channel == CHANNEL.HTTP_SOAP:
            how = 'over HTTP'
        elif self.channel in (CHANNEL.AMQP, CHANNEL.ZMQ):
            how = 'from a queue'
        elif self.channel == CHANNEL.INVOKE:
            how = 'by another service'
        else:
            how = 'some other way'
        self.logger.info('channel:[{}]'.format(self.channel))
        self.response.payload = {
            'how': how,
            'channel': self.channel,
            'as_text': '{}'.format(self.channel),
            'name': self.channel.name,
            'type': self.channel.type,
        }


class Caller(Service):
    name = 'zato20.channel.caller'

    def handle(self):
        self.response.payload = self.invoke('zato20.channel.who-called')
