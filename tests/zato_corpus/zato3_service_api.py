# -*- coding: utf-8 -*-

# The service API as Zato 3.x's programming guide shows it ("Writing a service", "Request and
# response objects", "Invoking other services", outgoing REST): service attributes (cid, name,
# impl_name, invocation_time, environ between hooks, processing_time in finalize_handle),
# self.logger with a cid, SimpleIO defaults, an HTTP response of one's own (status, headers,
# content type), self.invoke with as_bunch, and self.out.rest with path, query and headers.
from __future__ import absolute_import, division, print_function, unicode_literals

# stdlib
import csv
from datetime import datetime
from http.client import CREATED, OK
from json import dumps

# Zato
from zato.common import DATA_FORMAT
from zato.server.service import Bool, Date, Int, Service


class ServiceAPI(Service):
    """ Tells what the service API says about this invocation.
    """
    name = 'zato3.api.about'

    class SimpleIO:
        input_optional = ('cust_name', Int('page', default=1), Bool('is_active'))
        output_required = ('cid', 'name', 'impl_name', 'invoked_at', 'page', 'cust_name', 'is_active',
                           'channel_name', 'channel_type', 'seen', 'utcnow')
        default_value = 'anonymous'

    def before_handle(self):
        self.environ['seen_before_handle'] = True

    def handle(self):
        self.environ['seen_handle'] = True
        self.logger.info('Hello!', cid=self.cid)
        self.logger.warn('Zato 2.0 spelling, level %s', self.logger.getEffectiveLevel(), cid=self.cid)
        self.logger.info('invocation_time:[{}]'.format(self.invocation_time))

        out = self.response.payload
        out.cid = self.cid
        out.name = self.name
        out.impl_name = self.impl_name
        out.invoked_at = self.invocation_time.isoformat()
        out.page = self.request.input.page
        out.cust_name = self.request.input.cust_name
        out.is_active = self.request.input.is_active
        out.channel_name = self.channel.name
        out.channel_type = self.channel.type
        out.seen = sorted(self.environ)
        out.utcnow = self.time.utcnow()

    def finalize_handle(self):
        self.logger.info('zato3.api.about took {} ms ({}), handle returned at {}, invoked at {}'.format(
            self.processing_time, self.processing_time_raw, self.handle_return_time.isoformat(),
            self.invocation_time.isoformat()))


class RequestInfo(Service):
    """ Zato 4.1's request attributes: cid, data_format and transport.
    """
    name = 'zato3.api.request-info'

    def handle(self):
        self.response.payload = {
            'cid': self.request.cid,
            'same_cid': self.request.cid == self.cid,
            'data_format': self.request.data_format,
            'transport': self.request.transport,
            'invoked': self.invoke('zato3.api.request-info-inner'),
        }


class RequestInfoInner(Service):
    name = 'zato3.api.request-info-inner'

    def handle(self):
        self.response.payload = {'same_cid': self.request.cid == self.cid, 'transport': self.request.transport}


class CSVExport(Service):
    """ The response a service makes of its own: status, content type and headers.
    """
    name = 'zato3.api.csv-export'

    def handle(self):
        self.log_input()
        self.response.status_code = OK  # Same as default
        self.response.payload = 'welcome,to,Zato'
        self.response.content_type = 'text/csv'
        self.response.headers['X-Welcome'] = 'Happy coding!'
        self.response.headers['Content-Disposition'] = 'attachment; filename=info.csv'


class GetCustomer(Service):
    name = 'zato3.crm.customer.get'

    class SimpleIO:
        input_required = ('cust_id',)
        output_required = ('cust_id', 'name', 'segment')
        output_optional = ('last_seen',)

    def handle(self):
        self.response.payload.cust_id = self.request.input.cust_id
        self.response.payload.name = 'Customer {}'.format(self.request.input.cust_id)
        self.response.payload.segment = 'ABC'
        self.response.payload.last_seen = datetime(2019, 3, 1, 12, 0).isoformat()


class CreateCustomer(Service):
    """ Invokes another service twice, as Zato's docs do, and answers 201 with a Location.
    """
    name = 'zato3.crm.customer.create'

    class SimpleIO:
        input_required = ('cust_id',)
        output_required = ('summary', 'segment', 'name')

    def handle(self):
        customer = self.invoke(GetCustomer.get_name(), {'cust_id': self.request.input.cust_id}, as_bunch=True)
        inline = self.invoke('zato3.crm.customer.get', cust_id=self.request.input.cust_id)

        self.response.status_code = CREATED
        self.response.headers['Location'] = '/crm/customer/{}'.format(customer.cust_id)
        self.response.payload.summary = '{} ({})'.format(customer.name, customer.segment)
        self.response.payload.segment = customer.segment
        self.response.payload.name = inline['name']


class LookupCustomer(Service):
    """ Invokes a SimpleIO service with its input as JSON text, as Zato's "Invoking other
    services" page does with data_format.
    """
    name = 'zato3.crm.customer.lookup'

    def handle(self):
        input_data = {'cust_id': self.request.payload['cust_id']}
        service_name = 'zato3.crm.customer.get'
        response = self.invoke(service_name, dumps(input_data), data_format=DATA_FORMAT.JSON)
        self.logger.info(response)
        self.response.payload = response


class LookupCustomerLater(Service):
    """ The same with invoke_async: the other service gets the JSON parsed, as with invoke.
    """
    name = 'zato3.crm.customer.lookup-later'

    def handle(self):
        input_data = {'cust_id': self.request.payload['cust_id']}
        cid = self.invoke_async('zato3.crm.customer.remember', dumps(input_data), data_format=DATA_FORMAT.JSON)
        self.response.payload = {'cid': cid}


class RememberCustomer(Service):
    """ Keeps what it was given, for RememberedCustomer to tell.
    """
    name = 'zato3.crm.customer.remember'

    def handle(self):
        self.cache.default.set('remembered', dumps(self.request.payload))


class RememberedCustomer(Service):
    """ Tells what RememberCustomer was given.
    """
    name = 'zato3.crm.customer.remembered'

    def handle(self):
        self.response.payload = {'given': self.cache.default.get('remembered')}


class ServerConfig(Service):
    """ Zato's self.server.cluster_id and fs_server_config, which this server leaves out.
    """
    name = 'zato3.api.server-config'

    def handle(self):
        if self.request.payload.get('what') == 'cluster_id':
            self.response.payload = {'cluster_id': self.server.cluster_id}
        else:
            self.response.payload = {'main': dict(self.server.fs_server_config.main)}


class BillingEndpoint(Service):
    """ The remote end of SetBillingInfo below: tells what it was sent.
    """
    name = 'zato3.billing.endpoint'

    def handle(self):
        self.response.payload = {
            'payload': self.request.payload,
            'params': self.request.http.params,
            'app_name': self.request.http.headers.get('X-App-Name'),
            'environment': self.request.http.headers.get('X-Environment'),
        }


class SetBillingInfo(Service):
    """ Updates billing information for customer (Zato's outgoing REST example).
    """
    name = 'zato3.billing.set-info'

    def handle(self):
        # Python dict representing the payload we want to send across
        payload = {'billing': '395.7', 'currency': 'EUR'}

        # Python dict with all the query parameters, including path and query string
        params = {'cust_id': '39175', 'phone_no': '271637517', 'priority': 'normal'}

        # Headers the endpoint expects
        headers = {'X-App-Name': 'Zato', 'X-Environment': 'Production'}

        # Obtains a connection object
        conn = self.out.rest['Billing'].conn

        # Invoke the resource providing all the information on input
        response = conn.post(self.cid, payload, params, headers=headers)

        # The response is auto-deserialised for us to a Python dict
        self.response.payload = response.data


class PublishOrder(Service):
    """ Zato's pub/sub, which this server leaves out: the error must say so.
    """
    name = 'zato3.orders.publish'

    def handle(self):
        self.pubsub.publish('/orders/new', data=self.request.payload)


class UploadReport(Service):
    """ An outgoing SFTP connection, which this server leaves out.
    """
    name = 'zato3.reports.upload'

    def handle(self):
        conn = self.out.sftp['Reports'].conn
        conn.write('report', '/tmp/report.csv')


class ListReports(Service):
    """ Zato 3.2's shell commands, which this server leaves out.
    """
    name = 'zato3.reports.list'

    def handle(self):
        result = self.commands.invoke('ls -la /tmp')
        self.response.payload = result.stdout


class NotifyCustomer(Service):
    """ Keeps its own `email` (a name Zato also uses, for its e-mail connections) and invokes
    the publishing service above, which fails.
    """
    name = 'zato3.crm.customer.notify'

    class SimpleIO:
        input_required = ('email',)
        output_optional = ('email', 'has_pubsub')

    def handle(self):
        self.email = self.request.input.email
        self.response.payload.email = self.email
        self.response.payload.has_pubsub = hasattr(self, 'pubsub')
        if self.email.endswith('.invalid'):
            self.invoke('zato3.orders.publish', {'order_id': 1})


class PhoneLookup(Service):
    """ A name alone is Zato's default SimpleIO type, Text: a phone number a client sends as a
    JSON number arrives as text.
    """
    name = 'zato3.crm.phone-lookup'

    class SimpleIO:
        input_required = ('phone_no', 'country')
        input_optional = ('-nick', 'is_vip', 'account_id', 'tags')
        output_required = ('phone_no', 'is_domestic', 'key')
        output_optional = ('types',)

    def handle(self):
        phone_no = self.request.input.phone_no
        self.response.payload.phone_no = phone_no
        self.response.payload.is_domestic = phone_no.startswith('48')
        self.response.payload.key = 'phone:' + phone_no
        self.response.payload.types = {k: type(v).__name__ for k, v in self.request.input.items()}


class CustomerRecord(object):
    """ A record as an ORM or a client library gives it: its columns, and one computed from them.
    """
    segment = 'retail'

    def __init__(self, cust_id, first_name, last_name):
        self.cust_id = cust_id
        self.first_name = first_name
        self.last_name = last_name

    @property
    def full_name(self):
        return '{} {}'.format(self.first_name, self.last_name)


class ListCustomers(Service):
    """ Returns objects, which Zato's SimpleIO reads by attribute: a property counts too.
    """
    name = 'zato3.crm.customer.list'

    class SimpleIO:
        output_required = ('cust_id', 'full_name')
        output_optional = ('segment', 'email')
        output_repeated = True

    def handle(self):
        self.response.payload[:] = [CustomerRecord(1, 'Jane', 'Doe'), CustomerRecord(2, 'John', 'Roe')]


class GetCustomerRecord(Service):
    """ One such object.
    """
    name = 'zato3.crm.customer.record'

    class SimpleIO:
        input_required = ('cust_id',)
        output_required = ('cust_id', 'full_name', 'segment')

    def handle(self):
        self.response.payload = CustomerRecord(self.request.input.cust_id, 'Jane', 'Doe')


class ImportCSV(Service):
    """ Zato's "Other data formats" chapter: a channel without a data format hands the service
    the body as it came, here CSV rows sent with `curl -d @data.csv`, which labels them a form.
    """
    name = 'zato3.reports.csv-import'

    def handle(self):
        rows = []
        reader = csv.reader(self.request.payload.split(';'))
        for line in reader:
            if line:
                self.logger.info('Got elements: {}'.format(line))
                rows.append(line)
        self.response.content_type = 'text/plain'
        self.response.payload = 'rows={}, first={}'.format(len(rows), '|'.join(rows[0]) if rows else '')


class RegisterCustomer(Service):
    """ A date from a browser's form, which JavaScript sends as `new Date(...).toISOString()`.
    """
    name = 'zato3.crm.customer.register'

    class SimpleIO:
        input_required = ('cust_name', Date('birth_date'))
        output_required = ('cust_name', Date('birth_date'), 'weekday')

    def handle(self):
        self.response.payload.cust_name = self.request.input.cust_name
        self.response.payload.birth_date = self.request.input.birth_date
        self.response.payload.weekday = self.request.input.birth_date.strftime('%A')


class GitHubWebhook(Service):
    """ A webhook reading its headers as the sender's docs spell them (GitHub's: X-GitHub-Event,
    x-hub-signature-256).
    """
    name = 'zato3.hooks.github'

    def handle(self):
        headers = self.request.http.headers
        self.response.payload = {
            'event': headers.get('x-github-event'),
            'delivery': headers['X-GitHub-Delivery'],
            'has_signature': 'x-hub-signature-256' in headers,
            'content_type': headers.get('content-type'),
            'missing': headers.get('x-not-sent', 'none'),
        }
