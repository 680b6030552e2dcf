"""IBM MQ definitions and the pieces of the IBM MQ connectors that need no queue manager:
validation with clear messages, masked passwords, the registry, outgoing message encoding,
reason-code classification and the one-line error when the MQ client is not installed."""

from __future__ import annotations

import itertools
import re
import sys

import pytest
import redis

from tests.unit.test_conn_definitions import CLUSTER, settings
from zato.common.errors import ConnectorError, CoordUnavailable
from zato.connector import ibmmq_common, ibmmq_outgoing, registry
from zato.coord.signing import outgoing_key
from zato.odb import connectors
from zato.service.outgoing import IBMMQOutgoing

KEY = outgoing_key("the-test-cluster-secret", CLUSTER)  # what a server of CLUSTER signs with


def encode(*args: object, **kwargs: object) -> str:
    """ibmmq_outgoing.encode, signed as a server signs."""
    return ibmmq_outgoing.encode(*args, key=KEY, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("ibm-mq-def", {"name": "q", "conn_name": "mq.example.com"}, "'mq.example.com' is not host(port)"),
        ("ibm-mq-def", {"name": "q", "conn_name": "a(1414),b(99999)"}, "ibm-mq-def conn_name: 'b(99999)'"),
        ("ibm-mq-channel", {"name": "c", "def": "q"}, "missing required field(s) queue, service"),
        (
            "ibm-mq-outgoing",
            {"name": "o", "def": "q", "queue": "Q", "persistence": "forever"},
            "ibm-mq-outgoing persistence: 'forever' is not one of persistent, non-persistent, queue",
        ),
        ("ibm-mq-outgoing", {"name": "o", "def": "q", "queue": "Q", "priority": 10}, "10 is not in -1..9"),
        (
            "ibm-mq-channel",
            {"name": "c", "def": "q", "queue": "ZAMÓWIENIA", "service": "s"},
            "ibm-mq-channel queue: 'ZAMÓWIENIA' is not an IBM MQ queue name (at most 48 of",
        ),
        (
            "ibm-mq-channel",
            {"name": "c", "def": "q", "queue": "Q", "service": "s", "backout_queue": "BO Q"},
            "ibm-mq-channel backout_queue: 'BO Q' is not an IBM MQ queue name",
        ),
        (
            "ibm-mq-outgoing",
            {"name": "o", "def": "q", "queue": "Q" * 49},
            "is not an IBM MQ queue name (at most 48 of A-Z a-z 0-9 . / _ %)",
        ),
        # the driver packs the MQCD's ChannelName into 20 bytes: a longer name was cut unsaid
        (
            "ibm-mq-def",
            {"name": "q", "channel": "DEV.APP.SVRCONN.CLIENT1"},
            "ibm-mq-def channel: 'DEV.APP.SVRCONN.CLIENT1' is not an IBM MQ channel name (1 to 20 of",
        ),
        ("ibm-mq-def", {"name": "q", "channel": "DEV APP"}, "'DEV APP' is not an IBM MQ channel name"),
        ("ibm-mq-def", {"name": "q", "channel": ""}, "ibm-mq-def channel: '' is not an IBM MQ channel name"),
        # the driver encodes the queue manager's name as ASCII: UnicodeEncodeError in the connector
        (
            "ibm-mq-def",
            {"name": "q", "queue_manager": "KOLEJKA.ŁÓDŹ"},
            "ibm-mq-def queue_manager: 'KOLEJKA.ŁÓDŹ' is not an IBM MQ queue manager name (at most 48",
        ),
        ("ibm-mq-def", {"name": "q", "queue_manager": "Q" * 49}, "is not an IBM MQ queue manager name"),
        (
            "ibm-mq-def",
            {"name": "q", "conn_name": ",".join(f"mq{i:02}.example.com(1414)" for i in range(12))},
            "ibm-mq-def conn_name is longer than 264 bytes (IBM MQ's MQCD ConnectionName): 275",
        ),
        ("ibm-mq-def", {"name": "q", "cipher_spec": "X" * 33}, "cipher_spec is longer than 32 characters"),
    ],
)
def test_bad_values_are_named(odb, kind, values, message):
    with pytest.raises(ConnectorError) as e:
        connectors.create(odb, CLUSTER, kind, values)
    assert message in str(e.value)


def test_a_password_without_a_username_is_refused_on_create_and_edit(odb):
    """The driver sends a password only with a user id (MQCSP): one without was stored and never
    sent, and the connector connected as its operating-system user, unsaid."""
    said = "ibm-mq-def 'qm': a password without a username is never sent (IBM MQ takes one only with"
    with pytest.raises(ConnectorError, match=re.escape(said)):
        connectors.create(odb, CLUSTER, "ibm-mq-def", {"name": "qm", "password": "hunter2"})
    connectors.create(odb, CLUSTER, "ibm-mq-def", {"name": "qm", "username": "app", "password": "hunter2"})
    with pytest.raises(ConnectorError, match=re.escape(said)):
        connectors.edit(odb, CLUSTER, "ibm-mq-def", "qm", {"username": ""})
    assert connectors.get(odb, CLUSTER, "ibm-mq-def", "qm")["username"] == "app"  # nothing changed
    connectors.edit(odb, CLUSTER, "ibm-mq-def", "qm", {"username": "", "password": ""})  # neither: fine
    connectors.create(odb, CLUSTER, "ibm-mq-def", {"name": "qm2", "username": "app"})  # a user alone: fine


def test_queue_manager_and_channel_names_ibm_mq_takes_are_kept(odb):
    """Empty (whichever queue manager answers), a leading * (its name not checked), 48 and 20."""
    for i, (qmgr, channel) in enumerate([("", "DEV.APP.SVRCONN"), ("*QMGRP", "A"), ("Q" * 48, "C" * 20)]):
        values = {"name": f"qm{i}", "queue_manager": qmgr, "channel": channel, "conn_name": "h(1414)"}
        d = connectors.create(odb, CLUSTER, "ibm-mq-def", values)
        assert (d["queue_manager"], d["channel"]) == (qmgr, channel)


def test_crud_masks_the_password_and_refers_to_ibm_mq_definitions_only(odb):
    d = connectors.create(
        odb,
        CLUSTER,
        "ibm-mq-def",
        {
            "name": "qm",
            "conn_name": "mq1(1414), mq2(1415)",
            "username": "app",
            "password": "hunter2",
            "queue_manager": "QM1",
        },
    )
    assert d["password"] == "******" and d["conn_name"] == "mq1(1414),mq2(1415)"
    connectors.create(odb, CLUSTER, "amqp-def", {"name": "rabbit"})
    with pytest.raises(ConnectorError, match="ibm-mq-channel def: no ibm-mq-def named 'rabbit'"):
        connectors.create(
            odb, CLUSTER, "ibm-mq-channel", {"name": "c", "def": "rabbit", "queue": "Q", "service": "s"}
        )
    connectors.create(
        odb, CLUSTER, "ibm-mq-channel", {"name": "c", "def": "qm", "queue": "Q", "service": "s"}
    )
    assert "hunter2" not in repr(connectors.list_all(odb, CLUSTER))
    loaded = connectors.load(odb, CLUSTER, "ibm-mq-channel", "c")
    assert loaded["ibm_mq"]["password"] == "hunter2" and loaded["def"] == "qm"
    with pytest.raises(ConnectorError, match="ibm-mq-def 'qm' is used by ibm-mq-channel 'c'"):
        connectors.delete(odb, CLUSTER, "ibm-mq-def", "qm")


def test_registry_runs_ibm_mq_channels_and_outgoing_connections(tmp_path, odb):
    connectors.create(odb, CLUSTER, "ibm-mq-def", {"name": "qm", "username": "app", "password": "hunter2"})
    connectors.create(
        odb, CLUSTER, "ibm-mq-channel", {"name": "c", "def": "qm", "queue": "Q", "service": "s"}
    )
    connectors.create(odb, CLUSTER, "ibm-mq-outgoing", {"name": "o", "def": "qm", "queue": "Q"})
    s = settings(tmp_path, odb.url)
    first = registry.desired(s)
    assert sorted(first) == ["ibm-mq-channel:c", "ibm-mq-outgoing:o"]
    assert all("hunter2" not in " ".join(spec.argv) for spec in first.values())
    connectors.edit(odb, CLUSTER, "ibm-mq-def", "qm", {"password": "changed"})
    second = registry.desired(s)
    assert all(second[n].config_hash != first[n].config_hash for n in first)  # both restart


def test_outgoing_messages_round_trip_and_bad_arguments_are_named():
    raw = encode({"a": 1}, "OTHER.Q", priority=3, expiry=60, correlation_id="abc")
    msg = ibmmq_outgoing.decode(raw)
    assert (msg.body, msg.queue, msg.priority, msg.expiry) == (b'{"a": 1}', "OTHER.Q", 3, 60)
    assert msg.correlation_id == b"abc"
    assert ibmmq_outgoing.decode(encode(b"\x00\xff")).body == b"\x00\xff"
    with pytest.raises(ConnectorError, match="expiry must be seconds >= 0"):
        encode("x", expiry=-5)
    with pytest.raises(ConnectorError, match="correlation_id is longer than 24 bytes"):
        encode("x", correlation_id="x" * 25)
    with pytest.raises(ConnectorError, match="malformed outgoing message"):
        ibmmq_outgoing.decode("{}")


class PushedRedis:
    """Just what OutQueue.push needs; `down` makes every push fail as an unreachable Redis."""

    def __init__(self, down: bool = False):
        self.pushed: list[str] = []
        self.down = down

    def register_script(self, script: str) -> object:
        return object()

    def lpush(self, key: str, raw: str) -> None:
        if self.down:
            raise redis.ConnectionError("Connection refused")
        self.pushed.append(raw)


def ibm_mq(client: PushedRedis) -> IBMMQOutgoing:
    return IBMMQOutgoing(
        lambda kind, name: {"is_active": True} if name == "out" else None, CLUSTER, client, KEY
    )


def test_zatos_send_signature_maps_onto_the_message_descriptor():
    client = PushedRedis()
    # Zato: send(msg, outconn_name, queue_name, correlation_id, msg_id, reply_to, expiration (ms),
    # priority, delivery_mode (JMS 1/2), raise_on_error)
    ibm_mq(client).send("hi", "out", "DEV.QUEUE.2", "corr-1", "ID:" + "ab" * 24, "REPLY.Q", 1550, 7, 1, True)
    msg = ibmmq_outgoing.decode(client.pushed[-1])
    assert (msg.body, msg.queue, msg.correlation_id) == (b"hi", "DEV.QUEUE.2", b"corr-1")
    assert msg.msg_id == b"\xab" * 24
    assert (msg.reply_to, msg.expiry, msg.priority, msg.persistence) == ("REPLY.Q", 1.6, 7, "non-persistent")
    ibm_mq(client).send({"a": 1}, "out", "Q", correlation_id="", msg_id="", expiration=0, delivery_mode=2)
    msg = ibmmq_outgoing.decode(client.pushed[-1])  # Zato's defaults: "" and 0 mean not set
    assert (msg.correlation_id, msg.msg_id, msg.expiry, msg.persistence) == (None, None, None, "persistent")
    ibm_mq(client).send(data=b"x", name="out", queue="Q2", expiry=60, persistence="queue")  # our names
    msg = ibmmq_outgoing.decode(client.pushed[-1])
    assert (msg.body, msg.queue, msg.expiry, msg.persistence) == (b"x", "Q2", 60, "queue")
    assert ibmmq_outgoing.decode(encode("x", expiry=0.1)).expiry == 0.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delivery_mode": 3}, "delivery_mode must be 1 (non-persistent) or 2 (persistent), not 3"),
        ({"expiration": -1}, "expiration must be whole milliseconds >= 0, not -1"),
        ({"expiration": "soon"}, "expiration must be whole milliseconds >= 0, not 'soon'"),
        ({"msg_id": "m" * 25}, "msg_id is longer than 24 bytes"),
        ({"correlation_id": "ID:zz"}, "correlation_id 'ID:zz': hex digits must follow ID:"),
        ({"queue_name": "A", "queue": "B"}, "give queue_name or queue, not both"),
        ({"delivery_mode": 2, "persistence": "persistent"}, "give delivery_mode or persistence, not both"),
        ({"outconn_name": None}, "the outgoing connection's name is required"),
        ({"outconn_name": "nope"}, "no active ibm-mq-outgoing connection named 'nope'"),
    ],
)
def test_bad_zato_style_arguments_are_named(kwargs, message):
    client = PushedRedis()
    with pytest.raises(ConnectorError, match=re.escape(message)):
        ibm_mq(client).send(**{"msg": "x", "outconn_name": "out", **kwargs})
    assert client.pushed == []


def test_raise_on_error_false_drops_a_message_redis_cannot_take_with_a_warning(caplog):
    with pytest.raises(CoordUnavailable, match="queueing a message for outgoing ibm-mq 'out'"):
        ibm_mq(PushedRedis(down=True)).send("x", "out", "Q")
    ibm_mq(PushedRedis(down=True)).send("x", "out", "Q", raise_on_error=False)
    assert "message dropped (raise_on_error=False)" in caplog.text
    with pytest.raises(ConnectorError, match="priority must be"):  # bad arguments raise either way
        ibm_mq(PushedRedis(down=True)).send("x", "out", "Q", priority=10, raise_on_error=False)


def test_reason_codes_that_mean_reconnect():
    class Err(Exception):
        def __init__(self, reason):
            self.reason = reason

    assert all(ibmmq_common.is_broken(Err(r)) for r in (2009, 2059, 2161, 2162, 2538))
    assert not ibmmq_common.is_broken(Err(2085)) and not ibmmq_common.is_broken(ValueError())
    assert ibmmq_common.error_text(Err(2009)) == "reason 2009 (MQRC_CONNECTION_BROKEN)"


def test_a_missing_mq_client_is_one_line_naming_what_to_install(monkeypatch):
    for name in ibmmq_common.DRIVERS:
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    with pytest.raises(ibmmq_common.MissingDriver) as e:
        ibmmq_common.driver()
    text = str(e.value)
    assert "\n" not in text and "pip install 'zato-ha[ibmmq]'" in text


def test_cluster_status_shows_reconnects_backouts_and_why_a_connector_is_fatal():
    from zato.cli.cluster import render
    from zato.coord.status import _child

    fatal = _child(
        {
            "name": "ibm-mq-channel:in",
            "kind": "ibm-mq-channel",
            "state": "FATAL",
            "last_error": "exited with code 3",
        },
        {"state": "fatal", "last_error": ibmmq_common.INSTALL_HINT},
    )
    assert fatal["last_error"] == ibmmq_common.INSTALL_HINT
    busy = _child(
        {
            "name": "ibm-mq-outgoing:out",
            "kind": "ibm-mq-outgoing",
            "state": "RUNNING",
            "pid": 7,
            "restarts": 0,
        },
        {"state": "reconnecting", "backouts": 0, "reconnects": 2, "messages_in": 5, "messages_out": 5},
    )
    lease = {"holder": "server1", "epoch": 3, "since": None, "newest_epoch": 3}
    text = render({"cluster": "c", "servers": [], "lease": lease, "children": [fatal, busy], "errors": []})
    header = next(line for line in text.splitlines() if line.startswith("NAME"))
    assert "BACKOUTS" in header and "RECONN" in header
    row = next(line for line in text.splitlines() if line.startswith("ibm-mq-outgoing:out"))
    assert "RUNNING/reconnecting" in row and row.split()[-2:] == ["2", "-"]  # RECONN, LAST ERROR
    assert "pip install 'zato-ha[ibmmq]'" in text


def test_a_send_to_a_queue_name_mq_cannot_take_is_refused_at_once():
    """ibmmq encodes object names as ASCII (UnicodeEncodeError, which the outgoing connector
    took for a crash and met again on every restart) and cuts them to 48 bytes without a word
    (a put to another queue); ReplyToQ alike. Refused at send now, naming the argument."""
    for queue in ("ZAMÓWIENIA", "Q" * 49, "A QUEUE"):
        with pytest.raises(ConnectorError, match="IBM MQ queue_name: .* is not an IBM MQ queue name"):
            encode({"n": 1}, queue=queue)
    with pytest.raises(ConnectorError, match="IBM MQ reply_to: 'ODPOWIEDŹ' is not an IBM MQ queue name"):
        encode({"n": 1}, reply_to="ODPOWIEDŹ")
    ok = ibmmq_outgoing.decode(encode("x", queue="Q" * 48, reply_to="A.B/C_D%1"))
    assert (ok.queue, ok.reply_to, ok.text) == ("Q" * 48, "A.B/C_D%1", True)
    assert ibmmq_outgoing.decode(encode(b"x")).text is False


def test_a_refusal_only_configuration_ends_waits_longer_each_time_up_to_30_s():
    """2035/2085 for the channel's queue: tried again after 0.5, 1, 2... s, at most every 30 s
    (before: every 0.5 s for ever, a reconnect and a line each time)."""
    delays = list(itertools.islice(ibmmq_common.REFUSED.delays(), 9))
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_refusal_is_said_once_then_once_a_minute_with_a_count_and_when_it_works():
    r = ibmmq_common.Refusals()
    assert r.worked(0.0) is None  # never refused: nothing to say
    key = (2035, "Q")
    assert r.refused(10.0, key) == 0  # the first: said in full
    assert [r.refused(10.0 + t, key) for t in (0.5, 1.5, 3.5, 7.5, 15.5, 31.5)] == [None] * 6
    assert r.refused(70.0, key) == 7  # a minute on: 7 more since said
    assert r.refused(100.0, key) is None
    assert r.refused(101.0, (2085, "Q")) == 0  # another refusal: said in full at once
    assert r.worked(131.0) == (1, 30.0)
    assert r.refused(132.0, (2085, "Q")) == 0  # refused again after it worked: said again


def test_connects_refused_for_a_configuration_error_say_what_to_check_others_are_retried_as_before():
    mq = {"name": "qm", "queue_manager": "QM1", "channel": "CH", "conn_name": "h(1414)", "username": "app"}

    def refused(reason: int) -> str | None:
        return ibmmq_common.connect_refusal(mq, type("E", (Exception,), {"reason": reason})())

    assert "grant +connect to app (setmqaut -m QM1 -t qmgr -p app +connect +inq)" in (refused(2035) or "")
    assert "fix the definition's queue_manager" in (refused(2058) or "")
    assert "DEFINE CHANNEL(CH) CHLTYPE(SVRCONN)" in (refused(2540) or "")
    assert refused(2009) is None and refused(2538) is None  # the network, a restart: RECONNECT
