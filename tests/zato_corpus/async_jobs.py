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
