# -*- coding: utf-8 -*-

# An AMQP channel's service as Zato 3's AMQP article writes one: it reads the message's
# metadata in self.request.amqp.msg and acknowledges or rejects the message itself.
# An IBM MQ channel's service reads its message's MQMD in self.request.ibm_mq.
import json

from zato.server.service import Service


class OrdersIn(Service):
    name = 'amqp.orders-in'

    def handle(self):
        msg = self.request.amqp.msg
        payload = self.request.payload
        self.kvdb.conn.rpush('demo:amqp-in:' + payload['tag'], json.dumps({
            'action': payload['action'],
            'correlation_id': msg.properties.get('correlation_id'),
            'reply_to': msg.properties.get('reply_to'),
            'priority': msg.properties.get('priority'),
            'content_type': msg.content_type,
            'order_no': msg.headers.get('x-order-no'),
            'header_names': sorted(msg.headers),
            'routing_key': msg.delivery_info['routing_key'],
            'has_tag': msg.delivery_tag is not None,
            'body': msg.body.decode('utf-8'),
        }))
        if payload['action'] == 'reject':
            self.request.amqp.reject()
        elif payload['action'] == 'ack-then-fail':
            self.request.amqp.ack()
            raise Exception('failed after acknowledging')
        elif payload['action'] == 'ack':
            self.request.amqp.ack()


class MessageKind(Service):
    name = 'amqp.message-kind'

    def handle(self):
        self.response.payload = {
            'amqp': self.request.amqp is not None,
            'ibm_mq': self.request.ibm_mq is not None,
        }


class MQIn(Service):
    name = 'ibm-mq.orders-in'

    def handle(self):
        mq = self.request.ibm_mq
        if mq.correlation_id:  # as Zato's own IBM MQ logger reads them: bytes
            correlation_id = mq.correlation_id.rstrip(b'\x00').decode('ascii')
        else:
            correlation_id = 'n/a'
        self.kvdb.conn.rpush('demo:mq-in:' + self.request.payload['tag'], json.dumps({
            'msg_id': mq.msg_id.hex(),
            'correlation_id': correlation_id,
            'timestamp': mq.timestamp.isoformat() if mq.timestamp else None,
            'reply_to': mq.reply_to,
            'priority': mq.priority,
            'backout_count': mq.backout_count,
            'same_as_wmq': self.request.wmq is mq,
            'data': mq.data.decode('utf-8'),
        }))
