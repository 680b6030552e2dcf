# -*- coding: utf-8 -*-

# Zato 3.2 style: optional output that is empty, returned by default or left out with
# skip_empty_keys (but the keys in force_empty_keys).
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.server.service import Service


class GetProfile(Service):
    name = 'demo.profile.get'

    class SimpleIO:
        input_required = ('user_id',)
        input_optional = ('is_vip', 'nick')
        output_required = ('user_id',)
        output_optional = ('is_vip', 'nick', 'email')

    def handle(self):
        self.response.payload = dict(self.request.input, email=None)


class GetProfileSkipEmpty(GetProfile):
    name = 'demo.profile.get-skip-empty'

    class SimpleIO(GetProfile.SimpleIO):
        skip_empty_keys = True
        force_empty_keys = ('nick',)
