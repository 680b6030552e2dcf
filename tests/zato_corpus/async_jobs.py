# -*- coding: utf-8 -*-

# invoke_async: the job runs on some server of the cluster, at least once.
import time

from zato.server.service import Service


class StartJob(Service):
    name = 'jobs.start'

    def handle(self):
        cid = self.invoke_async('jobs.run', self.request.payload)
        self.response.payload = {'cid': cid}


class RunJob(Service):
    name = 'jobs.run'

    def handle(self):
        job = self.request.payload['job']
        conn = self.kvdb.conn
        conn.rpush('demo:job-started:' + job, self.server.name)
        time.sleep(float(self.request.payload.get('sleep', 0)))
        conn.rpush('demo:job-done:' + job, '{} {}'.format(self.server.name, self.channel.type))


class Quote(Service):
    name = 'jobs.quote'

    def handle(self):
        self.response.payload = {'job': self.request.payload['job'], 'price': 42}


class StartQuote(Service):
    """Zato's invoke_async keywords: a CID of the caller's, and callback services."""
    name = 'jobs.start-quote'

    def handle(self):
        job = self.request.payload['job']
        cid = self.invoke_async('jobs.quote', {'job': job}, cid='K' + job.upper().ljust(27, '0'),
                                callback=['jobs.quote-received', QuoteLogged])
        self.response.payload = {'cid': cid}


class QuoteReceived(Service):
    name = 'jobs.quote-received'

    def handle(self):
        got = self.request.payload
        self.kvdb.conn.rpush('demo:quote:' + got['job'], '{} {} {} {}'.format(
            self.name, got['price'], self.in_reply_to, self.channel.type))


class QuoteLogged(Service):
    name = 'jobs.quote-logged'

    def handle(self):
        self.kvdb.conn.rpush('demo:quote:' + self.request.payload['job'], self.name)


class StartDefaultCallback(Service):
    """No callback= given: Zato invokes `<caller's name>-async-callback` when it exists."""
    name = 'jobs.start-default'

    def handle(self):
        self.response.payload = {'cid': self.invoke_async('jobs.quote', {'job': self.request.payload['job']})}


class DefaultCallback(Service):
    name = 'jobs.start-default-async-callback'

    def handle(self):
        self.kvdb.conn.rpush('demo:quote:' + self.request.payload['job'], self.name)


class StartAsJSONString(Service):
    """invoke_async(..., to_json_string=True) to a SimpleIO service: it gets its input as the
    JSON text parsed, as from a JSON channel."""
    name = 'jobs.start-json-string'

    def handle(self):
        cid = self.invoke_async('jobs.sio-run', {'job': self.request.payload['job'], 'n': 7},
                                to_json_string=True)
        self.response.payload = {'cid': cid}


class SIORun(Service):
    name = 'jobs.sio-run'

    class SimpleIO:
        input_required = ('job', 'n')

    def handle(self):
        self.kvdb.conn.rpush('demo:sio-run:' + self.request.input.job, int(self.request.input.n) + 1)
