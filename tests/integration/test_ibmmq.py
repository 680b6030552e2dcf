"""IBM MQ connectors (channel and outgoing) as real processes against the stand-in queue manager
(tests/ibmmq_standin), or a real one when ZATO_TEST_IBMMQ names it: round trips, the backout
threshold, a message over the servers' body limit, a connector SIGKILLed mid-message, broken
connections and a queue manager restart, and what happens when the IBM MQ client is not
installed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import redis
from sqlalchemy import text

from tests.conn_support import FakeServer, log_text, make_server_dir, set_epoch, signed, wait_exit
from tests.ibmmq_support import QM_KINDS, client, definitions, jms_rfh2, make_qm, put
from tests.support import REDIS_URL, cleanup_redis, cluster_name, stop_process, wait_for
from zato.common.errors import EXIT_CONFIG, EXIT_LEASE_LOST, ConnectorError
from zato.config.settings import load_server_settings
from zato.coord import connector_stats
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue
from zato.odb import connectors
from zato.odb.engine import ODB
from zato.service.outgoing import make_outgoing


@pytest.fixture(params=QM_KINDS)
def env(tmp_path, request):
    qm = make_qm(request.param)
    cluster = cluster_name("ibmmq")
    server_dir = make_server_dir(str(tmp_path), cluster)
    odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
    set_epoch(cluster, 1)
    definitions(odb, cluster, qm, backout_threshold=3)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    e = dict(cluster=cluster, dir=server_dir, odb=odb, qm=qm, client=client, procs=[], fake=None)
    yield e
    for p in e["procs"]:
        stop_process(p)
    if e["fake"]:
        e["fake"].close()
    qm.close()
    odb.dispose()
    client.close()
    cleanup_redis(cluster)


def start(env, kind: str, name: str, with_driver: bool = True) -> subprocess.Popen:
    base = dict(os.environ, ZATO_EPOCH="1", ZATO_SERVER_DIR=env["dir"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "zato.connector.run", env["dir"], kind, name],
        env=env["qm"].env(base) if with_driver else base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    env["procs"].append(proc)
    return proc


def fake(env) -> FakeServer:
    env["fake"] = env["fake"] or FakeServer(env["cluster"])
    return env["fake"]


def backed_out(env, count: int, what: str) -> list:  # noqa: ANN001
    """The messages on the backout queue, read until `count` arrived: [(body, descriptor)]."""
    moved: list = []
    wait_for(
        lambda: moved.extend(env["qm"].drain(env["qm"].queues["backout"])) or len(moved) >= count,
        30,
        what=what,
    )
    return moved


def numbers(bodies) -> list[int]:  # noqa: ANN001
    return [json.loads(b)["n"] for b in bodies]


def stats(env, name: str) -> dict:
    return connector_stats.read(env["client"], env["cluster"], [name]).get(name) or {}


def test_channel_round_trip_commits_after_the_service(env):
    server = fake(env)
    put(env["qm"], env["qm"].queues["in"], [json.dumps({"n": i}).encode() for i in range(20)])
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: len(server.bodies("conn.record")) == 20, timeout=30, what="20 service calls")
    assert sorted(numbers(server.bodies("conn.record"))) == list(range(20))
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("messages_out") == 20, what="20 commits in stats")
    if not env["qm"].is_real:
        assert env["qm"].depth(env["qm"].queues["in"]) == (0, 0)


def test_outgoing_round_trip_puts_what_services_send(env):
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    out.ibm_mq.send({"n": -1}, "out", queue="ZT.NO.SUCH.QUEUE")  # the queue manager refuses it
    for i in range(20):
        out.ibm_mq.send({"n": i}, "out")
    out.ibm_mq.send(b'{"n": 20}', "out", priority=7, expiry=600)
    with pytest.raises(ConnectorError, match="no active ibm-mq-outgoing connection named 'nope'"):
        out.ibm_mq.send({"n": 1}, "nope")
    with pytest.raises(ConnectorError, match="priority must be a whole number 0..9"):
        out.ibm_mq.send({"n": 1}, "out", priority=12)
    start(env, "ibm-mq-outgoing", "out")
    queue = OutQueue(env["client"], env["cluster"], "ibm-mq", "out")
    seen: list = []
    wait_for(
        lambda: seen.extend(env["qm"].drain(env["qm"].queues["out"])) or len(seen) >= 21,
        timeout=30,
        what="21 messages on the out queue",
    )
    # The connector commits its puts, then drops them from Redis: the queue manager has them a
    # moment before Redis is empty. Once it is, nothing is left to put, so a last drain shows
    # any message put twice.
    wait_for(lambda: queue.depth() == (0, 0), timeout=30, what="nothing left waiting or in processing")
    seen.extend(env["qm"].drain(env["qm"].queues["out"]))
    assert sorted(numbers(b for b, _ in seen)) == list(range(21))
    if not env["qm"].is_real:
        assert seen[-1][1]["Priority"] == 7 and seen[-1][1]["Persistence"] == 1
    assert env["client"].llen(Keys(env["cluster"]).out_parked("ibm-mq", "out")) == 1  # parked, not lost
    s = wait_for(lambda: (s := stats(env, "ibm-mq-outgoing:out")).get("parked") == 1 and s, what="stats")
    assert "'ZT.NO.SUCH.QUEUE': reason 2085 (MQRC_UNKNOWN_OBJECT_NAME)" in s["last_error"]


def test_a_zato_style_send_puts_queue_correlation_and_message_ids(env):
    """Zato's own signature: send(msg, outconn_name, queue_name, correlation_id, msg_id,
    reply_to, expiration (ms), priority, delivery_mode (JMS 1/2)), positionally."""
    qm = env["qm"]
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    other = qm.queues["backout"]  # not the connection's default queue
    msg_id = bytes(range(24))
    out.ibm_mq.send('{"n": 1}', "out", other, "corr-1", "ID:" + msg_id.hex(), "REPLY.Q", 600_000, 3, 1)
    out.wmq.send('{"n": 2}', "out", other, correlation_id="corr-2", delivery_mode=2)  # Zato's older name
    start(env, "ibm-mq-outgoing", "out")
    seen: list = []
    wait_for(lambda: seen.extend(qm.drain(other)) or len(seen) == 2, timeout=30, what=f"2 on {other}")
    (first, md1), (second, md2) = sorted(seen)
    assert (first, second) == (b'{"n": 1}', b'{"n": 2}')
    assert md1["CorrelId"] == b"corr-1".ljust(24, b"\x00").hex() and md1["MsgId"] == msg_id.hex()
    assert md2["CorrelId"] == b"corr-2".ljust(24, b"\x00").hex() and md2["MsgId"] != msg_id.hex()
    assert (md1["Persistence"], md2["Persistence"]) == (0, 1)  # MQPER_NOT_PERSISTENT, MQPER_PERSISTENT
    if not qm.is_real:
        assert (md1["Priority"], md1["Expiry"], bytes.fromhex(md1["ReplyToQ"])) == (3, 6000, b"REPLY.Q")
    assert qm.drain(qm.queues["out"]) == []


def test_persistence_queue_takes_the_queues_defpsist_and_defprty(env):
    """`--persistence queue` (and priority -1) put MQPER_PERSISTENCE_AS_Q_DEF
    (MQPRI_PRIORITY_AS_Q_DEF): the queue manager copies the queue's DEFPSIST (NO unless set)
    and DEFPRTY into the message, so on a DEFPSIST(NO) queue it does not survive a restart.
    Before, the stand-in kept Persistence 2 on such a message and every restart kept it, which
    no queue manager does: a test of a restart proved nothing for them."""
    qm = env["qm"]
    other = qm.queues["backout"]  # DEFPSIST(NO), IBM's default
    qm.define(qm.queues["out"], defpsist=True, defprty=4)
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-outgoing", "out", {"persistence": "queue"})
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    out.ibm_mq.send({"n": 1}, "out")
    out.ibm_mq.send({"n": 2}, "out", queue=other)
    start(env, "ibm-mq-outgoing", "out")
    queue = OutQueue(env["client"], env["cluster"], "ibm-mq", "out")
    wait_for(lambda: queue.depth() == (0, 0), timeout=30, what="both messages put and committed")
    assert [(m["Persistence"], m["Priority"]) for _, m in qm.browse(qm.queues["out"])] == [(1, 4)]
    assert [(m["Persistence"], m["Priority"]) for _, m in qm.browse(other)] == [(0, 0)]
    qm.restart(down_ms=100)  # non-persistent messages are gone
    assert numbers(b for b, _ in qm.drain(qm.queues["out"])) == [1]
    assert qm.drain(other) == []


def test_outgoing_text_goes_as_utf8_mqstr_and_bytes_as_mqfmt_none(env):
    """Text declares its character set (CCSID 1208, UTF-8), as ibmmq does for a str body: left at
    MQCCSI_Q_MGR a client's put is labelled with the client locale's CCSID (819 under the C
    locale), and a receiver that converts (JMS, MQGMO_CONVERT) garbles every non-ASCII letter.
    Bytes go as they are, MQFMT_NONE, so that nobody converts them. Before: MQSTR, CCSID 819."""
    qm = env["qm"]
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    out.ibm_mq.send('{"city": "Łódź"}', "out")
    out.ibm_mq.send({"city": "Zürich"}, "out")
    out.ibm_mq.send(b"\x00\xffbinary", "out")
    start(env, "ibm-mq-outgoing", "out")
    seen: list = []
    wait_for(lambda: seen.extend(qm.drain(qm.queues["out"])) or len(seen) == 3, timeout=30, what="3 puts")
    got = {body: (bytes.fromhex(md["Format"]), md["CodedCharSetId"]) for body, md in seen}
    binary = got.pop(b"\x00\xffbinary")
    assert binary[0] in (b"        ", b"\x00" * 8)  # MQFMT_NONE
    assert sorted(json.loads(b.decode("utf-8"))["city"] for b in got) == ["Zürich", "Łódź"]
    assert set(got.values()) == {(b"MQSTR   ", 1208)}


def test_a_jms_senders_message_reaches_the_service_as_its_body_alone(env):
    """A JMS sender's properties travel in an MQRFH2; the queue's default PROPCTL(COMPAT) hands
    them to a get in front of the body unless it says MQGMO_NO_PROPERTIES. Before, the channel
    got "RFH ..." + the JSON and moved it to the backout queue as not JSON."""
    qm = env["qm"]
    server = fake(env)
    rfh2 = jms_rfh2(["<mcd><Msd>jms_text</Msd></mcd>", "<usr><shop>eu</shop></usr>"])
    put(qm, qm.queues["in"], [rfh2 + b'{"n": 1}'], Format=qm.mq.CMQC.MQFMT_RF_HEADER_2)
    put(qm, qm.queues["in"], [b'{"n": 2}'])
    start(env, "ibm-mq-channel", "in")
    s = wait_for(
        lambda: (s := stats(env, "ibm-mq-channel:in")).get("messages_in") == 2 and s,
        timeout=30,
        what="both messages taken",
    )
    wait_for(lambda: len(server.bodies("conn.record")) == 2 or s.get("parked"), what="both handled")
    assert server.bodies("conn.record") == [b'{"n": 1}', b'{"n": 2}']
    assert qm.drain(qm.queues["backout"]) == []


def test_a_get_matches_the_msg_id_of_the_md_it_is_given(env):
    """The GMO's default MatchOptions match the MD's MsgId and CorrelId: an MD reused from a
    get returns only that message (2033 once it is gone), which is why the channel makes a new
    MD for every get."""
    qm, m = env["qm"], env["qm"].mq
    put(qm, qm.queues["in"], [b"first", b"second"])
    conn = client(qm)
    try:
        q = m.Queue(conn, qm.queues["in"], m.CMQC.MQOO_INPUT_AS_Q_DEF)
        md = m.MD()
        assert q.get(None, md, m.GMO()) == b"first"
        with pytest.raises(m.MQMIError) as e:
            q.get(None, md, m.GMO())  # the same MD: first's MsgId, which is gone
        assert e.value.reason == m.CMQC.MQRC_NO_MSG_AVAILABLE
        assert q.get(None, m.MD(), m.GMO()) == b"second"
        q.close()
    finally:
        conn.disconnect()


def test_a_replaced_holders_outgoing_connector_never_commits(env):
    qm = env["qm"]
    proc = start(env, "ibm-mq-outgoing", "out")  # runs with epoch 1
    wait_for(lambda: stats(env, "ibm-mq-outgoing:out").get("state") == "running", what="running")
    set_epoch(env["cluster"], 2)  # another server took the lease
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    out.ibm_mq.send({"n": 1}, "out")
    assert wait_exit(proc) == EXIT_LEASE_LOST
    assert qm.drain(qm.queues["out"]) == []  # nothing put (or backed out before the commit)
    waiting, processing = OutQueue(env["client"], env["cluster"], "ibm-mq", "out").depth()
    assert waiting + processing == 1  # still in Redis for the new holder's connector


def test_a_failing_service_sends_the_message_to_the_backout_queue_at_the_threshold(env):
    server = fake(env)
    server.fail.add("conn.record")
    put(env["qm"], env["qm"].queues["in"], [b'{"n": 1}', b"not json"])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 2, "both messages on the backout queue")
    assert sorted(b for b, _ in moved) == sorted([b'{"n": 1}', b"not json"])
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 2 and s, what="stats")
    assert s["backouts"] == 3 and s["failures"] == 3  # threshold 3: three tries, then moved
    assert "backout queue" in s["last_error"]
    assert "moved to backout queue" in log_text(env["dir"])


def test_a_500_after_the_service_ran_is_a_backout_and_the_message_runs_again_with_its_mqmd(env):
    """Before: a server that ran the message and answered its call 500 (which may come after
    the service ran) made the channel invoke it again at once without its MQMD (no
    self.request.ibm_mq), and commit: two runs, the second blind. Now it is a failed delivery,
    backed out, and its next run has its MQMD (BackoutCount 1)."""
    server = fake(env)
    server.serves_messages = True
    server.unusable_answers.append((500, b'{"zato_env": {"details": "internal server error"}}'))
    put(env["qm"], env["qm"].queues["in"], [b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("messages_out") == 1, what="the message committed")
    assert server.bodies("conn.record") == [b'{"n": 1}', b'{"n": 1}']
    assert [json.loads(meta)["mqmd"]["backout_count"] for meta in server.metas] == [0, 1]
    s = stats(env, "ibm-mq-channel:in")
    assert s["backouts"] == 1 and s["failures"] == 1
    assert "it may have run there, so not run again at once" in log_text(env["dir"])


def test_an_answer_cut_after_the_service_ran_is_a_backout_not_a_wait_for_a_server(env):
    """The server runs the message, sends its answer's headers and half its body, then closes the
    connection, each time (its worker killed after the service ran). Before: 'cannot be
    reached', so the message waited for a server, uncounted, and ran again and again, never
    moved. Now each is a failed delivery, backed out: three runs with their MQMD (threshold 3),
    then the backout queue."""
    server = fake(env)
    server.serves_messages = True
    server.cut.add("conn.record")
    put(env["qm"], env["qm"].queues["in"], [b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    moved: list = []
    wait_for(
        lambda: moved.extend(env["qm"].drain(env["qm"].queues["backout"])) or moved or len(server.metas) > 3,
        30,
        what="the message moved or run a fourth time",
    )
    assert [b for b, _ in moved] == [b'{"n": 1}']
    assert [json.loads(meta)["mqmd"]["backout_count"] for meta in server.metas] == [0, 1, 2]
    assert "the answer was cut (IncompleteRead" in log_text(env["dir"])


def test_a_service_slower_than_the_channel_timeout_is_backed_out(env):
    """Before: an IBM MQ channel had no timeout of its own (refused as an unknown field): its
    service had 30 s, and a slower one was said to have "answered 504". Now the channel's
    `timeout` says how long; a slower answer is a failed delivery, backed out, and moved to the
    backout queue at the threshold."""
    fake(env).held.add("conn.record")  # answers only when the test ends
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"timeout": 1})
    put(env["qm"], env["qm"].queues["in"], [b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 1, "the slow message on the backout queue")
    assert [b for b, _ in moved] == [b'{"n": 1}']
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 1 and s, what="stats")
    assert s["backouts"] == 3 and s["failures"] == 3  # threshold 3: three tries, then moved
    said = "backed out: the service did not answer within 1 s (service 'conn.record' on 127.0.0.1:"
    assert said in log_text(env["dir"])


def test_a_body_nested_too_deeply_to_parse_goes_to_the_backout_queue_at_once(env):
    """Poison like a body that is not JSON: moved at its first delivery, and the message behind
    it runs. Before, the check raised RecursionError (not ValueError) out of the channel."""
    server = fake(env)
    deep = b"[" * 100_000 + b"]" * 100_000
    put(env["qm"], env["qm"].queues["in"], [deep, b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 1, "the deep message on the backout queue")
    assert [b for b, _ in moved] == [deep]
    wait_for(lambda: numbers(server.bodies("conn.record")) == [1], what="the message behind it")
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 1 and s, what="stats")
    assert "nested too deeply to parse" in s["last_error"]


def test_a_message_over_the_servers_body_limit_goes_to_the_backout_queue_at_once(env):
    with open(os.path.join(env["dir"], "config", "server.conf"), "a") as f:
        f.write("\n[limits]\nmax_body = 1000\n")
    server = fake(env)
    big = json.dumps({"n": 0, "pad": "x" * 2000}).encode()
    put(env["qm"], env["qm"].queues["in"], [big, b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 1, "the large message on the backout queue")
    assert [b for b, _ in moved] == [big]  # whole, and alone
    wait_for(lambda: numbers(server.bodies("conn.record")) == [1], what="the message behind it")
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 1 and s, what="stats")
    assert s.get("backouts", 0) == 0  # at its first delivery, not after three tries
    assert "max_body" in s["last_error"] and "moved to backout queue" in log_text(env["dir"])


def test_a_message_the_service_refuses_as_bad_input_goes_to_the_backout_queue_at_once(env):
    """A 400 (bad input) no retry would change: moved at its first delivery, not after the
    threshold's three backouts (before: three tries)."""
    server = fake(env)
    server.reject.add("conn.record")
    put(env["qm"], env["qm"].queues["in"], [b'{"n": 0}'])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 1, "the refused message on the backout queue")
    assert [b for b, _ in moved] == [b'{"n": 0}']
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 1 and s, what="stats")
    assert s.get("backouts", 0) == 0 and "refused it as bad input (400)" in s["last_error"]
    assert len(server.bodies("conn.record")) == 1  # one invocation


def test_a_poison_message_without_a_backout_queue_is_said_once_and_moved_once_boqname_is_set(env):
    """Before: a message to be moved with no backout queue anywhere was got again every second
    with an ERROR line each time, and the queue's BOQNAME, read when the connection was made,
    was not read again: the ALTER QLOCAL ... BOQNAME the error asked for was not taken up until
    the connector reconnected, and every message behind it waited meanwhile."""
    qm = env["qm"]
    if qm.is_real:
        pytest.skip("setting a queue's BOQNAME needs administration rights on a real queue manager")
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"backout_queue": ""})
    server = fake(env)
    put(qm, qm.queues["in"], [b"not json", b'{"n": 2}'])
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: qm.counters()["backouts"] >= 4, timeout=30, what="the poison message got 4 times")
    s = stats(env, "ibm-mq-channel:in")
    assert s["state"] == "refused" and "has no BOQNAME and the channel no backout queue" in s["last_error"]
    log = log_text(env["dir"])
    assert log.count("has no BOQNAME") == 1, log
    assert f"set one (ALTER QLOCAL({qm.queues['in']}) BOQNAME(...)" in log
    assert server.bodies("conn.record") == []  # behind it, in the queue's order
    qm.define(qm.queues["in"], boqname=qm.queues["backout"])  # what the error says to do
    moved = backed_out(env, 1, "the poison message on the queue's new BOQNAME")
    assert [body for body, _ in moved] == [b"not json"]
    wait_for(lambda: numbers(server.bodies("conn.record")) == [2], timeout=30, what="the next message")


def test_the_queue_boqname_and_bothresh_come_first(env):
    qm = env["qm"]
    qm.define(qm.queues["in"], boqname=qm.queues["backout"], bothresh=2)  # skipped on a real one
    connectors.edit(
        env["odb"],
        env["cluster"],
        "ibm-mq-channel",
        "in",
        {"backout_threshold": 0, "backout_queue": "NOT.THERE"},
    )
    fake(env).fail.add("conn.record")
    put(qm, qm.queues["in"], [b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    backed_out(env, 1, "the backout queue")
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 1 and s, what="stats")
    assert s["backouts"] == 2  # the queue's BOTHRESH, not the default 5


def test_a_connector_killed_mid_message_loses_nothing(env):
    qm = env["qm"]
    if qm.is_real:
        pytest.skip("reads uncommitted gets, which only the stand-in shows")
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(200)])
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"max_in_flight": 4})
    proc = start(env, "ibm-mq-channel", "in")
    # No server is live: each of the 4 connections holds a message under syncpoint and waits.
    wait_for(lambda: qm.depth(qm.queues["in"]) == (196, 4), timeout=30, what="4 gets held uncommitted")
    proc.send_signal(signal.SIGKILL)
    wait_exit(proc)
    wait_for(lambda: qm.depth(qm.queues["in"]) == (200, 0), what="the held message backed out")
    server = fake(env)
    proc = start(env, "ibm-mq-channel", "in")
    wait_for(lambda: len(server.bodies("conn.record")) >= 50, timeout=30, what="50 messages")
    proc.send_signal(signal.SIGKILL)  # again, now while messages flow
    wait_exit(proc)
    start(env, "ibm-mq-channel", "in")
    wait_for(
        lambda: set(numbers(server.bodies("conn.record"))) == set(range(200)), timeout=60, what="all 200"
    )
    got = numbers(server.bodies("conn.record"))
    print(f"ibmmq channel: 200 put, {len(set(got))} distinct received, {len(got) - len(set(got))} duplicates")
    # a duplicate may still be in flight (got, not committed yet) when the 200th distinct arrives
    wait_for(lambda: qm.depth(qm.queues["in"]) == (0, 0), timeout=30, what="the queue empty, nothing held")


def test_connectors_reconnect_after_broken_connections_and_a_queue_manager_restart(env):
    qm = env["qm"]
    server = fake(env)
    start(env, "ibm-mq-channel", "in")
    start(env, "ibm-mq-outgoing", "out")
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(10)])
    wait_for(lambda: len(server.bodies("conn.record")) >= 10, timeout=30, what="the first 10")
    qm.break_connections(2009)
    qm.restart(down_ms=1500)  # 2161, then connects refused with 2538 for 1.5 s
    for i in range(10):
        out.ibm_mq.send({"n": i}, "out")
    wait_for(
        lambda: (
            stats(env, "ibm-mq-channel:in").get("reconnects", 0) >= 1
            and stats(env, "ibm-mq-channel:in").get("state") == "running"
        ),
        timeout=30,
        what="the channel connected again",
    )
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(10, 20)])
    wait_for(lambda: set(numbers(server.bodies("conn.record"))) == set(range(20)), timeout=30, what="all 20")
    seen: list = []
    wait_for(
        lambda: seen.extend(qm.drain(qm.queues["out"])) or len({json.loads(b)["n"] for b, _ in seen}) == 10,
        timeout=30,
        what="10 outgoing messages after the restart",
    )
    log = log_text(env["dir"])
    assert "connection to IBM MQ broken (reason 2009 (MQRC_CONNECTION_BROKEN))" in log
    assert "reason 2538 (MQRC_HOST_NOT_AVAILABLE)" in log or "reason 2161" in log


def test_a_queue_manager_away_for_a_while_is_said_once_not_at_every_try(env):
    """Before: while the queue manager was away, each of a channel's max_in_flight connections
    wrote 'cannot connect to IBM MQ ...' at every try (every 5 s each, for as long as it was
    away: some 3,000 lines an hour for max_in_flight 4). Now it is said once, its status says
    it meanwhile, and once connected again, after how many tries."""
    qm = env["qm"]
    if qm.is_real:
        pytest.skip("restarting a real queue manager is not done by these tests")
    server = fake(env)
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"max_in_flight": 4})
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: qm.counters()["connections"] == 4, timeout=30, what="4 connections")
    qm.restart(down_ms=7000)  # connects refused with 2538 for 7 s: each connection tries 4 times
    wait_for(
        lambda: "cannot connect to" in (stats(env, "ibm-mq-channel:in").get("last_error") or ""),
        timeout=10,
        what="the failed connects in status",
    )
    wait_for(lambda: qm.counters()["connections"] == 4, timeout=30, what="4 connections again")
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(8)])
    wait_for(lambda: set(numbers(server.bodies("conn.record"))) == set(range(8)), timeout=30, what="all 8")
    log = log_text(env["dir"])
    assert log.count("cannot connect to IBM MQ") == 1, log
    assert "reason 2538 (MQRC_HOST_NOT_AVAILABLE); trying again in 0.5 s, then every 5 s at most" in log
    assert re.search(r"connected to IBM MQ .* after \d+ failed try\(s\) over \d+ s", log), log


def test_without_the_mq_client_the_connector_fails_with_one_line_and_goes_fatal(env):
    if env["qm"].is_real:
        pytest.skip("the real IBM MQ client is installed here")
    proc = start(env, "ibm-mq-channel", "in", with_driver=False)
    assert wait_exit(proc) == EXIT_CONFIG
    lines = proc.stderr.read().decode().strip().splitlines()
    assert len(lines) == 1 and "pip install 'zato-ha[ibmmq]'" in lines[0], lines
    s = stats(env, "ibm-mq-channel:in")
    assert s["state"] == "fatal" and "zato-ha[ibmmq]" in s["last_error"]


STORE_AS_IS = {  # a value written to the ODB past the checks of create and edit
    "channel": "UPDATE zato_ibm_mq_def SET channel = :v WHERE name = 'qm'",
    "queue_manager": "UPDATE zato_ibm_mq_def SET queue_manager = :v WHERE name = 'qm'",
}


def test_a_definition_stored_with_names_the_driver_cannot_take_is_fatal_with_one_line(env):
    """A row stored before the names were checked (or by other means): a channel name over 20
    (the driver cut it: refused with 2540 for ever, naming the whole name) or a queue manager
    name that is not ASCII (the driver raised UnicodeEncodeError: a crash at every start). Now
    the connector says which field and what to do, and goes FATAL until the definition is
    edited."""
    if env["qm"].is_real:
        pytest.skip("the same for a real queue manager: nothing is connected to")
    for field, value, said in (
        (
            "channel",
            "DEV.APP.SVRCONN.CLIENT1",
            "channel: 'DEV.APP.SVRCONN.CLIENT1' is not an IBM MQ channel name",
        ),
        (
            "queue_manager",
            "KOLEJKA.ŁÓDŹ",
            "queue_manager: 'KOLEJKA.ŁÓDŹ' is not an IBM MQ queue manager name",
        ),
    ):
        with env["odb"].engine.begin() as c:
            c.execute(text(STORE_AS_IS[field]), {"v": value})
        for kind, name in (("ibm-mq-channel", "in"), ("ibm-mq-outgoing", "out")):
            proc = start(env, kind, name)
            assert wait_exit(proc) == EXIT_CONFIG
            s = stats(env, f"{kind}:{name}")
            assert s["state"] == "fatal" and said in s["last_error"], s
            assert "zato conn edit ibm-mq-def DIR --name qm" in s["last_error"]
        with env["odb"].engine.begin() as c:  # as it was, for the next field
            c.execute(text("UPDATE zato_ibm_mq_def SET channel = :c, queue_manager = :q WHERE name = 'qm'"),
                      {"c": env["qm"].channel, "q": env["qm"].qmgr})  # fmt: skip
    assert env["qm"].counters()["connects"] == 0  # nothing was tried


def test_a_put_that_completes_with_a_warning_counts_as_sent_and_is_not_parked(env):
    """MQPUT with MQCC_WARNING (2104 MQRC_UNKNOWN_REPORT_OPTION, 2049 MQRC_PRIORITY_EXCEEDS_MAXIMUM)
    puts the message, yet the driver raises MQMIError (comp 1). Before, the connector parked it
    in Redis too, so "Re-send parked" sent it a second time; now it counts as sent, the reason
    said once in server.log."""
    env["qm"].warn_puts(env["qm"].queues["out"], 2104)
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    for i in range(5):
        out.ibm_mq.send({"n": i}, "out")
    start(env, "ibm-mq-outgoing", "out")
    seen: list = []
    wait_for(
        lambda: seen.extend(env["qm"].drain(env["qm"].queues["out"])) or len(seen) == 5,
        timeout=30,
        what="5 messages on the out queue",
    )
    wait_for(lambda: stats(env, "ibm-mq-outgoing:out").get("messages_out") == 5, what="5 sent in stats")
    assert sorted(numbers(b for b, _ in seen)) == list(range(5))
    assert OutQueue(env["client"], env["cluster"], "ibm-mq", "out").depth() == (0, 0)
    assert env["client"].llen(Keys(env["cluster"]).out_parked("ibm-mq", "out")) == 0
    assert not stats(env, "ibm-mq-outgoing:out").get("parked")
    log = log_text(env["dir"])
    assert log.count("took a message with a warning, reason 2104 (MQRC_UNKNOWN_REPORT_OPTION)") == 1, log


def test_a_queued_message_with_fields_mq_cannot_take_is_parked_not_a_crash_loop(env):
    """The outgoing queue is plain JSON in Redis (docs/trust.md): a Redis writer, or a message
    queued by another version, may hold a field send() would have refused. Before, decode took
    them as they came and the put raised UnicodeEncodeError, KeyError or TypeError out of the
    connector: it died, restarted, took the same message from its processing list and died
    again, for good, nothing after it put. Now each is parked with its reason and the rest go."""
    queue = OutQueue(env["client"], env["cluster"], "ibm-mq", "out")
    bad = [
        {"id": "q", "text": "x", "queue": "caf\u00e9"},
        {"id": "per", "text": "x", "persistence": {"a": 1}},
        {"id": "pri", "text": "x", "priority": "high"},
        {"id": "exp", "text": "x", "expiry": "soon"},
        {"id": "rep", "text": "x", "reply_to": ["R"]},
        {"id": "cor", "text": "x", "correlation_id": "zz"},
    ]
    # one a Redis writer queued (not signed with the cluster's key): parked too, never put
    queue.push(json.dumps({"id": "forged", "cid": "CIDFORGED", "text": json.dumps({"n": -5})}))
    for msg in bad:  # signed: as another version's, or another producer's with the key
        queue.push(signed(env["cluster"], json.dumps(msg), "ibm-mq"))
    queue.push(signed(env["cluster"], json.dumps({"id": "good", "text": json.dumps({"n": 1})}), "ibm-mq"))
    proc = start(env, "ibm-mq-outgoing", "out")
    seen: list = []
    wait_for(
        lambda: seen.extend(env["qm"].drain(env["qm"].queues["out"])) or seen or proc.poll() is not None,
        timeout=30,
        what="the good message on the out queue, or the connector's exit",
    )
    assert proc.poll() is None, f"the connector exited: {proc.stderr.read().decode()[-2000:]}"
    assert numbers(b for b, _ in seen) == [1]
    parked = wait_for(
        lambda: (
            (n := env["client"].llen(Keys(env["cluster"]).out_parked("ibm-mq", "out"))) == len(bad) + 1 and n
        ),
        what="every bad message parked",
    )
    assert parked == len(bad) + 1
    s = wait_for(
        lambda: (
            (s := stats(env, "ibm-mq-outgoing:out")).get("parked") == len(bad) + 1
            and s.get("messages_out")
            and s
        ),
        what="stats",
    )
    assert "malformed outgoing message" in s["last_error"]
    # IN counts every message taken, parked ones too (docs/metrics.md): before, those parked
    # before their put were left out, IN 1 next to PARKED 6
    assert (s["messages_in"], s["messages_out"], s["parked"]) == (len(bad) + 2, 1, len(bad) + 1)
    said = [
        line for line in log_text(env["dir"]).splitlines() if "not signed with this cluster's key" in line
    ]
    assert len(said) == 1 and "ibm-mq-outgoing 'out': message forged (CID CIDFORGED)" in said[0], said
    assert proc.poll() is None


def test_a_batch_over_the_queue_managers_maxumsgs_is_put_in_several_units_of_work(env):
    """A queue manager whose MAXUMSGS (uncommitted messages in one unit of work) is below the
    outgoing connector's batch of 100 answers a put past it with 2024
    MQRC_SYNCPOINT_LIMIT_REACHED. Before, that message and every one after it in the batch
    were parked in Redis (to be re-sent by hand); now the puts made are committed and the rest
    go in units of work of their own, each message once, in order."""
    qm = env["qm"]
    qm.alter_qmgr(maxumsgs=10)
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    for i in range(35):
        out.ibm_mq.send({"n": i}, "out")
    start(env, "ibm-mq-outgoing", "out")
    queue = OutQueue(env["client"], env["cluster"], "ibm-mq", "out")
    wait_for(lambda: queue.depth() == (0, 0), timeout=30, what="nothing left waiting or in processing")
    assert numbers(b for b, _ in qm.drain(qm.queues["out"])) == list(range(35))
    assert env["client"].llen(Keys(env["cluster"]).out_parked("ibm-mq", "out")) == 0
    s = wait_for(
        lambda: (s := stats(env, "ibm-mq-outgoing:out")).get("messages_out") == 35 and s, what="stats"
    )
    assert (s["messages_in"], s["parked"]) == (35, 0)
    log = log_text(env["dir"])
    assert (
        log.count("(MAXUMSGS) was reached after 10 put(s) (reason 2024 (MQRC_SYNCPOINT_LIMIT_REACHED))") == 1
    )


@pytest.mark.parametrize("full", [True, False], ids=["q-full", "put-inhibited"])
def test_a_put_the_queue_manager_says_to_try_later_waits_in_redis_and_is_not_parked(env, full):
    """2053 MQRC_Q_FULL (the queue at its MAXDEPTH) and 2051 MQRC_PUT_INHIBITED (PUT(DISABLED))
    say "retry the operation later" (IBM's pages; a channel's MCA retries them too). Before, the
    outgoing connector parked every message the queue did not take meanwhile, so once the
    queue's consumer had caught up they had to be re-sent by hand; now they wait in Redis, in
    order, and go once the queue takes them again."""
    target = env["qm"].queues["out"]
    if full:
        env["qm"].define(target, maxdepth=3)
    else:
        env["qm"].define(target, put=False)
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    for i in range(6):
        out.ibm_mq.send({"n": i}, "out")
    start(env, "ibm-mq-outgoing", "out")
    s = wait_for(
        lambda: (s := stats(env, "ibm-mq-outgoing:out")).get("last_error") and s, what="the refusal in stats"
    )
    reason = "reason 2053 (MQRC_Q_FULL)" if full else "reason 2051 (MQRC_PUT_INHIBITED)"
    assert reason[:11] in s["last_error"], s
    seen: list = []
    if full:
        wait_for(lambda: env["qm"].depth(target)[0] == 3, what="the queue full")
    env["qm"].define(target)  # the consumer caught up, or PUT(ENABLED)
    queue = OutQueue(env["client"], env["cluster"], "ibm-mq", "out")
    wait_for(
        lambda: seen.extend(env["qm"].drain(target)) or (len(seen) >= 6 and queue.depth() == (0, 0)),
        timeout=30,
        what="every message on the queue and none left in Redis",
    )
    seen.extend(env["qm"].drain(target))
    assert numbers(b for b, _ in seen) == list(range(6))  # each once, in the order sent
    assert env["client"].llen(Keys(env["cluster"]).out_parked("ibm-mq", "out")) == 0
    s = wait_for(
        lambda: (s := stats(env, "ibm-mq-outgoing:out")).get("messages_out") == 6 and s, what="OUT 6"
    )
    assert (s["messages_in"], s["parked"]) == (6, 0), s
    assert f"queue {target!r} refused a message for now ({reason})" in log_text(env["dir"])


def test_a_get_inhibited_queue_keeps_the_connection_and_says_what_to_do(env):
    """GET(DISABLED) (an operator pausing a queue's consumers): every MQGET fails with 2016
    MQRC_GET_INHIBITED, a waiting one too, and IBM says to retry later. Before, the channel
    logged "IBM MQ call failed (reason 2016 (see IBM MQ reason codes)); reconnecting" and made a
    new connection twice a second for as long as it lasted; now it keeps its connection, says
    once what ends it, gets again less and less often (every 5 s at most), and goes on once
    gets are allowed again."""
    qm, server = env["qm"], fake(env)
    qm.define(qm.queues["in"], get=False)
    put(qm, qm.queues["in"], [json.dumps({"n": 1}).encode()])
    before = qm.counters()["connects"]  # the test's own put's
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: qm.counters()["gets_inhibited"] >= 3, timeout=30, what="3 gets refused with 2016")
    assert qm.counters()["connects"] - before == 1  # before: a new connection after each refused get
    s = stats(env, "ibm-mq-channel:in")
    assert "reason 2016 (MQRC_GET_INHIBITED)" in s["last_error"], s
    log = log_text(env["dir"])
    assert f"ALTER QLOCAL({qm.queues['in']}) GET(ENABLED)" in log, log
    assert "IBM MQ call failed" not in log, log
    qm.define(qm.queues["in"])  # GET(ENABLED)
    wait_for(lambda: len(server.bodies("conn.record")) == 1, timeout=30, what="the message, once gets work")
    assert numbers(server.bodies("conn.record")) == [1]
    wait_for(lambda: "gets work again" in log_text(env["dir"]), what="its recovery said")
    assert qm.counters()["connects"] - before == 1


def test_an_output_handle_the_queue_manager_invalidated_is_opened_again_not_parked_for(env):
    """ALTER ... FORCE of a queue the outgoing connector has open (an alias retargeted, REFRESH
    CLUSTER) makes the queue manager mark its handle no longer valid: every put on it fails
    with 2041 MQRC_OBJECT_CHANGED, and IBM says to close it, open it again and put again.
    Before, the connector kept the handle for as long as its connection lived and parked every
    message for that queue; now it opens the queue again and the message goes."""
    qm = env["qm"]
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    queue = OutQueue(env["client"], env["cluster"], "ibm-mq", "out")
    seen: list = []
    out.ibm_mq.send({"n": 0}, "out")
    start(env, "ibm-mq-outgoing", "out")
    wait_for(lambda: seen.extend(qm.drain(qm.queues["out"])) or seen, timeout=30, what="the first message")
    qm.alter_force(qm.queues["out"])
    for i in range(1, 4):
        out.ibm_mq.send({"n": i}, "out")
    parked = Keys(env["cluster"]).out_parked("ibm-mq", "out")
    wait_for(
        lambda: seen.extend(qm.drain(qm.queues["out"])) or queue.depth() == (0, 0),
        timeout=30,
        what="nothing left waiting or in processing",
    )
    seen.extend(qm.drain(qm.queues["out"]))
    assert env["client"].llen(parked) == 0, env["client"].lrange(parked, 0, -1)
    assert numbers(b for b, _ in seen) == [0, 1, 2, 3]
