"""Which connector processes the lease holder must run (the supervisor's desired state).

One ConnectorSpec per active AMQP channel, AMQP outgoing connection and ZeroMQ channel of the
cluster. config_hash covers the definition and, for AMQP, its connection definition, so editing
either restarts exactly the connectors that use it. The hash is keyed with the cluster secret:
it never reveals a password, yet changes when one does. argv carries no secret; the
definition itself travels in the spec to the zygote, which hands it to the forked connector.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading

from zato.config.settings import ServerSettings
from zato.connector.base import spec_name
from zato.connector.process import ConnectorSpec
from zato.odb import connectors
from zato.odb.engine import ODB

_odbs: dict[str, ODB] = {}
_lock = threading.Lock()


def _odb(url: str) -> ODB:
    with _lock:
        if url not in _odbs:
            _odbs[url] = ODB(url)
        return _odbs[url]


def config_hash(definition: dict, key: str) -> str:
    body = json.dumps(definition, sort_keys=True, default=str).encode("utf-8")
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()[:32]


def spec_for(settings: ServerSettings, definition: dict) -> ConnectorSpec:
    kind, name = definition["kind"], definition["name"]
    argv = (sys.executable, "-m", "zato.connector.run", settings.path, kind, name)
    digest = config_hash(definition, settings.cluster_secret)
    return ConnectorSpec(spec_name(kind, name), kind, argv, digest, definition)


def desired(settings: ServerSettings) -> dict[str, ConnectorSpec]:
    """Every active connector definition of the cluster, read from the ODB.
    Raises ODBError when the ODB cannot be read (the caller keeps what runs and retries)."""
    specs = (
        spec_for(settings, d) for d in connectors.load_connectors(_odb(settings.odb_url), settings.cluster)
    )
    return {spec.name: spec for spec in specs}


def outgoing_names(settings: ServerSettings) -> dict[tuple[str, int], str]:
    """(kind, ODB id) -> name of every outgoing AMQP / IBM MQ definition, active or not
    (zato.connector.renames). Raises ODBError when the ODB cannot be read."""
    kinds = ("amqp-outgoing", "ibm-mq-outgoing")
    return connectors.names_by_id(_odb(settings.odb_url), settings.cluster, kinds)
