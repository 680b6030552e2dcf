# -*- coding: utf-8 -*-

# Models and a helper in a module of their own (no services), as Zato's docs suggest (model.py).
from dataclasses import dataclass

from zato.common.typing_ import optional
from zato.server.service import Model


@dataclass(init=False)
class GetClientRequest(Model):
    client_id: int


@dataclass(init=False)
class GetClientResponse(Model):
    name: str
    segment: optional[str] = None


def segment_of(client_id):
    return 'RNZ' if client_id % 2 else 'BZ'
