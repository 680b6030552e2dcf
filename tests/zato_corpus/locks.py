# -*- coding: utf-8 -*-

# A distributed lock: only one service of the whole cluster runs the block for an account at once.
from zato.common.exception import LockTimeout
from zato.server.service import Service


class UpdateAccount(Service):
    name = 'locks.update-account'

    input = 'account_no', '-hold', '-block'

    def handle(self):
        account_no = self.request.input.account_no
        block = self.request.input.block
        block = 10 if block in (None, '') else float(block)
        conn = self.kvdb.conn
        with self.lock('account-{}'.format(account_no), ttl=10, block=block):
            conn.rpush('demo:lock:' + account_no, 'in ' + self.server.name)
            self.sleep(float(self.request.input.hold or 0))
            conn.rpush('demo:lock:' + account_no, 'out ' + self.server.name)
        self.response.payload = {'done': True}


class TryAccount(Service):
    name = 'locks.try-account'

    def handle(self):
        try:
            with self.lock('account-' + self.request.payload['account_no'], 5, 0):
                self.response.payload = {'took': True}
        except LockTimeout as e:
            self.response.payload = {'took': False, 'why': e.msg}
