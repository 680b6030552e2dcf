# -*- coding: utf-8 -*-

# Zato 2.0 kept its exception in zato.common, and its services import it from there: raised
# with the CID and a message it is the client's 500 with that message, and a service that
# invokes the failing one catches it by that name.
from __future__ import absolute_import, division, print_function, unicode_literals

from zato.common import ZatoException
from zato.server.service import Service

ACCOUNTS = {'PL61109010140000071219812874': 'active', 'PL27114020040000300201355387': 'closed'}


class GetAccount(Service):
    name = 'zato20.account.get'

    class SimpleIO:
        input_required = ('iban',)
        output_required = ('iban', 'status')

    def handle(self):
        iban = self.request.input.iban
        if iban not in ACCOUNTS:
            raise ZatoException(self.cid, 'No such account: {}'.format(iban))
        self.response.payload.iban = iban
        self.response.payload.status = ACCOUNTS[iban]


class CheckAccounts(Service):
    """ Invokes the one above for each IBAN; one it does not know is reported, not fatal.
    """
    name = 'zato20.account.check-many'

    def handle(self):
        out = []
        for iban in self.request.payload['ibans']:
            try:
                account = self.invoke('zato20.account.get', {'iban': iban})
            except ZatoException as e:
                out.append({'iban': iban, 'error': e.msg})
            else:
                out.append(account)
        self.response.payload = out
