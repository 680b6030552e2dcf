"""IBM MQ connectors against what a queue manager refuses or flags (tests/ibmmq_standin models each
as IBM's MQI reference describes it; the "real" variants need a queue manager and admin rights):
a user without +inq, max_in_flight on a DEFSOPT(EXCL) or NOSHARE queue, gets and commits that
complete with a warning, and the put context of a message moved to the backout queue."""

from __future__ import annotations

import json
import re
import time

from tests.conn_support import TCPProxy, log_text, make_server_dir
from tests.ibmmq_support import put
from tests.integration.test_ibmmq import backed_out, fake, numbers, start, stats
from tests.integration.test_ibmmq import env as env  # noqa: F401 - the same fixture, both kinds
from tests.support import free_port, wait_for
from zato.config.settings import load_server_settings
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue
from zato.odb import connectors
from zato.service.outgoing import make_outgoing


def _hex(text: str) -> str:
    return text.encode().hex()


def test_a_user_without_inquire_authority_still_gets_messages(env):
    """Before: the channel opened its queue with MQOO_INQUIRE, a user without +inq got 2035 for
    that open, and the channel never ran (reconnecting for ever). Now it opens the queue again
    without it, says once what that loses (the queue's BOQNAME/BOTHRESH), and uses the channel's
    backout queue and threshold."""
    qm = env["qm"]
    qm.deny(qm.queues["in"], "inq")
    server = fake(env)
    server.fail.add("conn.record")
    put(qm, qm.queues["in"], [b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 1, "the message on the channel's backout queue")  # threshold 3, channel's
    assert [b for b, _ in moved] == [b'{"n": 1}']
    server.fail.discard("conn.record")
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(2, 5)])
    wait_for(lambda: sorted(numbers(server.bodies("conn.record")))[-3:] == [2, 3, 4], what="3 messages")
    log = log_text(env["dir"])
    assert log.count("not authorized to inquire (reason 2035 (MQRC_NOT_AUTHORIZED)") == 1, log
    assert "IBM MQ call failed" not in log


def test_max_in_flight_on_a_queue_exclusive_by_default_opens_shared_handles(env):
    """Before: max_in_flight 4 opened MQOO_INPUT_AS_Q_DEF, exclusive on a DEFSOPT(EXCL) queue:
    one handle, the other three refused with 2042 for ever. Now all four open MQOO_INPUT_SHARED."""
    qm = env["qm"]
    qm.define(qm.queues["in"], defsopt="excl")
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"max_in_flight": 4})
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: qm.input_handles(qm.queues["in"]) == {"shared": 4, "exclusive": 0}, what="4 handles")
    server = fake(env)
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(20)])
    wait_for(lambda: set(numbers(server.bodies("conn.record"))) == set(range(20)), what="all 20")
    assert "2042" not in log_text(env["dir"])


def test_max_in_flight_on_a_noshare_queue_says_what_to_change(env):
    """A NOSHARE queue makes every input handle exclusive: the second handle of max_in_flight 2
    is refused with 2042. Before: 'IBM MQ call failed (reason 2042 (see IBM MQ reason codes));
    reconnecting' twice a second; now one line naming the queue attribute or the setting to
    change, the open tried again every 2 s, and the messages flow through the first handle."""
    qm = env["qm"]
    qm.define(qm.queues["in"], share=False)
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"max_in_flight": 2})
    server = fake(env)
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(10)])
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: set(numbers(server.bodies("conn.record"))) == set(range(10)), what="all 10")
    hint = f"ALTER QLOCAL({qm.queues['in']}) SHARE, or set the channel's max_in_flight to 1"
    wait_for(lambda: hint in log_text(env["dir"]), what="the hint in server.log")
    assert log_text(env["dir"]).count("refused an input handle (reason 2042 (MQRC_OBJECT_IN_USE))") == 1
    wait_for(lambda: hint in (stats(env, "ibm-mq-channel:in").get("last_error") or ""), what="the hint")
    assert qm.input_handles(qm.queues["in"]) == {"shared": 0, "exclusive": 1}


def test_a_whole_message_got_with_a_warning_goes_to_the_backout_queue(env):
    """MQGET completing with MQCC_WARNING (here 2119 MQRC_NOT_CONVERTED: the message comes as it
    was put) made the driver raise, and the channel reconnected for ever: the message was backed
    out again and again and never reached the service or the backout queue. Now it is moved to
    the backout queue at once, whole, with the reason."""
    qm = env["qm"]
    server = fake(env)
    qm.warn_gets(qm.queues["in"], 2119)
    put(qm, qm.queues["in"], [b'{"n": 1}'])
    start(env, "ibm-mq-channel", "in")
    moved = backed_out(env, 1, "the message on the backout queue")
    assert [b for b, _ in moved] == [b'{"n": 1}']
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("parked") == 1 and s, what="stats")
    assert "MQGET completed with a warning, reason 2119 (MQRC_NOT_CONVERTED)" in s["last_error"]
    assert server.bodies("conn.record") == []
    assert not s.get("reconnects")


def test_a_truncated_message_is_never_passed_on_or_committed(env):
    """2079 MQRC_TRUNCATED_MSG_ACCEPTED: the data got is cut. It is backed out (the queue keeps
    it whole), counted and said, never passed to the service; once gets are whole again the
    service gets it whole."""
    qm = env["qm"]
    server = fake(env)
    # a high threshold: the backouts below must not move it once gets are whole again
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"backout_threshold": 1000})
    qm.warn_gets(qm.queues["in"], 2079, truncate=4)
    body = json.dumps({"n": 7, "pad": "x" * 100}).encode()
    put(qm, qm.queues["in"], [body])
    start(env, "ibm-mq-channel", "in")
    s = wait_for(
        lambda: (s := stats(env, "ibm-mq-channel:in")).get("backouts", 0) >= 1 and s, what="a backout"
    )
    assert "reason 2079 (MQRC_TRUNCATED_MSG_ACCEPTED)" in s["last_error"] and "not whole" in s["last_error"]
    assert server.bodies("conn.record") == []
    qm.warn_gets(qm.queues["in"], 0)
    wait_for(lambda: server.bodies("conn.record") == [body], what="the whole message at the service")
    assert qm.drain(qm.queues["backout"]) == []


def test_a_channel_commit_with_outcome_pending_counts_as_committed(env):
    """MQCMIT completing with 2124 MQRC_OUTCOME_PENDING (the commit completes later) made the
    channel log 'IBM MQ call failed' and reconnect after every message, not counting it. Now it
    counts as committed, said once."""
    qm = env["qm"]
    server = fake(env)
    put(qm, qm.queues["in"], [json.dumps({"n": i}).encode() for i in range(5)])
    qm.warn_commits(2124)
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("messages_out") == 5, what="5 commits counted")
    assert sorted(numbers(server.bodies("conn.record"))) == list(range(5))
    log = log_text(env["dir"])
    assert log.count("MQCMIT completed with a warning, reason 2124 (MQRC_OUTCOME_PENDING)") == 1, log
    assert "IBM MQ call failed" not in log and not stats(env, "ibm-mq-channel:in").get("reconnects")


def test_an_outgoing_commit_with_outcome_pending_puts_each_message_once(env):
    """The outgoing connector took 2124 on MQCMIT for a failure: it reconnected and put the
    committed batch again (every message twice, and again on each commit). Now the batch counts
    as sent and leaves Redis."""
    qm = env["qm"]
    qm.warn_commits(2124)
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    for i in range(5):
        out.ibm_mq.send({"n": i}, "out")
    start(env, "ibm-mq-outgoing", "out")
    wait_for(lambda: stats(env, "ibm-mq-outgoing:out").get("messages_out") == 5, what="5 sent in stats")
    assert OutQueue(env["client"], env["cluster"], "ibm-mq", "out").depth() == (0, 0)
    assert sorted(numbers(b for b, _ in qm.drain(qm.queues["out"]))) == list(range(5))  # once each
    assert env["client"].llen(Keys(env["cluster"]).out_parked("ibm-mq", "out")) == 0


def test_an_outgoing_commit_backed_out_with_a_warning_puts_the_batch_again(env):
    """2003 MQRC_BACKED_OUT as a warning: the unit of work was backed out, so the batch is put
    again (it must not count as sent: its messages would be gone)."""
    qm = env["qm"]
    qm.warn_commits(2003)
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    for i in range(3):
        out.ibm_mq.send({"n": i}, "out")
    start(env, "ibm-mq-outgoing", "out")
    wait_for(lambda: "reason 2003 (MQRC_BACKED_OUT)" in log_text(env["dir"]), what="the backed-out commit")
    assert qm.drain(qm.queues["out"]) == []
    qm.warn_commits(0)
    seen: list = []
    wait_for(lambda: seen.extend(qm.drain(qm.queues["out"])) or len(seen) >= 3, what="3 messages")
    assert sorted(set(numbers(b for b, _ in seen))) == [0, 1, 2]


def test_an_mq_error_that_keeps_coming_is_tried_less_and_less_often_and_said_once(env):
    """Before: an MQ error a session got again at once after each reconnect (here every commit
    backed out, 2003) was logged at ERROR, 'IBM MQ call failed ...; reconnecting', with a new
    connection every 0.5 s for as long as it lasted. Now the waits grow as documented (0.5 s,
    +1 s, 5 s at most), it is said once in full (then at most once a minute with a count), and
    once sessions work again for a while, said so."""
    qm = env["qm"]
    qm.warn_commits(2003)
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    out.ibm_mq.send({"n": 1}, "out")
    start(env, "ibm-mq-outgoing", "out")
    wait_for(lambda: qm.counters()["connects"] >= 4, what="3 failed sessions, a 4th connection")
    log = log_text(env["dir"])
    assert log.count("IBM MQ call failed (reason 2003 (MQRC_BACKED_OUT))") == 1, log
    assert "reconnecting in 0.5 s, then after a growing wait (every 5 s at most)" in log
    last = stats(env, "ibm-mq-outgoing:out")["last_error"]
    assert re.search(r"reason 2003 .*; next try in (2\.5|3\.5|4\.5|5) s$", last), last
    qm.warn_commits(0)
    wait_for(lambda: numbers(b for b, _ in qm.drain(qm.queues["out"])) == [1], what="the message put")
    wait_for(lambda: "IBM MQ calls work again, after" in log_text(env["dir"]), what="'work again' said")
    assert log_text(env["dir"]).count("IBM MQ call failed") == 1


def test_a_message_moved_to_the_backout_queue_keeps_its_senders_context(env, monkeypatch):
    """Before: the backout put used the default context, so the moved message carried the
    connector's put date and time, user and application name instead of its sender's. Now the
    input handle saves context (MQOO_SAVE_ALL_CONTEXT) and the put passes it
    (MQOO_PASS_ALL_CONTEXT, MQPMO_PASS_ALL_CONTEXT with Context = the input handle)."""
    qm = env["qm"]
    with monkeypatch.context() as mp:
        mp.setenv("MQAPPLNAME", "ZT.SENDER.APP")  # the sender's PutApplName
        put(qm, qm.queues["in"], [b'{"n": 1}'])
    [(_, sent)] = qm.browse(qm.queues["in"])
    assert sent["PutApplName"] == _hex("ZT.SENDER.APP")
    fake(env).fail.add("conn.record")
    start(env, "ibm-mq-channel", "in")
    [(body, md)] = backed_out(env, 1, "the message on the backout queue")
    assert body == b'{"n": 1}'
    for field in ("PutApplName", "PutApplType", "PutDate", "PutTime", "UserIdentifier", "AccountingToken"):
        assert md[field] == sent[field], field
    assert md["MsgId"] == sent["MsgId"] and md["BackoutCount"] == 0


def test_without_passall_on_the_backout_queue_the_message_is_moved_with_default_context(env, monkeypatch):
    qm = env["qm"]
    qm.deny(qm.queues["backout"], "passall")
    with monkeypatch.context() as mp:
        mp.setenv("MQAPPLNAME", "ZT.SENDER.APP")
        put(qm, qm.queues["in"], [b"not json"])
    start(env, "ibm-mq-channel", "in")
    [(body, md)] = backed_out(env, 1, "the poison message on the backout queue")
    assert body == b"not json" and md["PutApplName"] != _hex("ZT.SENDER.APP")
    log = log_text(env["dir"])
    assert log.count("not authorized to pass context (reason 2035 (MQRC_NOT_AUTHORIZED)") == 1, log


def test_a_user_without_get_authority_is_told_so_not_that_inquire_is_missing(env):
    """The fallback without MQOO_INQUIRE must not blame +inq when the open is refused for +get."""
    qm = env["qm"]
    qm.deny(qm.queues["in"], "get")
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: "reason 2035 (MQRC_NOT_AUTHORIZED)" in log_text(env["dir"]), what="the refusal")
    assert "not authorized to inquire" not in log_text(env["dir"])


def _refusal_lines(env) -> list[str]:
    return [line for line in log_text(env["dir"]).splitlines() if "refused" in line or "reason 20" in line]


def test_a_user_without_get_authority_backs_off_says_what_to_do_and_takes_up_a_grant(env):
    """Before: a channel whose user lacked +get on its queue logged "IBM MQ call failed (reason
    2035 (MQRC_NOT_AUTHORIZED)); reconnecting" and connected again every 0.5 s, for ever. Now the
    open is tried again less and less often on the one connection, said once with what to do,
    shown in status, and the grant is taken up without a restart."""
    qm = env["qm"]
    qm.deny(qm.queues["in"], "get")
    server = fake(env)
    put(qm, qm.queues["in"], [b'{"n": 1}'])
    connects = qm.counters()["connects"]
    start(env, "ibm-mq-channel", "in")
    # each try opens twice (with MQOO_INQUIRE, then without): 4 tries refused
    wait_for(lambda: qm.counters()["opens_refused"] >= 8, what="4 tries refused")
    lines = _refusal_lines(env)
    assert len(lines) == 1, lines
    assert f"grant +get on {qm.queues['in']} to app" in lines[0], lines
    assert qm.counters()["connects"] - connects == 1  # one connection, no reconnect loop
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("state") == "refused", what="state refused")
    assert "grant +get" in stats(env, "ibm-mq-channel:in")["last_error"]
    qm.deny(qm.queues["in"])  # setmqaut ... +get
    wait_for(lambda: numbers(server.bodies("conn.record")) == [1], timeout=30, what="it, once granted")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("state") == "running", what="state running")
    assert "opened for input after" in log_text(env["dir"])
    assert "not authorized to inquire" not in log_text(env["dir"])


def test_a_channel_on_a_queue_not_defined_backs_off_and_takes_it_up_once_defined(env):
    """Before: 2085 MQRC_UNKNOWN_OBJECT_NAME for the channel's queue was a reconnect every 0.5 s
    with a line each time. Now: said once with what to do, tried less and less often."""
    qm = env["qm"]
    missing = qm.queues["in"] + ".NEW"
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"queue": missing})
    server = fake(env)
    start(env, "ibm-mq-channel", "in")
    # the first try waits for the connector's start (slow on a loaded machine); the next three
    # for the back-off alone (0.5 + 1 + 2 s)
    wait_for(lambda: qm.counters()["opens_refused"] >= 1, 60, what="the first try refused")
    wait_for(lambda: qm.counters()["opens_refused"] >= 4, what="4 tries refused")
    lines = _refusal_lines(env)
    assert len(lines) == 1, lines
    assert f"define it (DEFINE QLOCAL({missing}))" in lines[0], lines
    qm.define(missing)
    put(qm, missing, [b'{"n": 7}'])
    wait_for(lambda: numbers(server.bodies("conn.record")) == [7], timeout=30, what="it, once defined")


def test_a_backout_queue_without_put_authority_backs_off_and_takes_the_message_once_granted(env):
    """Before: a message for the backout queue, whose user lacked +put on it, was backed out and
    tried again every second with an ERROR line each time, for ever. Now: said once with what
    to do, tried less and less often, and moved once the grant is made."""
    qm = env["qm"]
    qm.deny(qm.queues["backout"], "put", "passall")
    put(qm, qm.queues["in"], [b"not json"])
    start(env, "ibm-mq-channel", "in")
    # each try opens twice (with MQOO_PASS_ALL_CONTEXT, then without): 4 tries refused, the
    # first once the connector has started
    wait_for(lambda: qm.counters()["opens_refused"] >= 2, 60, what="the first try refused")
    wait_for(lambda: qm.counters()["opens_refused"] >= 8, what="4 tries refused")
    lines = _refusal_lines(env)
    assert len(lines) == 1, lines
    assert f"grant +put on {qm.queues['backout']} to app" in lines[0], lines
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("state") == "refused", what="state refused")
    qm.deny(qm.queues["backout"])
    [(body, _)] = backed_out(env, 1, "the poison message, once granted")
    assert body == b"not json"
    assert "takes messages again, after" in log_text(env["dir"])


def test_a_message_that_could_not_be_moved_and_is_gone_ends_the_refused_state(env):
    """A poison message its backout queue refused (no +put), then removed from the queue by
    hand: once the channel's one connection commits the next message, its status is `running`
    again and the log says so. Before, it read `refused` (a problem line in zato cluster
    status) until the connector happened to reconnect."""
    qm = env["qm"]
    server = fake(env)
    qm.deny(qm.queues["backout"], "put", "passall")
    put(qm, qm.queues["in"], [b"not json"])
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("state") == "refused", 60, what="state refused")
    wait_for(lambda: qm.drain(qm.queues["in"]), what="the poison message removed by hand")  # between tries
    put(qm, qm.queues["in"], [b'{"n": 1}'])
    wait_for(lambda: numbers(server.bodies("conn.record")) == [1], timeout=60, what="the next message")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("state") == "running", what="state running")
    said = "the message that could not be moved is no longer first on the queue, after"
    assert said in log_text(env["dir"])


def test_an_outgoing_connection_refused_at_connect_backs_off_and_sends_once_granted(env):
    """Before: 2035 for MQCONNX (a user without +connect, a wrong password) was tried again every
    5 s at most, a warning line each time, for ever. Now: said once with what to check, tried
    less and less often (at most every 30 s), state refused; the message goes once granted."""
    qm = env["qm"]
    qm.deny_connect()
    out = make_outgoing(load_server_settings(env["dir"]), env["client"])
    out.ibm_mq.send({"n": 5}, "out")
    start(env, "ibm-mq-outgoing", "out")
    wait_for(lambda: qm.counters()["connects_refused"] >= 4, what="4 connects refused")
    lines = _refusal_lines(env)
    assert len(lines) == 1, lines
    assert "grant +connect to app (setmqaut -m QM1 -t qmgr -p app +connect +inq)" in lines[0], lines
    wait_for(lambda: stats(env, "ibm-mq-outgoing:out").get("state") == "refused", what="state refused")
    qm.deny_connect(False)
    seen: list = []
    wait_for(lambda: seen.extend(qm.drain(qm.queues["out"])) or seen, timeout=40, what="the message, granted")
    assert numbers(b for b, _ in seen) == [5]
    assert re.search(r"connected to IBM MQ .* after \d refusal\(s\) over", log_text(env["dir"]))


def test_a_channel_with_convert_gets_ebcdic_text_as_utf8(env):
    """`convert`: each get says MQGMO_CONVERT with MQMD CodedCharSetId 1208, so JSON put as
    EBCDIC text (MQFMT_STRING, CCSID 500) reaches the service as UTF-8 JSON. Before there was no
    such setting (refused as an unknown field), and the EBCDIC bytes were poison to a JSON
    channel."""
    qm = env["qm"]
    connectors.edit(env["odb"], env["cluster"], "ibm-mq-channel", "in", {"convert": True})
    server = fake(env)
    text = json.dumps({"n": 1, "greeting": "Grüße"}, ensure_ascii=False)
    put(qm, qm.queues["in"], [text.encode("cp500")], Format=qm.mq.CMQC.MQFMT_STRING, CodedCharSetId=500)
    start(env, "ibm-mq-channel", "in")
    wait_for(lambda: server.bodies("conn.record") == [text.encode()], what="the message as UTF-8")
    assert qm.drain(qm.queues["backout"]) == []


def test_a_channel_with_convert_passes_binary_and_unconvertible_text_on_as_put(env):
    """A binary message (MQFMT_NONE) comes unconverted with 2110 MQRC_FORMAT_ERROR, text in a
    CCSID the queue manager cannot convert with 2111 MQRC_SOURCE_CCSID_ERROR: each the whole
    message as it was put, which is passed on once and committed, said once for the text.
    Before, the text went to the backout queue."""
    qm = env["qm"]
    connectors.edit(
        env["odb"], env["cluster"], "ibm-mq-channel", "in", {"convert": True, "data_format": "text"}
    )
    server = fake(env)
    put(qm, qm.queues["in"], [b"\x00\x01\xfe\xff"], Format=qm.mq.CMQC.MQFMT_NONE, CodedCharSetId=819)
    put(qm, qm.queues["in"], [b"text?"], Format=qm.mq.CMQC.MQFMT_STRING, CodedCharSetId=65000)
    start(env, "ibm-mq-channel", "in")
    wanted = [b"\x00\x01\xfe\xff", b"text?"]
    wait_for(lambda: server.bodies("conn.record") == wanted, what="both messages as put")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("messages_out") == 2, what="2 commits")
    log = log_text(env["dir"])
    assert log.count("came unconverted (reason 2111") == 1, log
    assert qm.drain(qm.queues["backout"]) == []


def test_a_large_message_with_convert_reaches_the_service_once(env):
    """Before: ibmmq gets into a 4 KB buffer first and, for a longer message, again with its
    length (doubled with MQGMO_CONVERT); a warning on that second get raises without the data,
    so a 100 KB binary message (2110), text in an unknown CCSID (2111) or text that more than
    doubles in conversion (2120) was backed out and got again for ever, never reaching the
    service. Now the channel sizes MQGET's buffer itself from the 2080's data length (3 times
    it with `convert`): each comes once, converted where it can be, and is committed."""
    qm = env["qm"]
    connectors.edit(
        env["odb"], env["cluster"], "ibm-mq-channel", "in", {"convert": True, "data_format": "text"}
    )
    server = fake(env)
    size = 100_000
    binary = (bytes(range(256)) * (size // 256 + 1))[:size]
    euros = "€" * size  # one byte each in CCSID 1252, three in UTF-8
    ebcdic = ("Grüße " * (size // 6 + 1))[:size]
    unknown = b"unknown?" * (size // 8)
    mqstr = qm.mq.CMQC.MQFMT_STRING
    put(qm, qm.queues["in"], [binary], Format=qm.mq.CMQC.MQFMT_NONE, CodedCharSetId=819)
    put(qm, qm.queues["in"], [euros.encode("cp1252")], Format=mqstr, CodedCharSetId=1252)
    put(qm, qm.queues["in"], [ebcdic.encode("cp500")], Format=mqstr, CodedCharSetId=500)
    put(qm, qm.queues["in"], [unknown], Format=mqstr, CodedCharSetId=65000)
    start(env, "ibm-mq-channel", "in")
    wanted = [binary, euros.encode(), ebcdic.encode(), unknown]
    wait_for(lambda: len(server.bodies("conn.record")) >= 4, timeout=30, what="the 4 large messages")
    wait_for(lambda: stats(env, "ibm-mq-channel:in").get("messages_out") == 4, what="4 commits")
    assert server.bodies("conn.record") == wanted  # each once, in order, whole
    s = stats(env, "ibm-mq-channel:in")
    assert not s.get("backouts") and not s.get("parked"), s
    assert qm.drain(qm.queues["backout"]) == []
    if not qm.is_real:
        assert qm.depth(qm.queues["in"]) == (0, 0)
        assert qm.counters()["truncated_gets"] == 1  # the buffer grew once, for the first


def test_data_cut_short_under_any_warning_is_never_passed_on(env):
    """ibmmq attaches the message's whole length (original_length) to a get warning: data
    shorter than that (a buffer too small for the message, here with 2110 on a binary message
    of a `convert` channel) is backed out, never passed on as the whole message."""
    qm = env["qm"]
    connectors.edit(
        env["odb"],
        env["cluster"],
        "ibm-mq-channel",
        "in",
        {"convert": True, "data_format": "text", "backout_threshold": 1000},
    )
    server = fake(env)
    qm.warn_gets(qm.queues["in"], 2110, truncate=4)
    body = bytes(range(20))
    put(qm, qm.queues["in"], [body], Format=qm.mq.CMQC.MQFMT_NONE, CodedCharSetId=819)
    start(env, "ibm-mq-channel", "in")
    s = wait_for(lambda: (s := stats(env, "ibm-mq-channel:in")).get("backouts", 0) >= 1 and s, what="backout")
    assert "(4 of its 20 bytes came)" in s["last_error"] and "not whole" in s["last_error"]
    assert server.bodies("conn.record") == []
    qm.warn_gets(qm.queues["in"], 0)
    wait_for(lambda: server.bodies("conn.record") == [body], what="the whole message at the service")


def test_an_outgoing_queue_key_of_another_type_is_said_once_and_sends_once_mended(env):
    """Its Redis queue replaced by a string (another Redis client's): each take Redis answers
    WRONGTYPE. Before: 'Redis failed (...); starting over', and a new connection to the queue
    manager, every 0.5 s; now one line naming the key and how to delete it, tries less and less often."""
    qm = env["qm"]
    key = Keys(env["cluster"]).out_queue("ibm-mq", "out")
    env["client"].set(key, "not a list")
    start(env, "ibm-mq-outgoing", "out")
    wait_for(lambda: "WRONGTYPE" in log_text(env["dir"]), 30, what="the connector's line")
    time.sleep(8)  # tries after 0.5, 1, 2 and 4 s: before, 16 more lines
    refused = [line for line in log_text(env["dir"]).splitlines() if "WRONGTYPE" in line]
    assert len(refused) == 1, refused
    assert "Redis refused it: " in refused[0], refused[0]
    assert f"then delete it (redis-cli DEL {key}; docs/trust.md)" in refused[0], refused[0]
    env["client"].delete(key)  # mended
    make_outgoing(load_server_settings(env["dir"]), env["client"]).ibm_mq.send({"n": 7}, "out")
    seen: list = []
    wait_for(lambda: seen.extend(qm.drain(qm.queues["out"])) or seen, timeout=60, what="the message, mended")
    assert numbers(b for b, _ in seen) == [7]
    assert len(_connected_lines(env)) == 1, _connected_lines(env)  # before: one a try


def _connected_lines(env) -> list[str]:
    return [line for line in log_text(env["dir"]).splitlines() if "connected to IBM MQ" in line]


def test_an_outgoing_connector_keeps_its_queue_manager_connection_while_redis_is_away(env, tmp_path):
    """Redis unreachable for some seconds (its connections cut, new ones refused) while messages
    are sent: before, 'Redis failed (...); starting over' and a new connection to the queue
    manager every 0.5 s; now one connection throughout, and each message put once Redis is
    back."""
    qm = env["qm"]
    proxy = TCPProxy(free_port(), ("127.0.0.1", 6379))
    proxy.start()
    try:
        # the connector reaches Redis through the proxy; the test sends straight to Redis
        redis_url = f"redis://127.0.0.1:{proxy.port}/0"
        cut = dict(env, dir=make_server_dir(str(tmp_path), env["cluster"], "server2", redis_url=redis_url))
        start(cut, "ibm-mq-outgoing", "out")
        out = make_outgoing(load_server_settings(env["dir"]), env["client"]).ibm_mq
        out.send({"n": 0}, "out")
        seen: list = []
        wait_for(lambda: seen.extend(qm.drain(qm.queues["out"])) or seen, 60, what="the first message")
        proxy.stop()
        for i in range(1, 6):  # they wait in Redis: the connector cannot reach it
            out.send({"n": i}, "out")
        failed = re.compile(r"outgoing ibm-mq 'out': \w*(Connection|Timeout)")
        wait_for(lambda: failed.search(log_text(cut["dir"])), 30, what="the connector's line")
        time.sleep(6)  # tries after 0.5, 1, 2 s...: before, a new connection every 0.5 s
        proxy.start()
        wait_for(
            lambda: seen.extend(qm.drain(qm.queues["out"])) or len(seen) >= 6, 60, what="the messages, back"
        )
        assert sorted(numbers(b for b, _ in seen)) == list(range(6))
        assert len(_connected_lines(cut)) == 1, _connected_lines(cut)
        assert "Redis answers again" in log_text(cut["dir"])
    finally:
        proxy.stop()
