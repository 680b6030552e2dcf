# -*- coding: utf-8 -*-

# A module hot-deployed as Zato 2.0's docs say: copied to the server's pickup-dir folder
# (`cp my_service.py ~/zato/server1/pickup-dir/`).
from __future__ import absolute_import, division, print_function, unicode_literals

# Zato
from zato.server.service import Service


class Greet(Service):
    """ Greets whoever is named.
    """
    name = 'zato20.pickup-dir.greet'

    class SimpleIO:
        input_optional = ('name',)
        output_required = ('greeting',)

    def handle(self):
        self.response.payload.greeting = 'Hello, {}'.format(self.request.input.name or 'Zato')
