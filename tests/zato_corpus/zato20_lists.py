# -*- coding: utf-8 -*-

# Zato 2.0's list answers, as its users wrote them: a SimpleIO service with
# output_repeated = True adds one record after another with self.response.payload.append().
from __future__ import absolute_import, division, print_function, unicode_literals

from datetime import datetime
from traceback import format_exc

from zato.server.service import Service

RATES = {('EUR', 'PLN'): {'ECB': '4.2840', 'NBP': '4.2851'}}


class Rate(object):
    """ A record as an ORM would give it: attributes, one of them not declared.
    """
    def __init__(self, provider, rate):
        self.provider = provider
        self.rate = rate
        self.ts = datetime(2014, 1, 1, 12, 0).isoformat()
        self.internal_id = 77


class GetRateList(Service):
    name = 'zato20.rates.get-list'

    class SimpleIO:
        response_elem = 'rates'
        input_required = ('from', 'to')
        output_required = ('provider', 'rate', 'ts')
        output_repeated = True

    def get_rate(self, provider, from_, to):
        if provider == 'Broken Bank':
            raise ValueError('Broken Bank is down')
        return Rate(provider, RATES[(from_, to)][provider])

    def handle(self):
        from_ = self.request.input.get('from')
        to = self.request.input.to

        if (from_, to) not in RATES:
            return  # an empty list

        for provider in ('ECB', 'Broken Bank', 'NBP'):
            try:
                rate = self.get_rate(provider, from_, to)
            except Exception:
                self.logger.warn('Skipped provider %s: %s', provider, format_exc())
            else:
                self.response.payload.append(rate)

        self.response.payload.append({'provider': 'Fixed', 'rate': '4.30', 'ts': '2014-01-02T00:00:00', 'note': 'x'})


class CountRates(Service):
    """ Invokes the one above and counts what it gave.
    """
    name = 'zato20.rates.count'

    def handle(self):
        rates = self.invoke('zato20.rates.get-list', self.request.payload)
        self.response.payload = {'count': len(rates['rates'])}
