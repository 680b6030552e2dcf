"""Connection definitions: validation with clear messages, CRUD on a SQLite ODB file,
passwords masked, and the registry's specs (no secret in argv, hash follows the config)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from zato.common.errors import ConnectorError
from zato.config.settings import RedisSettings, ServerSettings
from zato.connector import registry
from zato.odb import connectors
from zato.odb.connectors import DefinitionNotFound
from zato.odb.engine import ODB, create_schema
from zato.odb.limits import answer_timeout, in_flight_limit

CLUSTER = "unit"


def settings(tmp_path, odb_url: str) -> ServerSettings:
    return ServerSettings(
        path=str(tmp_path),
        name="server1",
        cluster=CLUSTER,
        host="127.0.0.1",
        port=17010,
        workers=1,
        odb_url=odb_url,
        redis=RedisSettings(),
        admin_username="admin",
        admin_password="x",
        cluster_secret="cluster-secret",
    )


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("amqp-def", {"name": "r", "port": "http"}, "amqp-def port: 'http' is not a whole number"),
        ("amqp-def", {"name": "r", "port": 70000}, "amqp-def port: 70000 is not in 1..65535"),
        ("amqp-def", {"name": "r", "use_tls": "maybe"}, "amqp-def use_tls: 'maybe' is not true or false"),
        ("amqp-def", {"name": "r", "colour": "red"}, "amqp-def: unknown field(s) colour"),
        ("amqp-channel", {"name": "c", "def": "r"}, "missing required field(s) queue, service"),
        (
            "amqp-channel",
            {"name": "c", "def": "r", "queue": "q", "service": "s", "data_format": "xml"},
            "amqp-channel data_format: 'xml' is not one of json, text",
        ),
        (
            "zmq-channel",
            {"name": "z", "address": "tcp://x:1", "service": "s", "socket_type": "PUSH"},
            "zmq-channel socket_type: 'PUSH' is not one of PULL, SUB",
        ),
        ("ibm-mq", {"name": "x"}, "unknown connection kind 'ibm-mq'"),
        (
            "amqp-channel",
            {"name": "c", "def": "r", "queue": "q", "service": "s", "max_in_flight": 1000},
            "amqp-channel max_in_flight: 1000 is not in 0..256",
        ),
        ("amqp-def", {"name": "r", "heartbeat": "0"}, "amqp-def heartbeat: 0 is not in 1..60"),
        ("amqp-def", {"name": "r", "heartbeat": "600"}, "amqp-def heartbeat: 600 is not in 1..60"),
    ],
)
def test_bad_values_are_named(odb, kind, values, message):
    with pytest.raises(ConnectorError) as e:
        connectors.create(odb, CLUSTER, kind, values)
    assert message in str(e.value)


def test_an_amqp_def_has_a_handshake_timeout_its_connections_go_by(odb):
    """Before, every AMQP connection had 15 s for TCP, TLS and the AMQP handshake, fixed; an
    amqp-def with handshake_timeout was refused ('unknown field(s) handshake_timeout')."""
    from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

    from zato.connector import amqp_common

    made = connectors.create(odb, CLUSTER, "amqp-def", {"name": "h", "handshake_timeout": "2"})
    assert made["handshake_timeout"] == 2
    full = connectors.load(odb, CLUSTER, "amqp-def", "h")
    assert amqp_common.parameters(full).stack_timeout == 2
    hung = AMQPConnectorStackTimeout("Timeout during AMQP handshake'127.0.0.1'/(...); ssl=False")
    assert "Timeout during AMQP handshake (none within 2 s: the port takes" in amqp_common.error_text(
        hung, full
    )
    assert connectors.create(odb, CLUSTER, "amqp-def", {"name": "d"})["handshake_timeout"] == 15
    before = {**full, "handshake_timeout": None}  # a row from before the field: the old 15 s
    assert amqp_common.parameters(before).stack_timeout == 15
    # ... and `zato conn list`, the admin API and the dashboard show those 15 s, not None
    with odb.session() as s:
        s.execute(text("UPDATE zato_amqp_def SET handshake_timeout = NULL WHERE name = 'h'"))
        s.commit()
    assert connectors.get(odb, CLUSTER, "amqp-def", "h")["handshake_timeout"] == 15
    for bad in ("0", "301"):
        with pytest.raises(ConnectorError, match=f"amqp-def handshake_timeout: {bad} is not in 1..300"):
            connectors.edit(odb, CLUSTER, "amqp-def", "h", {"handshake_timeout": bad})


def test_crud_and_masked_password(odb):
    d = connectors.create(odb, CLUSTER, "amqp-def", {"name": "rabbit", "password": "hunter2", "port": "5673"})
    assert d["password"] == "******" and d["port"] == 5673
    assert d["heartbeat"] == 10  # a vanished holder's unacked messages come back within ~20 s
    connectors.create(
        odb, CLUSTER, "amqp-channel", {"name": "c", "def": "rabbit", "queue": "q", "service": "s"}
    )
    edited = connectors.edit(odb, CLUSTER, "amqp-channel", "c", {"prefetch": "50", "data_format": "TEXT"})
    assert edited["prefetch"] == 50 and edited["data_format"] == "text" and edited["def"] == "rabbit"
    listed = connectors.list_all(odb, CLUSTER)
    assert [v["name"] for v in listed] == ["rabbit", "c"]
    assert "hunter2" not in repr(listed)
    assert connectors.load(odb, CLUSTER, "amqp-channel", "c")["amqp"]["password"] == "hunter2"
    with pytest.raises(ConnectorError, match="amqp-def 'rabbit' is used by amqp-channel 'c'"):
        connectors.delete(odb, CLUSTER, "amqp-def", "rabbit")
    with pytest.raises(
        ConnectorError, match="amqp-channel 'c' already exists: change it with `zato conn edit amqp-channel`"
    ):
        connectors.create(
            odb, CLUSTER, "amqp-channel", {"name": "c", "def": "rabbit", "queue": "q", "service": "s"}
        )
    connectors.create(odb, CLUSTER, "amqp-def", {"name": "rabbit2"})
    with pytest.raises(ConnectorError, match="amqp-def 'rabbit2' already exists: choose another name"):
        connectors.edit(odb, CLUSTER, "amqp-def", "rabbit", {"name": "rabbit2"})
    connectors.delete(odb, CLUSTER, "amqp-def", "rabbit2")
    with pytest.raises(ConnectorError, match="amqp-outgoing def: no amqp-def named 'nope'"):
        connectors.create(odb, CLUSTER, "amqp-outgoing", {"name": "o", "def": "nope"})
    connectors.delete(odb, CLUSTER, "amqp-channel", "c")
    with pytest.raises(DefinitionNotFound, match="no amqp-channel named 'c'"):
        connectors.get(odb, CLUSTER, "amqp-channel", "c")


def test_registry_specs_follow_the_config(tmp_path, odb):
    s = settings(tmp_path, odb.url)
    connectors.create(odb, CLUSTER, "amqp-def", {"name": "rabbit", "password": "hunter2"})
    connectors.create(
        odb, CLUSTER, "amqp-channel", {"name": "c", "def": "rabbit", "queue": "q", "service": "s"}
    )
    connectors.create(
        odb, CLUSTER, "zmq-channel", {"name": "z", "address": "tcp://127.0.0.1:1", "service": "s"}
    )
    connectors.create(odb, CLUSTER, "zmq-outgoing", {"name": "zo", "address": "tcp://127.0.0.1:1"})
    first = registry.desired(s)
    assert sorted(first) == ["amqp-channel:c", "zmq-channel:z"]  # ZeroMQ outgoing lives in servers
    assert first["amqp-channel:c"].argv[-3:] == (str(tmp_path), "amqp-channel", "c")
    assert all("hunter2" not in " ".join(spec.argv) + spec.config_hash for spec in first.values())
    # The connector gets its whole definition from the spec, never from the ODB; a log line
    # that shows a spec shows no password.
    assert first["amqp-channel:c"].definition == connectors.load(odb, CLUSTER, "amqp-channel", "c")
    assert first["amqp-channel:c"].definition["amqp"]["password"] == "hunter2"
    assert "hunter2" not in repr(first) + str(first)
    connectors.edit(odb, CLUSTER, "amqp-def", "rabbit", {"password": "changed"})
    second = registry.desired(s)
    assert second["amqp-channel:c"].config_hash != first["amqp-channel:c"].config_hash
    assert second["amqp-channel:c"].definition["amqp"]["password"] == "changed"
    assert second["zmq-channel:z"] == first["zmq-channel:z"]
    connectors.edit(odb, CLUSTER, "zmq-channel", "z", {"is_active": "false"})
    assert sorted(registry.desired(s)) == ["amqp-channel:c"]


def test_reading_an_unknown_cluster_finds_nothing_and_creates_nothing(odb):
    from zato.odb.models import Cluster

    assert connectors.list_all(odb, "nobody") == [] and connectors.load_connectors(odb, "nobody") == []
    with pytest.raises(DefinitionNotFound):
        connectors.load(odb, "nobody", "amqp-channel", "c")
    with odb.session() as s:
        assert s.query(Cluster).filter(Cluster.name == "nobody").count() == 0


@pytest.mark.parametrize(
    ("definition", "limit"),
    [
        ({"prefetch": 50, "max_in_flight": 0}, 50),  # default: the prefetch
        ({"prefetch": 50, "max_in_flight": None}, 50),  # an ODB upgraded from before the field
        ({"prefetch": 50, "max_in_flight": 8}, 8),
        ({"prefetch": 4, "max_in_flight": 8}, 4),  # the broker hands out no more than prefetch
        ({"prefetch": 1000, "max_in_flight": 0}, 256),
        ({"max_in_flight": 0}, 16),  # ZeroMQ default
        ({"max_in_flight": 3}, 3),
    ],
)
def test_in_flight_limit(definition, limit):
    assert in_flight_limit(definition) == limit


@pytest.mark.parametrize("kind", ["amqp-channel", "ibm-mq-channel", "zmq-channel"])
def test_every_channel_has_an_answer_timeout_of_30_s_by_default_within_1_to_3600(odb, kind):
    """Before, only AMQP channels had `timeout` (ZeroMQ and IBM MQ refused it as an unknown
    field), and an AMQP channel made without one stored 60 while the docs and the connector's
    default said 30."""
    connectors.create(odb, CLUSTER, "amqp-def", {"name": "rabbit"})
    connectors.create(odb, CLUSTER, "ibm-mq-def", {"name": "qm"})
    values = {
        "amqp-channel": {"def": "rabbit", "queue": "q"},
        "ibm-mq-channel": {"def": "qm", "queue": "Q1"},
        "zmq-channel": {"address": "tcp://127.0.0.1:5555"},
    }[kind]
    made = connectors.create(odb, CLUSTER, kind, {"name": "c", "service": "s", **values})
    assert made["timeout"] == 30
    assert connectors.edit(odb, CLUSTER, kind, "c", {"timeout": "3600"})["timeout"] == 3600
    for bad in ("0", "3601"):
        with pytest.raises(ConnectorError, match=f"{kind} timeout: {bad} is not in 1..3600"):
            connectors.edit(odb, CLUSTER, kind, "c", {"timeout": bad})
    assert answer_timeout(connectors.load(odb, CLUSTER, kind, "c")) == 3600
    assert answer_timeout({"timeout": None}) == 30  # a row stored before the column existed


def test_an_odb_made_before_max_in_flight_gets_the_column(tmp_path):
    db = ODB(f"sqlite:///{tmp_path}/old.sqlite")
    create_schema(db.engine)
    with db.engine.begin() as conn:  # as an older version made it
        conn.exec_driver_sql("ALTER TABLE zato_amqp_channel DROP COLUMN max_in_flight")
    create_schema(db.engine)  # zato start does this
    connectors.create(db, CLUSTER, "amqp-def", {"name": "r"})
    connectors.create(
        db,
        CLUSTER,
        "amqp-channel",
        {"name": "c", "def": "r", "queue": "q", "service": "s", "max_in_flight": 7},
    )
    assert connectors.load(db, CLUSTER, "amqp-channel", "c")["max_in_flight"] == 7
    db.dispose()


def test_an_amqp_channel_made_without_a_timeout_waits_30_s_for_its_service(odb):
    # README and zato-compat: "A channel waits --timeout seconds (default 30) for its service's
    # answer"; a channel created without --timeout stored 60 and --help said "default: 60".
    connectors.create(odb, CLUSTER, "amqp-def", {"name": "r"})
    made = connectors.create(
        odb, CLUSTER, "amqp-channel", {"name": "c", "def": "r", "queue": "q", "service": "s"}
    )
    assert made["timeout"] == 30
    assert answer_timeout(connectors.load(odb, CLUSTER, "amqp-channel", "c")) == 30
    assert answer_timeout({"timeout": None}) == 30  # a row from before the setting existed


def test_a_stored_heartbeat_outside_the_bound_is_brought_within_it():
    from zato.connector.amqp_common import heartbeat

    assert [heartbeat(v) for v in (0, 1, 10, 600, None)] == [1, 1, 10, 60, 10]


def test_a_value_that_stands_for_something_else_is_explained_in_the_one_line_view():
    from zato.connector.definitions import describe

    view = {"kind": "amqp-channel", "name": "in", "prefetch": 10, "max_in_flight": 0}
    assert describe(view) == "amqp-channel in: prefetch=10 max_in_flight=0 (the prefetch)"
    assert describe({**view, "max_in_flight": 4}) == "amqp-channel in: prefetch=10 max_in_flight=4"
    assert "priority=-1 (the queue's default)" in describe(
        {"kind": "ibm-mq-outgoing", "name": "o", "priority": -1}
    )


def test_an_amqp_channel_queue_name_its_parking_queue_could_not_have_is_refused_in_one_line(odb):
    """AMQP names are at most 255 bytes and the parking queue adds ".zato-parked": before, a
    251-character queue was taken and the channel reconnected twice a second forever."""
    values = {"name": "long", "def": "rabbit", "service": "s", "queue": "q" * 244}
    with pytest.raises(ConnectorError) as e:
        connectors.validate("amqp-channel", values, creating=True)
    assert str(e.value).startswith("amqp-channel queue is longer than 243 characters")
    assert "\n" not in str(e.value)
    assert connectors.validate("amqp-channel", {**values, "queue": "q" * 243}, creating=True)["queue"]


@pytest.mark.parametrize(
    ("kind", "address", "says"),
    [
        ("zmq-channel", "tcp://999.1.1.1:5555", "999.1.1.1 is not an IPv4 address"),
        ("zmq-channel", "@tcp://10.0.0:5555", "10.0.0 is not an IPv4 address"),
        ("zmq-channel", "tcp://127.0.0.1:70000", "port '70000' is not in 1..65535"),
        ("zmq-channel", "tcp://127.0.0.1", "host:port"),
        ("zmq-channel", "127.0.0.1:5555", "transport://address"),
        ("zmq-outgoing", "tcp://127.0.0.1:*", "port '*'"),  # connects: a port is needed
    ],
)
def test_a_zmq_address_libzmq_would_refuse_is_refused_with_one_line(kind, address, says):
    with pytest.raises(ConnectorError) as e:
        connectors.validate(kind, {"address": address}, creating=False)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_an_address_with_a_password_is_refused_and_one_stored_before_is_shown_redacted(odb):
    """tests/integration/test_secrets_shown.py has the refusal on a real cluster."""
    for bad in ("https://crm:pw-in-url@crm.example.com", "http://:pw-in-url@10.0.0.1:8080"):
        with pytest.raises(ConnectorError, match="keep the password out of the address") as e:
            connectors.create(odb, CLUSTER, "http-outgoing", {"name": "crm", "address": bad})
        assert "pw-in-url" not in str(e.value)
    connectors.create(
        odb, CLUSTER, "http-outgoing", {"name": "crm", "address": "https://crm@crm.example.com"}
    )
    with pytest.raises(ConnectorError, match="keep the password out of the address"):
        connectors.edit(odb, CLUSTER, "http-outgoing", "crm", {"address": "https://crm:pw-in-url@h"})
    with odb.session() as s:  # a row stored before the refusal
        s.execute(text("UPDATE zato_http_outgoing SET address = 'https://crm:pw-in-url@h' WHERE name='crm'"))
        s.commit()
    assert connectors.get(odb, CLUSTER, "http-outgoing", "crm")["address"] == "https://crm:******@h"
    assert "pw-in-url" not in str(connectors.list_all(odb, CLUSTER))
