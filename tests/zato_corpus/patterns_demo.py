# -*- coding: utf-8 -*-

# Zato's patterns: fan-out/fan-in, parallel execution and invoke-retry, as the Zato 3.2
# programming guide shows them. Outcomes are written to Redis for the test to read.
import json
import time

from zato.server.service import Service


def _record(service, key, value):
    service.kvdb.conn.rpush('demo:patterns:' + key, json.dumps(value))


class GetPrice(Service):
    name = 'patterns.get-price'

    def handle(self):
        req = self.request.payload
        self.kvdb.conn.rpush('demo:patterns:started:' + req['run'], self.server.name)
        time.sleep(float(req.get('sleep', 0)))
        self.kvdb.conn.rpush('demo:patterns:ran:' + req['run'], '{} {}'.format(req['shop'], self.server.name))
        self.response.payload = {'shop': req['shop'], 'price': req['price']}


class ShopDown(Service):
    name = 'patterns.shop-down'

    def handle(self):
        raise ValueError('shop {} is down'.format(self.request.payload['shop']))


class StartFanOut(Service):
    name = 'patterns.start-fanout'

    def handle(self):
        req = self.request.payload
        targets = {
            'patterns.get-price': {'run': req['run'], 'shop': 'a', 'price': 10, 'sleep': req.get('sleep', 0)},
            'patterns.shop-down': {'run': req['run'], 'shop': 'b'},
        }
        cid = self.patterns.fanout.invoke(targets, 'patterns.on-final', on_target=['patterns.on-target'])
        self.response.payload = {'cid': cid, 'own_cid': self.cid}


class StartParallel(Service):
    name = 'patterns.start-parallel'

    def handle(self):
        req = self.request.payload
        targets = {'patterns.get-price': {'run': req['run'], 'shop': 'c', 'price': 7}}
        cid = self.patterns.parallel.invoke(targets, 'patterns.on-target', cid=req['cid'])
        self.response.payload = {'cid': cid}


class OnTarget(Service):
    name = 'patterns.on-target'

    def handle(self):
        got = self.request.payload
        run = (got['response'] or {}).get('shop') or 'b'
        _record(self, 'on-target:' + got['cid'], dict(got, seen_shop=run, channel=self.channel.type))


class OnFinal(Service):
    name = 'patterns.on-final'

    def handle(self):
        outcomes = self.request.payload
        _record(self, 'on-final:' + outcomes[0]['cid'], outcomes)


class Flaky(Service):
    """Fails until it has been called `fail` times for this key."""
    name = 'patterns.flaky'

    def handle(self):
        req = self.request.payload
        calls = self.kvdb.conn.incr('demo:patterns:flaky:' + req['key'])
        if calls <= req['fail']:
            raise ValueError('flaky call {} of {}'.format(calls, req['fail']))
        self.response.payload = {'calls': calls}


class Retry(Service):
    name = 'patterns.retry'

    def handle(self):
        req = self.request.payload
        payload = {'key': req['key'], 'fail': req['fail']}
        if req.get('async'):
            cid = self.patterns.invoke_retry.invoke(
                'patterns.flaky', payload, repeats=req['repeats'], seconds=0.1,
                async_fallback=True, callback='patterns.retry-done', context={'key': req['key']})
            self.response.payload = {'cid': cid}
        else:
            self.response.payload = self.patterns.invoke_retry.invoke(
                'patterns.flaky', payload, repeats=req['repeats'], seconds=0.1)


class RetryDone(Service):
    name = 'patterns.retry-done'

    def handle(self):
        got = self.request.payload
        _record(self, 'retry-done:' + got['context']['key'], got)
