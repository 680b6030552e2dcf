# -*- coding: utf-8 -*-

# Services without a `name`: Zato names them module-name.class-name, an acronym a word of
# its own and an underscore in a class name kept. Channels and clients call them so.
from zato.server.service import Integer, Service


class HTTPStatus(Service):
    """Zato's name: legacy-names.http-status"""

    def handle(self):
        self.response.payload = {'service': self.name}


class GetXMLData(Service):
    """Zato's name: legacy-names.get-xml-data"""

    def handle(self):
        self.response.payload = {'service': self.name}


class get_client(Service):
    """Zato's name: legacy-names.get_client; an optional typed element (Integer('-count'))."""

    class SimpleIO:
        input = 'name', Integer('-count')
        output = 'name', 'service', Integer('-count')

    def handle(self):
        self.response.payload = dict(self.request.input, service=self.name)
