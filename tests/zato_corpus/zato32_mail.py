# -*- coding: utf-8 -*-

# A Zato 3.2 module whose services build a report, one of them also e-mailing it, as Zato's
# e-mail docs write it (SMTPMessage, self.email.smtp). E-mail connections are not here: the
# module deploys, the report runs, and the mailing one fails naming what is left out.
from zato.common.api import SMTPMessage
from zato.server.service import Service


class DailyReport(Service):
    name = 'zato32.report.daily'

    def handle(self):
        self.response.payload = {'orders': 12, 'returns': 1}


class MailReport(Service):
    name = 'zato32.report.mail'

    def handle(self):
        report = self.invoke('zato32.report.daily')

        msg = SMTPMessage()
        msg.subject = 'Daily report'
        msg.to = 'ops@example.com'
        msg.from_ = 'zato@example.com'
        msg.body = 'Orders: {orders}, returns: {returns}'.format(**report)

        conn = self.email.smtp.get('Reports').conn
        conn.send(msg)


class MailReportConnFirst(Service):
    """ The same, getting the connection first, as the other half of Zato's examples do.
    """
    name = 'zato32.report.mail-conn-first'

    def handle(self):
        conn = self.email.smtp.get('Reports').conn
        msg = SMTPMessage()
        msg.subject = 'Daily report'
        conn.send(msg)
