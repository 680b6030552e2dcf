"""Zato APIs this server leaves out on purpose (docs/zato-compat.md, "Left out, and why"):
a service that reaches for one gets NotSupported naming the feature, not Python's
`'MyService' object has no attribute 'pubsub'`, which reads as a typo in the user's own code.

NotSupported is an AttributeError too, so `hasattr(self, "pubsub")` is False and a service
that probes for a feature with `getattr(..., None)` goes on as it would in an older Zato.
The client gets a 500 whose details name the feature; the server log says which service.
"""

from __future__ import annotations

from typing import Any

from zato.common.errors import ServiceError

WHERE = "not supported by this server (see docs/zato-compat.md, 'Left out, and why')"

# self.NAME of a service -> what it is in Zato
SERVICE: dict[str, str] = {
    "pubsub": "Zato's publish/subscribe (topics, queues and subscriptions)",
    "publish": "Zato's publish/subscribe (self.publish to a topic)",
    "schedule": "Zato's scheduler",
    "scheduler": "Zato's scheduler",
    "invoke_by_id": "invoking a service by its id (invoke it by its name with self.invoke)",
    "odb": "Zato's own configuration database (for a database of your own: self.out.sql)",
    "broker_client": "Zato's broker client (for a call in the background: self.invoke_async)",
    "email": "e-mail connections (self.email.smtp, self.email.imap)",
    "cloud": "cloud connections (self.cloud.aws.s3 and others)",
    "search": "search connections (self.search.es, self.search.solr)",
    "commands": "running shell commands (self.commands.invoke)",
    "sso": "Zato's single sign-on API (self.sso)",
    "translate": "Zato's KVDB translations between systems' codes (self.translate; keep a mapping in"
    " self.cache or the user config, self.config)",
    "worker_store": "Zato's worker store (the server's internal configuration objects)",
    "usage": "Zato's count of a service's invocations (self.usage; this server counts them per service"
    " in /metrics, zato_service_invocations)",
    "rest": "Zato's REST facade (self.rest.CONNECTION; an outgoing HTTP connection here is"
    " self.out.rest[NAME].conn)",
}

# self.server.NAME -> what it is in Zato (self.server has only name and cluster here)
SERVER: dict[str, str] = {
    "cluster_id": "the cluster's id in Zato's own configuration database (its name is self.server.cluster)",
    "fs_server_config": "the server's own configuration (server.conf holds passwords: a service gets"
    " its settings from self.config, the user config)",
}

# self.out.NAME (self.outgoing.NAME) -> what it is in Zato
OUTGOING: dict[str, str] = {
    "ftp": "outgoing FTP connections",
    "sftp": "outgoing SFTP connections",
    "soap": "outgoing SOAP connections",
    "odoo": "outgoing Odoo connections",
    "sap": "outgoing SAP RFC connections",
    "ldap": "outgoing LDAP connections",
    "mongodb": "outgoing MongoDB connections",
    "wsx": "outgoing WebSocket connections",
    "im": "instant messaging connections (Slack, Telegram)",
    "hl7": "HL7 connections (self.out.hl7.fhir, self.out.hl7.mllp)",
    "sms": "SMS connections (Twilio)",
    "vault": "Vault connections",
    "kafka": "Kafka connections",
}


class NotSupported(ServiceError, AttributeError):
    """A service used a Zato API this server does not have; the message names it."""

    def __init__(self, msg: str):
        super().__init__(msg)
        self.service: str | None = None  # set by the store: the service that used it


def _refusal(where: str, name: str, feature: str) -> property:
    """Reading it raises NotSupported, unless the object was given a value of its own
    (`self.email = self.request.input.email` in a service is the service's own attribute)."""

    def get(obj: Any) -> Any:
        try:
            return vars(obj)[name]
        except (KeyError, TypeError):  # TypeError: no __dict__ (a class with __slots__)
            raise NotSupported(f"{where}.{name}: {feature} is {WHERE}") from None

    def put(obj: Any, value: Any) -> None:
        if not hasattr(obj, "__dict__"):
            raise NotSupported(f"{where}.{name} cannot be set: {feature} is {WHERE}")
        obj.__dict__[name] = value

    def delete(obj: Any) -> None:
        getattr(obj, "__dict__", {}).pop(name, None)

    return property(get, put, delete, doc=f"{feature}: {WHERE}")


def refuse_on(cls: type, where: str, names: dict[str, str]) -> None:
    """Give `cls` a property for each of `names` that raises NotSupported naming the feature
    (properties, not __getattr__: the type checker still sees every other attribute)."""
    for name, feature in names.items():
        if name not in cls.__dict__:
            setattr(cls, name, _refusal(where, name, feature))
