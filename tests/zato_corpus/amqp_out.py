# -*- coding: utf-8 -*-

# Publishing through an outgoing AMQP connection with Zato's argument names.
from zato.server.service import Service


class Publish(Service):
    name = 'out.amqp.publish'

    def handle(self):
        payload = self.request.payload
        self.out.amqp.send(payload['msg'], payload['out_name'], exchange='', routing_key=payload['queue'],
                           headers={'x-demo': 'yes'}, priority=5, expiration=60000)
        self.response.payload = {'sent': True}
