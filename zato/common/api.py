"""Zato's constants that services use (`from zato.common.api import CHANNEL, DATA_FORMAT`, or
Zato 3.2's `from zato.common import DATA_FORMAT`): the values Zato gives them, so a service can
compare `self.channel.type == CHANNEL.AMQP` or pass `data_format=DATA_FORMAT.JSON` unchanged."""

from __future__ import annotations

ZATO_OK = "ZATO_OK"  # self.response.result of a service that succeeded (the default)
ZATO_ERROR = "ZATO_ERROR"  # ... of one that failed: its caller gets an error (zato.service.store)


class DATA_FORMAT:  # noqa: N801 - Zato's name
    CSV = "csv"
    DICT = "dict"
    FORM_DATA = "form"
    JSON = "json"
    POST = "post"
    SOAP = "soap"
    XML = "xml"


class URL_TYPE:  # noqa: N801 - Zato's name: self.request.transport of an HTTP channel's request
    PLAIN_HTTP = "plain_http"
    SOAP = "soap"  # Zato's, never seen here


class CHANNEL:  # noqa: N801 - Zato's name; the types self.channel.type has here are marked
    AMQP = "amqp"  # an AMQP channel's message
    HTTP_SOAP = "http-soap"  # an HTTP channel
    IBM_MQ = "websphere-mq"  # an IBM MQ channel's message
    INTERNAL = "internal"  # this project's own internal calls
    INVOKE = "invoke"  # self.invoke, Zato's invoke endpoints
    INVOKE_ASYNC = "invoke-async"  # self.invoke_async
    INVOKE_ASYNC_CALLBACK = "invoke-async-callback"  # an invoke_async callback
    ZMQ = "zmq"  # a ZeroMQ channel's message
    # Zato's others, never seen here:
    DELIVERY = "delivery"
    FANOUT_CALL = "fanout-call"
    NEW_INSTANCE = "new-instance"
    PARALLEL_EXEC_CALL = "parallel-exec-call"
    PUBLISH = "publish"
    SCHEDULER = "scheduler"
    SERVICE = "service"
    STARTUP_SERVICE = "startup-service"
    URL_DATA = "url-data"
    WEB_SOCKET = "web-socket"


Data_Format = DATA_FORMAT


class SMTPMessage:
    """Zato's e-mail message (`from zato.common.api import SMTPMessage`, Zato 3.0's `from
    zato.common import SMTPMessage`). E-mail connections are not here: a module importing it
    deploys, so its other services run, and making one raises NotSupported, as `self.email`
    does (zato.service.unsupported)."""

    def __init__(self, *args: object, **kwargs: object):
        from zato.service.unsupported import SERVICE, WHERE, NotSupported  # not at import: a cycle

        raise NotSupported(f"SMTPMessage: {SERVICE['email']} is {WHERE}")
