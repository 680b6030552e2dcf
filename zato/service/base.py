"""The Service base class, in Zato's style: subclass it and implement handle(self).

class GetClient(Service):
    name = "crm.get-client"              # optional; else "module-name.class-name"

    def handle(self):
        self.logger.info("cid %s", self.cid)
        self.response.payload = {"id": self.request.payload["id"]}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zato.service.store import ServiceStore


@dataclass
class Request:
    payload: Any = None  # parsed JSON (data format json), else str, or bytes if not UTF-8
    raw: bytes = b""
    method: str = "POST"
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # query string


@dataclass
class Response:
    payload: Any = None  # dict/list -> JSON, str -> text, bytes -> as is, None -> empty
    status_code: int = 200
    content_type: str | None = None  # derived from the payload when None
    headers: dict[str, str] = field(default_factory=dict)


class Service:
    """Base of every service. One instance per invocation."""

    name: str | None = None  # set by the store to the service's cluster-wide name

    def __init__(self, store: ServiceStore, cid: str, request: Request):
        self._store = store
        self.cid = cid
        self.request = request
        self.response = Response()
        self.logger = logging.getLogger(f"zato.service.{self.name}")

    @property
    def outgoing(self) -> Any:
        """Outgoing connections: `self.outgoing.amqp.send(...)`, `self.outgoing.ibm_mq.send(...)`,
        `self.outgoing.zmq.send(...)`."""
        return self._store.outgoing

    @property
    def out(self) -> Any:
        """Zato's short name for `self.outgoing` (`self.out.ibm_mq.send(...)`)."""
        return self._store.outgoing

    @property
    def server(self) -> Any:
        """The settings of the server this service runs on (name, cluster, ...)."""
        return self._store.settings

    def handle(self) -> None:
        raise NotImplementedError(f"service {self.name} does not implement handle()")

    def invoke(self, name: str, payload: Any = None) -> Any:
        """Run another service in this process with the same CID; returns its response payload."""
        return self._store.invoke(name, payload, cid=self.cid).payload
