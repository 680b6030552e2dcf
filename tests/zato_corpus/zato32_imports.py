# -*- coding: utf-8 -*-

# Import paths of Zato 3.2 that its users' modules and models use.
from zato.common.ext.dataclasses import dataclass
from zato.common.json_internal import dumps, loads
from zato.common.marshal_.api import Model
from zato.common.typing_ import anydict, dict_field, list_, list_field
from zato.server.service import Service


@dataclass(init=False)
class Order(Model):
    order_id: int
    tags: list_[str] = list_field()
    extra: anydict = dict_field()


class OrderEcho(Service):
    name = 'zato32.order.echo'
    input = Order

    def handle(self):
        order = self.request.input
        text = dumps({'order_id': order.order_id, 'tags': order.tags, 'extra': order.extra})
        self.response.payload = loads(text)
