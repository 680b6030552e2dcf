# -*- coding: utf-8 -*-

# A service module importing another deployed module (crm_models.py) by its name.
from crm_models import GetClientRequest, GetClientResponse, segment_of

from zato.server.service import Service


class GetClient(Service):
    name = 'crm.api.get-client'

    class SimpleIO:
        input = GetClientRequest
        output = GetClientResponse

    def handle(self):
        request = self.request.input  # type: GetClientRequest
        response = GetClientResponse()
        response.name = 'Client {}'.format(request.client_id)
        response.segment = segment_of(request.client_id)
        self.response.payload = response
