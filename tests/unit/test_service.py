"""Service naming, loading deployed sources, invocation (pure logic, no sockets)."""

from __future__ import annotations

import re
import time

import pytest

from zato.common.errors import DeployError, ServiceNotFound
from zato.service.internal import add_internal
from zato.service.store import ServiceStore, dashed, load_source

MODULE = """
from zato.service import Service

class GetClient(Service):
    def handle(self):
        self.response.payload = {"id": self.request.payload["id"], "cid": self.cid}

class Named(Service):
    name = "crm.named"

    def handle(self):
        self.response.payload = self.invoke("my-api.get-client", {"id": 7})
"""


@pytest.mark.parametrize(
    ("module", "cls", "name"),
    [
        ("my_api", "GetClientDetails", "my-api.get-client-details"),
        ("my_crm_api", "HTTPThing", "my-crm-api.http-thing"),  # before: my-crm-api.httpthing
        ("api", "GetXMLData", "api.get-xml-data"),  # before: api.get-xmldata
        ("api", "get_client", "api.get_client"),  # before: api.get-client
        ("api", "Get_Client", "api.get_client"),
        ("api", "Get2Things", "api.get2-things"),
        ("api", "V2API", "api.v2api"),  # before: api.v2-api
        ("MyApi", "getClient", "my-api.get-client"),
        # Zato's own example of its rule
        (
            "x",
            "ILikeToReadWSDLDocsNotReallyNOPENotMeQ",
            "x.i-like-to-read-wsdl-docs-not-really-nope-not-me-q",
        ),
    ],
)
def test_names_of_services_without_a_name_are_zatos(module: str, cls: str, name: str):
    source = f"from zato.server.service import Service\n\nclass {cls}(Service):\n    pass\n"
    assert list(load_source(module, source)) == [name]


def test_zato_style_names():
    assert dashed("my_api") == "my-api"
    assert sorted(load_source("my_api", MODULE)) == ["crm.named", "my-api.get-client"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "does not compile"),
        ("import no_such_module_xyz\n", "fails on import: ModuleNotFoundError"),
        ("import sys\nsys.exit(2)\n", "fails on import: SystemExit: 2"),
    ],
)
def test_bad_modules_are_rejected_with_a_reason(source, message):
    with pytest.raises(DeployError, match=message):
        load_source("bad_mod", source)


def test_bad_module_name():
    with pytest.raises(DeployError, match="must be a Python identifier"):
        load_source("my-api", MODULE)


def test_invoke_and_reload():
    store = ServiceStore()
    add_internal(store)
    assert store.invoke("zato.ping").payload == {"pong": "zato"}
    assert store.load_module("my_api", MODULE, "h1") == ["my-api.get-client", "crm.named"]
    assert store.load_module("my_api", MODULE, "h1") == []  # same hash: nothing to do
    response = store.invoke("crm.named", cid="K" + "1" * 27)
    assert response.payload == {"id": 7, "cid": "K" + "1" * 27}  # invoke() keeps the CID
    store.load_module(
        "my_api", MODULE.replace("class Named", "class Renamed").replace("crm.named", "crm.x"), "h2"
    )
    assert "crm.x" in store.services and "crm.named" not in store.services
    with pytest.raises(ServiceNotFound):
        store.invoke("crm.named")


def test_a_failing_reload_keeps_the_old_version():
    store = ServiceStore()
    store.load_module("my_api", MODULE, "h1")
    with pytest.raises(DeployError):
        store.load_module("my_api", "raise RuntimeError('no')\n", "h2")
    assert store.invoke("my-api.get-client", {"id": 1}).payload["id"] == 1


FAULTY = """
import sys
import gevent
from zato.service import Service

class Exits(Service):
    name = "faulty.exits"

    def handle(self):
        sys.exit(3)

class Interrupted(Service):
    name = "faulty.interrupted"

    def handle(self):
        raise KeyboardInterrupt

class OwnTimeout(Service):
    name = "faulty.own-timeout"

    def handle(self):
        with gevent.Timeout(0.01):  # not caught by the service: its own failure
            gevent.sleep(1)

class Slow(Service):
    name = "faulty.slow"

    def handle(self):
        gevent.sleep(1)

class Patient(Service):
    name = "faulty.patient"

    def handle(self):
        try:
            with gevent.Timeout(0.01):  # around a nested invoke: still the caller's to catch
                self.invoke("faulty.slow")
        except gevent.Timeout:
            self.response.payload = {"gave_up": True}

class Nested(Service):
    name = "faulty.nested"

    def handle(self):
        self.invoke("faulty.exits")
"""


@pytest.mark.parametrize(
    ("service", "said"),
    [
        ("faulty.exits", "service faulty.exits called sys.exit(3); the worker goes on"),
        ("faulty.interrupted", "service faulty.interrupted raised KeyboardInterrupt; the worker goes on"),
        ("faulty.own-timeout", "service faulty.own-timeout raised Timeout: 0.01 second"),
        ("faulty.nested", "service faulty.nested called sys.exit(3)"),
    ],
)
def test_what_would_end_a_worker_is_the_services_failure(service, said):
    from zato.common.errors import ServiceError
    from zato.service.base import Request

    store = ServiceStore()
    store.services.update(load_source("faulty", FAULTY))
    with pytest.raises(ServiceError, match=re.escape(said)):
        store.run(service, "K1", Request())


def test_a_timeout_around_a_nested_invoke_stays_the_callers_and_greenlet_exit_ends_the_request():
    import gevent

    from zato.service.base import Request

    store = ServiceStore()
    store.services.update(load_source("faulty", FAULTY))
    assert store.run("faulty.patient", "K1", Request()).payload == {"gave_up": True}
    running = gevent.spawn(store.run, "faulty.slow", "K2", Request())
    gevent.sleep(0)
    running.kill(block=True)  # how a worker ends a request: not turned into the service's error
    assert isinstance(running.value, gevent.GreenletExit) and running.successful()


def test_request_bunchified_gives_attribute_access_to_a_copy_of_the_payload():
    from zato.service.base import Request

    source = (
        "from zato.service import Service\n\nclass B(Service):\n    name = 'b.city'\n"
        "    def handle(self):\n        req = self.request.bunchified()\n"
        "        req.orders[0].qty = 5\n"
        "        self.response.payload = {'city': req.customer.address.city, 'qty': req.orders[0].qty,\n"
        "                                 'sent': self.request.payload['orders'][0]['qty']}\n"
    )
    store = ServiceStore()
    store.services.update(load_source("bunchy", source))
    payload = {"customer": {"address": {"city": "Kraków"}}, "orders": [{"qty": 1}]}
    answer = store.run("b.city", "K1", Request(payload=payload)).payload
    assert answer == {"city": "Kraków", "qty": 5, "sent": 1}  # the service's copy, not the request


CALLER = """
import gevent
from zato.common.exception import BadRequest
from zato.service import Service

done = []  # what the slow service got to do

class Echo(Service):
    name = "t.echo"

    def handle(self):
        self.response.payload = {"got": self.request.payload, "cid": self.cid}

class Slow(Service):
    name = "t.slow"

    def handle(self):
        gevent.sleep(float(self.request.payload["seconds"]))
        done.append(self.cid)
        self.response.payload = {"slept": True}

class Refuses(Service):
    name = "t.refuses"

    def handle(self):
        gevent.sleep(0.01)
        raise BadRequest(self.cid, "no such client")

class Caller(Service):
    name = "t.caller"

    def handle(self):
        how = self.request.payload
        self.response.payload = self.invoke(how.pop("target"), **how)
"""


def caller_store():  # noqa: ANN201
    store = ServiceStore()
    store.services.update(load_source("caller", CALLER))
    return store


def call(store, **how):  # noqa: ANN001, ANN003, ANN201
    from zato.service.base import Request

    return store.run("t.caller", "K" + "0" * 27, Request(payload=how)).payload


def test_invoke_takes_zato_keyword_arguments():
    store = caller_store()
    # No payload: the other keyword arguments are the input, as in Zato; cid= is the CID.
    got = call(store, target="t.echo", client_id=5, name="Ann", cid="K" + "9" * 27)
    assert got == {"got": {"client_id": 5, "name": "Ann"}, "cid": "K" + "9" * 27}
    assert call(store, target="t.echo", payload={"a": 1}, b=2)["got"] == {"a": 1}  # a payload wins
    assert call(store, target="t.echo")["cid"] == "K" + "0" * 27  # the caller's own CID
    bunch = call(store, target="t.echo", payload={"a": {"b": 1}}, as_bunch=True, data_format="json")
    assert bunch.got.a.b == 1


def test_invoke_with_a_timeout_stops_the_other_service():
    import gevent

    from zato.common.errors import ServiceError

    store = caller_store()
    done = store.services["t.slow"].handle.__globals__["done"]
    started = time.monotonic()
    with pytest.raises(ServiceError, match="raised Timeout"):  # raise_timeout: the caller's 500
        call(store, target="t.slow", payload={"seconds": 5}, timeout=0.2)
    assert time.monotonic() - started < 2
    assert call(store, target="t.slow", payload={"seconds": 5}, timeout=0.2, raise_timeout=False) is None
    gevent.sleep(0.1)
    assert done == []  # stopped, not left running
    assert call(store, target="t.slow", payload={"seconds": 0.01}, timeout=2) == {"slept": True}
    with pytest.raises(Exception, match="no such client") as e:  # the other one's error, as it was
        call(store, target="t.refuses", timeout=2)
    assert type(e.value).__name__ == "BadRequest"


@pytest.mark.parametrize(
    ("header", "channel"),
    [
        ("amqp-channel:orders-in", ("orders-in", "amqp")),
        ("zmq-channel:pull.1", ("pull.1", "zmq")),
        ("ibm-mq-channel:DEV.Q", ("DEV.Q", "websphere-mq")),
        ("", ("internal", "internal")),  # no header: a call of the project's own
        ("amqp-outgoing:x", ("internal", "internal")),  # not a channel connector
        ("amqp-channel:", ("internal", "internal")),
        ("amqp-channel:a\x00b", ("internal", "internal")),
    ],
)
def test_a_channel_connectors_call_names_its_channel(header, channel):
    from zato.server.wsgi import connector_channel

    got = connector_channel(header)
    assert (got.name, got.type) == channel


SHARED = """
from dataclasses import dataclass
from zato.server.service import Model

VAT = {vat}

@dataclass(init=False)
class Order(Model):
    net: int

def gross(order):
    return order.net * (100 + VAT) // 100
"""

ORDERS = """
import json  # the standard library's, even with a deployed module named json
from shared_models import Order, gross
from zato.server.service import Service

class Price(Service):
    name = "orders.price"
    input = Order

    def handle(self):
        self.response.payload = {"gross": gross(self.request.input), "json": json.__name__}
"""


def test_deployed_modules_import_each_other_by_name_in_any_order_and_see_changes():
    store = ServiceStore()
    store.know(
        {
            "orders_api": (ORDERS, "o1"),
            "shared_models": (SHARED.format(vat=23), "s1"),
            "json": ("X = 1", "j1"),
        }
    )
    assert store.load_module("orders_api", ORDERS, "o1") == ["orders.price"]  # before the module it imports
    assert (
        store.load_module("shared_models", SHARED.format(vat=23), "s1") == []
    )  # loaded already: no services
    assert store.invoke("orders.price", {"net": 100}).payload == {"gross": 123, "json": "json"}
    assert store.modules["shared_models"] == ("s1", ())
    store.load_module("shared_models", SHARED.format(vat=8), "s2")  # its importer is loaded again
    assert store.invoke("orders.price", {"net": 100}).payload["gross"] == 108
    with pytest.raises(DeployError, match="No module named 'nowhere'.*deploy it first"):
        load_source("broken", "import nowhere\n")


def test_a_module_of_shared_code_alone_deploys_and_one_importing_a_missing_one_does_not():
    from zato.service.deploy import LoadCheck

    assert LoadCheck("shared_models", SHARED.format(vat=23)).wait() == {}  # no services: not an error
    assert LoadCheck("orders_api", ORDERS, others={"shared_models": SHARED.format(vat=23)}).wait() == {
        "orders.price": "orders_api.Price"
    }
    with pytest.raises(DeployError, match="No module named 'shared_models'"):
        LoadCheck("orders_api", ORDERS).wait()
    with pytest.raises(
        DeployError, match="deployed module shared_models cannot be imported.*ZeroDivisionError"
    ):
        LoadCheck("orders_api", ORDERS, others={"shared_models": "1 / 0"}).wait()


@pytest.mark.parametrize("value", ["'fast'", "None", "True", "-1"])
def test_a_slow_threshold_that_is_no_number_of_milliseconds_is_refused_at_deploy(value):
    source = "from zato.server.service import Service\n\nclass Report(Service):\n"
    source += f"    slow_threshold = {value}\n"
    refusal = r"service m\.report: slow_threshold .* is not a number of milliseconds"
    with pytest.raises(DeployError, match=refusal):
        load_source("m", source)
