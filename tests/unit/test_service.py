"""Service naming, loading deployed sources, invocation (pure logic, no sockets)."""

from __future__ import annotations

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


def test_zato_style_names():
    assert dashed("my_api") == "my-api"
    assert dashed("GetClientDetails") == "get-client-details"
    assert sorted(load_source("my_api", MODULE)) == ["crm.named", "my-api.get-client"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "does not compile"),
        ("import no_such_module_xyz\n", "fails on import: ModuleNotFoundError"),
        ("X = 1\n", "defines no Service subclass"),
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
