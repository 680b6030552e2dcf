"""Internal services every server carries (names start with "zato.")."""

from __future__ import annotations

from zato.service.base import Service
from zato.service.store import ServiceStore


class Ping(Service):
    name = "zato.ping"

    def handle(self) -> None:
        self.response.payload = {"pong": "zato"}


class ServerInfo(Service):
    name = "zato.server.info"

    def handle(self) -> None:
        s = self.server
        self.response.payload = {
            "name": s.name if s else None,
            "cluster": s.cluster if s else None,
            "services": sorted(self._store.services),
            "modules": {m: v[0] for m, v in sorted(self._store.modules.items())},
        }


class ServiceList(Service):
    name = "zato.service.list"

    def handle(self) -> None:
        self.response.payload = sorted(self._store.services)


class Echo(Service):
    """Zato's zato.helpers.echo: answers with the request as it came."""

    name = "zato.helpers.echo"

    def handle(self) -> None:
        self.response.payload = self.request.raw_request


class InputLogger(Service):
    """Zato's zato.helpers.input-logger, which its docs invoke (`self.invoke_async(
    'zato.helpers.input-logger', 'My payload')`): writes what it was given to server.log
    (log_input)."""

    name = "zato.helpers.input-logger"

    def handle(self) -> None:
        pass

    def finalize_handle(self) -> None:
        self.log_input()


INTERNAL = (Ping, ServerInfo, ServiceList, Echo, InputLogger)


def add_internal(store: ServiceStore) -> None:
    for cls in INTERNAL:
        store.add(cls)
