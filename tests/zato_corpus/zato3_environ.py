# -*- coding: utf-8 -*-

# Zato 3.x's self.environ is a Bunch (its Service.__init__: `self.environ = Bunch()`): hooks pass
# values to handle() as attributes; Zato 2.0's services use it as a dict, which it still is.
from zato.server.service import Service


class Timed(Service):
    name = 'zato3.environ.timed'

    def before_handle(self):
        self.environ.started_by = 'before_handle'
        self.environ['legacy'] = 'as a dict'

    def handle(self):
        self.environ.steps = [self.environ.started_by, 'handle']
        self.response.payload = {
            'steps': self.environ.steps,
            'legacy': self.environ.legacy,
            'keys': sorted(self.environ),
        }
