# -*- coding: utf-8 -*-

# Zato's service hooks: before_add_to_store / after_add_to_store, accept, validate_input,
# before_handle / after_handle, finalize_handle with processing_time.
from zato.common.exception import BadRequest
from zato.server.service import Service


class Audited(Service):
    name = 'demo.hooks.audited'

    class SimpleIO:
        input_optional = ('amount',)

    @staticmethod
    def after_add_to_store(logger):
        logger.info('demo.hooks.audited is in the store')

    def accept(self):
        return self.request.http.headers.get('X-Skip') != 'yes'

    def validate_input(self):
        if self.request.input.amount is not None and int(self.request.input.amount) < 0:
            raise BadRequest(self.cid, 'amount must not be negative')

    def before_handle(self):
        self.environ['steps'] = ['before_handle']

    def handle(self):
        self.environ['steps'].append('handle')
        self.response.payload = {'steps': self.environ['steps']}

    def after_handle(self):
        self.environ['steps'].append('after_handle')

    def finalize_handle(self):
        self.logger.info('finalized %s in %d ms (%s)', self.cid, self.processing_time, self.processing_time_raw)


class Disabled(Service):
    name = 'demo.hooks.disabled'

    @staticmethod
    def before_add_to_store(logger):
        return False  # kept out of the store, as in Zato

    def handle(self):
        self.response.payload = {'should': 'never run'}
