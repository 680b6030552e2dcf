"""STAND-IN queue manager for tests: NOT IBM MQ, and never shipped in `zato/`.

No IBM MQ queue manager can run on the CI machines and no open-source server speaks the MQ
protocol, so the IBM MQ connectors are tested against this process and the stand-in `ibmmq`
client module next to it (tests/ibmmq_standin/ibmmq). Together they implement exactly the MQI
calls the connectors use, with the semantics the connectors rely on:

- units of work per connection: a get or put under syncpoint is invisible to others until
  MQCMIT; MQBACK returns the gets to the queue with BackoutCount + 1 and drops the puts;
  MQDISC commits (as IBM MQ does); a connection that ends without MQDISC (process killed,
  socket closed) is backed out;
- queue attributes BOQNAME and BOTHRESH (MQINQ), MQGET wait intervals, expiry; MAXDEPTH
  (a put that would pass it, uncommitted puts counted, fails with 2053 MQRC_Q_FULL) and
  PUT(DISABLED) (a put fails with 2051 MQRC_PUT_INHIBITED; the open for output still works);
  GET(DISABLED) (a get fails with 2016 MQRC_GET_INHIBITED, one waiting too; the open works);
  ALTER ... FORCE of an open queue (a handle open on it answers 2041 MQRC_OBJECT_CHANGED);
- a get returns the first message whose MsgId/CorrelId match the MD's when those are set
  (the real GMO's default MatchOptions), else the first one;
- MQMD CodedCharSetId MQCCSI_Q_MGR (0) on a put becomes the client's CCSID (--ccsid, 819 as
  for a client under the C locale), as IBM MQ fills it in "based on the locale of the client";
- message properties as a queue with the default PROPCTL(COMPAT) gives them: a message put
  with an MQRFH2 (Format MQHRF2) whose folders hold mcd/jms/usr/mqext properties comes back
  with that MQRFH2 before its body unless the get says MQGMO_NO_PROPERTIES; then the body alone
  comes, with the MQRFH2's Format, Encoding and CodedCharSetId in the MQMD;
- object handles (MQOPEN/MQCLOSE; a connection's handles end with it). Input opens follow the
  MQOPEN reference and reason 2042's page: MQOO_INPUT_AS_Q_DEF is shared or exclusive as the
  queue's DEFSOPT says, MQOO_INPUT_SHARED is shared, and a NOSHARE queue makes every input
  handle exclusive ("Shareability": MQOO_INPUT_SHARED is treated as MQOO_INPUT_EXCLUSIVE); an
  exclusive open while the queue is open for input, or a shared one while it is open
  exclusively, fails with 2042 MQRC_OBJECT_IN_USE. A get, put or inquire on a handle not opened
  for it fails with 2037/2039/2038 (MQRC_NOT_OPEN_FOR_INPUT/OUTPUT/INQUIRE);
- authority to connect (setmqaut -t qmgr -connect: MQCONNX fails with 2035, as a wrong
  password does), and authority as the object authority manager checks it at MQOPEN: a queue can deny the
  connecting user inq, get, put or passall (setmqaut -inq...), and an open asking for what is
  denied (MQOO_INQUIRE, MQOO_INPUT_*, MQOO_OUTPUT, MQOO_PASS_ALL_CONTEXT) fails with 2035
  MQRC_NOT_AUTHORIZED;
- message context (MQMD "Controlling message context information", MQPMO Context): a put with
  the default context gets the queue manager's identity and origin context (UserIdentifier
  the connecting user, PutApplName the client's application name, PutApplType MQAT_UNIX,
  PutDate/PutTime now); a handle opened with MQOO_SAVE_ALL_CONTEXT keeps the context of the
  last message it got, and a put with MQPMO_PASS_ALL_CONTEXT (Context = that handle) carries
  it unchanged: 2093 MQRC_NOT_OPEN_FOR_PASS_ALL when the output handle was not opened with
  MQOO_PASS_ALL_CONTEXT, 2097 MQRC_CONTEXT_HANDLE_ERROR when Context is no handle opened with
  MQOO_SAVE_ALL_CONTEXT, 2098 MQRC_CONTEXT_NOT_AVAILABLE before its first get;
- MQGMO_CONVERT as "Conversion processing" describes it: nothing to do when the message's
  CodedCharSetId is the one the get's MQMD asks for (or there is no data); a message whose
  Format is MQFMT_NONE comes unconverted with MQCC_WARNING 2110 MQRC_FORMAT_ERROR, as does
  any format other than MQFMT_STRING (no data-conversion exit here); MQFMT_STRING is converted
  between the CCSIDs below, else comes unconverted with 2111 MQRC_SOURCE_CCSID_ERROR / 2115
  MQRC_TARGET_CCSID_ERROR, or 2119 MQRC_NOT_CONVERTED when its bytes are not valid in its CCSID
  (IBM: "if conversion fails ... the unconverted message is returned ... with MQCC_WARNING");
- MQGET's BufferLength: a message longer than the buffer stays on the queue with MQCC_WARNING
  2080 MQRC_TRUNCATED_MSG_FAILED (the MD filled, the data cut to the buffer, DataLength its
  whole length before conversion), as 2080's page and "Conversion processing" step 4 say; one
  that fits but grows beyond the buffer in conversion is removed and returned unconverted with
  MQCC_WARNING 2120 MQRC_CONVERTED_MSG_TOO_BIG (2120's page). The client module does what
  ibmmq's Queue.get does with that (a 4 KB buffer first, then one more get: see its get());
- DEFPSIST and DEFPRTY (DefPersistence, DefPriority: NO and 0 as IBM's defaults): a put with
  MQPER_PERSISTENCE_AS_Q_DEF or MQPRI_PRIORITY_AS_Q_DEF gets the queue's value copied into
  its MQMD ("Persistence (MQLONG)"), so a restart drops such a message from a DEFPSIST(NO)
  queue; before, it kept Persistence 2 and survived every restart;
- MAXUMSGS (ALTER QMGR, 10000 by default): a get or put under syncpoint that would take the
  unit of work past it fails with 2024 MQRC_SYNCPOINT_LIMIT_REACHED, the unit of work kept;
- on demand: every connection broken with a reason code (2009, 2161, 2162...), a queue
  manager restart (connections broken, non-persistent messages gone, new connections refused
  with 2538 for a while), puts to a queue that complete with a warning (MQCC_WARNING and a
  reason such as 2104 MQRC_UNKNOWN_REPORT_OPTION: the message is put all the same, as MQPUT
  does; the client module raises MQMIError with comp 1 for it, as ibmmq does), gets from a
  queue that complete with a warning (the message is taken, under syncpoint if asked, and
  returned whole, as MQGET returns a message it could not convert, or cut to `truncate` bytes
  with 2079 MQRC_TRUNCATED_MSG_ACCEPTED), and commits that complete with a warning: 2124
  MQRC_OUTCOME_PENDING commits the unit of work (its outcome is decided later), 2003
  MQRC_BACKED_OUT backs it out (MQ_CMIT_EXIT: "If a commit operation fails, and the
  transaction is backed out, the MQCMIT call fails with MQCC_WARNING and MQRC_BACKED_OUT").

Messages are kept in memory of this process, so they survive any client being SIGKILLed.
Wire format: one JSON object per line each way (bodies in base64). Not a security boundary.

    python tests/ibmmq_standin/qmgr.py --port PORT [--qmgr QM1] [--channel CH] [--user U --password P]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections import deque
from socketserver import StreamRequestHandler, ThreadingTCPServer

OK = 0
WARNING = 1
FAILED = 2
NO_MSG_AVAILABLE = 2033
CONNECTION_BROKEN = 2009
Q_MGR_NAME_ERROR = 2058
UNKNOWN_OBJECT_NAME = 2085
NOT_AUTHORIZED = 2035
NOT_OPEN_FOR_INPUT, NOT_OPEN_FOR_INQUIRE, NOT_OPEN_FOR_OUTPUT = 2037, 2038, 2039
OBJECT_IN_USE = 2042
PUT_INHIBITED, Q_FULL = 2051, 2053
OBJECT_CHANGED = 2041
GET_INHIBITED = 2016
HOBJ_ERROR = 2019
BACKED_OUT = 2003
SYNCPOINT_LIMIT_REACHED = 2024
TRUNCATED_MSG_ACCEPTED, TRUNCATED_MSG_FAILED = 2079, 2080
CONVERTED_MSG_TOO_BIG = 2120
GMO_ACCEPT_TRUNCATED_MSG = 0x40
NOT_OPEN_FOR_PASS_ALL, CONTEXT_HANDLE_ERROR, CONTEXT_NOT_AVAILABLE = 2093, 2097, 2098
OO_INPUT_AS_Q_DEF, OO_INPUT_SHARED, OO_INPUT_EXCLUSIVE = 1, 2, 4
OO_OUTPUT, OO_INQUIRE = 16, 32
OO_SAVE_ALL_CONTEXT, OO_PASS_IDENTITY_CONTEXT, OO_PASS_ALL_CONTEXT = 0x80, 0x100, 0x200
OO_INPUT = OO_INPUT_AS_Q_DEF | OO_INPUT_SHARED | OO_INPUT_EXCLUSIVE
PMO_PASS_IDENTITY_CONTEXT, PMO_PASS_ALL_CONTEXT = 0x100, 0x200
GMO_BROWSE_ANY = 0x10 | 0x20 | 0x800  # MQGMO_BROWSE_FIRST / _NEXT / _MSG_UNDER_CURSOR
AT_UNIX = 6  # MQAT_UNIX: PutApplType of a client application on Linux
IDENTITY = ("UserIdentifier", "AccountingToken", "ApplIdentityData")
ORIGIN = ("PutApplType", "PutApplName", "PutDate", "PutTime", "ApplOriginData")
HOST_NOT_AVAILABLE = 2538
UNKNOWN_CHANNEL_NAME = 2540
BACKOUT_REQ_Q_NAME = 2019  # MQCA_BACKOUT_REQ_Q_NAME
BACKOUT_THRESHOLD = 22  # MQIA_BACKOUT_THRESHOLD
NOT_PERSISTENT = 0
PERSISTENCE_AS_Q_DEF, PRIORITY_AS_Q_DEF = 2, -1
GMO_NO_PROPERTIES = 0x4000000
GMO_CONVERT = 0x4000
FMT_NONE, FMT_STRING = b"        ".hex(), b"MQSTR   ".hex()
FORMAT_ERROR, SOURCE_CCSID_ERROR, TARGET_CCSID_ERROR, NOT_CONVERTED = 2110, 2111, 2115, 2119
# CCSIDs this stand-in converts MQFMT_STRING data between (Python codecs of the same charsets)
CODECS = {
    1208: "utf-8",
    819: "latin-1",
    1252: "cp1252",
    437: "cp437",
    850: "cp850",
    500: "cp500",
    37: "cp037",
}
FMT_RF_HEADER_2 = b"MQHRF2  ".hex()
COMPAT_FOLDERS = (b"<mcd>", b"<jms>", b"<usr>", b"<mqext>")  # PROPCTL(COMPAT) returns these


class MQFail(Exception):
    def __init__(self, reason: int):
        super().__init__(reason)
        self.reason = reason


class MQWarn(Exception):
    """The call did what it was asked and completes with MQCC_WARNING and `reason`."""

    def __init__(self, reason: int, reply: dict):
        super().__init__(reason)
        self.reason, self.reply = reason, reply


class Message:
    __slots__ = ("body", "md", "expires")

    def __init__(self, body: bytes, md: dict):
        self.body, self.md = body, md
        expiry = int(md.get("Expiry", -1))
        self.expires = time.monotonic() + expiry / 10 if expiry > 0 else None


class Handle:
    __slots__ = ("queue", "options", "exclusive", "saved", "changed")

    def __init__(self, queue: str, options: int, exclusive: bool | None):
        self.queue, self.options, self.exclusive = queue, options, exclusive  # exclusive None: no input
        self.saved: dict | None = None  # MQOO_SAVE_ALL_CONTEXT: the context of the last message got
        self.changed = False  # its queue was ALTERed with FORCE since it was opened (2041)


class Conn:
    def __init__(self, handler: StreamRequestHandler):
        self.handler = handler
        self.connected = False
        self.user, self.appl_name = "", ""
        self.handles: dict[int, Handle] = {}
        self.gets: list[tuple[str, Message]] = []
        self.puts: list[tuple[str, Message]] = []
        self.broken: int | None = None  # reason code every next call answers


class QueueManagerState:
    def __init__(
        self, name: str, channel: str | None, user: str | None, password: str | None, ccsid: int = 819
    ):
        self.name, self.channel, self.user, self.password = name, channel, user, password
        self.ccsid = ccsid
        self.cond = threading.Condition()
        self.queues: dict[str, deque[Message]] = {}
        self.attrs: dict[str, dict] = {}
        self.conns: set[Conn] = set()
        self.down_until = 0.0
        self.put_warnings: dict[str, int] = {}  # queue -> the warning reason its puts complete with
        self.get_warnings: dict[str, tuple[int, int | None]] = {}  # queue -> (reason, cut to bytes)
        self.commit_warning = 0  # the warning reason commits complete with (0: none)
        self.denied: dict[str, set[str]] = {}  # queue -> authorities the connecting user lacks
        self.next_hobj = 100
        self.counters = {"connects": 0, "commits": 0, "backouts": 0, "restarts": 0, "gets": 0, "puts": 0}
        self.counters["opens_refused"] = 0  # MQOPENs refused with 2035 or 2085 (a test counts tries)
        self.counters["connects_refused"] = 0  # MQCONNXs refused with 2035, 2058 or 2540
        self.counters["truncated_gets"] = 0  # gets that left a message longer than their buffer (2080)
        self.counters["gets_inhibited"] = 0  # gets refused with 2016 (GET(DISABLED))
        self.connect_denied = False
        self.maxumsgs = 10000  # MAXUMSGS (MaxUncommittedMsgs), IBM's default on Multiplatforms

    # -- units of work (called with the lock held) --------------------------------------------
    def _commit(self, conn: Conn) -> None:
        for qname, msg in conn.puts:
            self.queues[qname].append(msg)
        conn.puts, conn.gets = [], []
        self.counters["commits"] += 1
        self.cond.notify_all()

    def _backout(self, conn: Conn) -> None:
        for qname, msg in reversed(conn.gets):
            msg.md["BackoutCount"] = int(msg.md.get("BackoutCount", 0)) + 1
            self.queues[qname].appendleft(msg)
        if conn.gets or conn.puts:
            self.counters["backouts"] += 1
        conn.puts, conn.gets = [], []
        self.cond.notify_all()

    def ended(self, conn: Conn) -> None:
        """The connection is gone without MQDISC: everything uncommitted is backed out."""
        with self.cond:
            self._backout(conn)
            conn.handles.clear()
            self.conns.discard(conn)

    # -- MQI --------------------------------------------------------------------------------------
    def call(self, conn: Conn, op: str, a: dict) -> dict:
        with self.cond:
            if op.startswith("admin."):
                return getattr(self, "admin_" + op[6:])(a)
            if conn.broken is not None:
                raise MQFail(conn.broken)
            if op == "connect":
                return self._connect(conn, a)
            if not conn.connected:
                raise MQFail(2018)  # MQRC_HCONN_ERROR
            return getattr(self, "op_" + op)(conn, a)

    def _connect(self, conn: Conn, a: dict) -> dict:
        if time.monotonic() < self.down_until:
            raise MQFail(HOST_NOT_AVAILABLE)
        refused = 0
        if a.get("qmgr") and a["qmgr"] != self.name:
            refused = Q_MGR_NAME_ERROR
        elif self.channel and a.get("channel") != self.channel:
            refused = UNKNOWN_CHANNEL_NAME
        elif self.connect_denied or (  # the user lacks +connect, or the password is wrong
            self.user and (a.get("user"), a.get("password")) != (self.user, self.password)
        ):
            refused = NOT_AUTHORIZED
        if refused:
            self.counters["connects_refused"] += 1
            raise MQFail(refused)
        conn.connected = True
        conn.user = a.get("user") or "mqclient"
        conn.appl_name = a.get("appl_name") or ""
        self.conns.add(conn)
        self.counters["connects"] += 1
        return {"qmgr": self.name}

    def _queue(self, name: str) -> deque[Message]:
        try:
            return self.queues[name]
        except KeyError:
            raise MQFail(UNKNOWN_OBJECT_NAME) from None

    def op_open(self, conn: Conn, a: dict) -> dict:
        name, options = a["queue"], int(a.get("options", 0))
        if name not in self.queues:
            self.counters["opens_refused"] += 1
            raise MQFail(UNKNOWN_OBJECT_NAME)
        denied = self.denied.get(name, set())
        needs = {
            "inq": options & OO_INQUIRE,
            "get": options & OO_INPUT,
            "put": options & OO_OUTPUT,
            "passall": options & OO_PASS_ALL_CONTEXT,
        }
        if any(needs[what] for what in denied if what in needs):
            self.counters["opens_refused"] += 1
            raise MQFail(NOT_AUTHORIZED)
        exclusive = None
        if options & OO_INPUT:
            attrs = self.attrs.get(name, {})
            exclusive = bool(
                options & OO_INPUT_EXCLUSIVE
                or (options & OO_INPUT_AS_Q_DEF and attrs.get("defsopt") == "excl")
                or not attrs.get("share", True)
            )
            held = self._input_handles(name)
            if held and (exclusive or any(h.exclusive for h in held)):
                raise MQFail(OBJECT_IN_USE)
        self.next_hobj += 1
        conn.handles[self.next_hobj] = Handle(name, options, exclusive)
        return {"hobj": self.next_hobj}

    def _input_handles(self, name: str) -> list[Handle]:
        handles = [h for c in self.conns for h in c.handles.values()]
        return [h for h in handles if h.queue == name and h.exclusive is not None]

    def op_close(self, conn: Conn, a: dict) -> dict:
        if conn.handles.pop(int(a.get("hobj", 0)), None) is None:
            raise MQFail(HOBJ_ERROR)
        return {}

    def _handle(self, conn: Conn, a: dict, needs: int, refused: int) -> Handle:
        handle = conn.handles.get(int(a.get("hobj", 0)))
        if handle is None:
            raise MQFail(HOBJ_ERROR)
        if handle.changed:
            raise MQFail(OBJECT_CHANGED)
        if not handle.options & needs:
            raise MQFail(refused)
        self._queue(handle.queue)
        return handle

    def op_get(self, conn: Conn, a: dict) -> dict:
        handle = self._handle(conn, a, OO_INPUT, NOT_OPEN_FOR_INPUT)
        a = dict(a, queue=handle.queue)
        q = self._queue(a["queue"])
        deadline = time.monotonic() + a.get("wait_ms", 0) / 1000
        while True:
            if conn.broken is not None:
                raise MQFail(conn.broken)
            if not self.attrs.get(a["queue"], {}).get("get", True):  # also ends a get that waits
                self.counters["gets_inhibited"] += 1
                raise MQFail(GET_INHIBITED)
            now = time.monotonic()
            while q and q[0].expires is not None and q[0].expires <= now:
                q.popleft()
            found = next((i for i, m in enumerate(q) if _matches(m, a) and not _expired(m, now)), None)
            if found is not None:
                break
            if now >= deadline:
                raise MQFail(NO_MSG_AVAILABLE)
            self.cond.wait(deadline - now)
        msg = q[found]
        options = int(a.get("options", 0))
        body, md = msg.body, msg.md
        if md.get("Format") == FMT_RF_HEADER_2:
            body, md = _properties_as_q_def(body, md, options)
        # BufferLength (None: an admin read, any length). MQGET: a message longer than the buffer
        # without MQGMO_ACCEPT_TRUNCATED_MSG stays on the queue (2080's page: "the message has not
        # been removed"), the MD filled, DataLength its whole length before any conversion;
        # MQCC_WARNING as "Conversion processing" (its table 1 and step 4) gives it.
        buffer = a.get("buffer")
        if buffer is not None and len(body) > int(buffer) and not options & GMO_ACCEPT_TRUNCATED_MSG:
            cut = {"b64": base64.b64encode(body[: int(buffer)]).decode(), "md": md, "length": len(body)}
            self.counters["truncated_gets"] += 1
            raise MQWarn(TRUNCATED_MSG_FAILED, cut)
        if a.get("syncpoint"):
            self._within_maxumsgs(conn)
        del q[found]
        self.counters["gets"] += 1
        if a.get("syncpoint"):
            conn.gets.append((a["queue"], msg))
        else:
            self.cond.notify_all()
        if handle.options & OO_SAVE_ALL_CONTEXT:
            handle.saved = {k: msg.md.get(k) for k in IDENTITY + ORIGIN}
        converted = 0
        if options & GMO_CONVERT:
            data, new_md, converted = _convert(body, md, int(a.get("ccsid") or 0) or self.ccsid)
            if buffer is not None and len(data) > int(buffer):
                # 2120's page: the data grew in conversion beyond the buffer, but the message
                # was removed already (it fitted before): returned unconverted, MQCC_WARNING
                converted = CONVERTED_MSG_TOO_BIG
            else:
                body, md = data, new_md
        reply = {"b64": base64.b64encode(body).decode(), "md": md, "length": len(body)}
        reason, cut = self.get_warnings.get(a["queue"], (0, None))
        reason = reason or converted
        if reason:
            if cut is not None:  # the data cut, `length` still the whole message's
                reply["b64"] = base64.b64encode(body[:cut]).decode()
            raise MQWarn(reason, reply)
        return reply

    def op_put(self, conn: Conn, a: dict) -> dict:
        handle = self._handle(conn, a, OO_OUTPUT, NOT_OPEN_FOR_OUTPUT)
        a = dict(a, queue=handle.queue)
        self._put_allowed(handle.queue)
        if a.get("syncpoint"):
            self._within_maxumsgs(conn)
        md = dict(a.get("md") or {})
        passed = self._passed_context(conn, handle, int(a.get("options", 0)), int(a.get("context", 0)))
        if a.get("new_msg_id") or not md.get("MsgId") or set(md["MsgId"]) == {"0"}:
            md["MsgId"] = os.urandom(24).hex()
        md["BackoutCount"] = 0
        # MQPER_PERSISTENCE_AS_Q_DEF / MQPRI_PRIORITY_AS_Q_DEF: the queue's DEFPSIST / DEFPRTY,
        # copied into the MQMD at the put (an MQGET returns MQPER_PERSISTENT or _NOT_PERSISTENT)
        attrs = self.attrs.get(handle.queue, {})
        if int(md.get("Persistence", PERSISTENCE_AS_Q_DEF)) == PERSISTENCE_AS_Q_DEF:
            md["Persistence"] = 1 if attrs.get("defpsist") else NOT_PERSISTENT
        if int(md.get("Priority", PRIORITY_AS_Q_DEF)) == PRIORITY_AS_Q_DEF:
            md["Priority"] = int(attrs.get("defprty", 0))
        if not int(md.get("CodedCharSetId") or 0):  # MQCCSI_Q_MGR: the client's CCSID
            md["CodedCharSetId"] = self.ccsid
        now = time.time()  # default context: the queue manager sets the put date and time (UTC)
        md["PutDate"] = time.strftime("%Y%m%d", time.gmtime(now)).encode().hex()
        md["PutTime"] = (
            (time.strftime("%H%M%S", time.gmtime(now)) + f"{int(now * 100) % 100:02d}").encode().hex()
        )
        md["UserIdentifier"] = conn.user[:12].encode().hex()
        md["AccountingToken"] = (b"\x16" + conn.user.encode()[:31]).hex()
        md["ApplIdentityData"] = ""
        md["PutApplType"] = AT_UNIX
        md["PutApplName"] = conn.appl_name[-28:].encode().hex()
        md["ApplOriginData"] = ""
        md.update(passed)
        if not _blank(md.get("ReplyToQ")) and _blank(md.get("ReplyToQMgr")):
            md["ReplyToQMgr"] = self.name.encode().hex()  # a blank one names this queue manager
        msg = Message(base64.b64decode(a["b64"]), md)
        self.counters["puts"] += 1
        if a.get("syncpoint"):
            conn.puts.append((a["queue"], msg))
        else:
            self.queues[a["queue"]].append(msg)
            self.cond.notify_all()
        if self.put_warnings.get(a["queue"]):
            raise MQWarn(self.put_warnings[a["queue"]], {"md": md})
        return {"md": md}

    def _within_maxumsgs(self, conn: Conn) -> None:
        """2024 MQRC_SYNCPOINT_LIMIT_REACHED (MQCC_FAILED): a get or put under syncpoint that
        would take the unit of work's uncommitted messages past MAXUMSGS fails, the unit of
        work as it was (2024's page); the messages got and put under syncpoint are counted."""
        if len(conn.puts) + len(conn.gets) >= self.maxumsgs:
            raise MQFail(SYNCPOINT_LIMIT_REACHED)

    def _put_allowed(self, name: str) -> None:
        """PUT(DISABLED): 2051 MQRC_PUT_INHIBITED; MAXDEPTH reached, counting the puts not yet
        committed (CURDEPTH rises at MQPUT, "MaxQDepth"): 2053 MQRC_Q_FULL. Both MQCC_FAILED."""
        attrs = self.attrs.get(name, {})
        if not attrs.get("put", True):
            raise MQFail(PUT_INHIBITED)
        maxdepth = int(attrs.get("maxdepth") or 0)
        uncommitted = sum(1 for c in self.conns for qn, _ in c.puts if qn == name)
        if maxdepth and len(self.queues[name]) + uncommitted >= maxdepth:
            raise MQFail(Q_FULL)

    def _passed_context(self, conn: Conn, out: Handle, options: int, context: int) -> dict:
        """The context fields a put passes from the input handle `context` (MQPMO Context)."""
        if not options & (PMO_PASS_ALL_CONTEXT | PMO_PASS_IDENTITY_CONTEXT):
            return {}
        needs = OO_PASS_ALL_CONTEXT if options & PMO_PASS_ALL_CONTEXT else OO_PASS_IDENTITY_CONTEXT
        if not out.options & (needs | OO_PASS_ALL_CONTEXT):  # PASS_ALL implies PASS_IDENTITY
            raise MQFail(NOT_OPEN_FOR_PASS_ALL if needs == OO_PASS_ALL_CONTEXT else 2094)
        source = conn.handles.get(context)
        if source is None or not source.options & OO_SAVE_ALL_CONTEXT:
            raise MQFail(CONTEXT_HANDLE_ERROR)
        if source.saved is None:
            raise MQFail(CONTEXT_NOT_AVAILABLE)
        fields = IDENTITY + ORIGIN if options & PMO_PASS_ALL_CONTEXT else IDENTITY
        return {k: source.saved[k] for k in fields if source.saved.get(k) is not None}

    def op_commit(self, conn: Conn, a: dict) -> dict:
        if self.commit_warning == BACKED_OUT:
            self._backout(conn)
            raise MQWarn(BACKED_OUT, {})
        self._commit(conn)
        if self.commit_warning:
            raise MQWarn(self.commit_warning, {})
        return {}

    def op_backout(self, conn: Conn, a: dict) -> dict:
        self._backout(conn)
        return {}

    def op_disc(self, conn: Conn, a: dict) -> dict:
        self._commit(conn)  # MQDISC commits the unit of work
        conn.connected = False
        conn.handles.clear()
        self.conns.discard(conn)
        return {}

    def op_inquire(self, conn: Conn, a: dict) -> dict:
        handle = self._handle(conn, a, OO_INQUIRE, NOT_OPEN_FOR_INQUIRE)
        attrs = self.attrs.get(handle.queue, {})
        if a["attr"] == BACKOUT_REQ_Q_NAME:
            return {"value": attrs.get("boqname", "").ljust(48)}
        if a["attr"] == BACKOUT_THRESHOLD:
            return {"value": int(attrs.get("bothresh", 0))}
        raise MQFail(2067)  # MQRC_SELECTOR_ERROR

    # -- test controls ----------------------------------------------------------------------------
    def admin_define(self, a: dict) -> dict:
        """DEFINE/ALTER QLOCAL: BOQNAME, BOTHRESH, SHARE|NOSHARE (share), DEFSOPT(SHARED|EXCL),
        MAXDEPTH (maxdepth; 0 here: no limit), PUT(ENABLED|DISABLED) (put: true or false),
        GET(ENABLED|DISABLED) (get: true or false), DEFPSIST(YES|NO) (defpsist; NO, IBM's
        default), DEFPRTY (defprty, 0)."""
        self.queues.setdefault(a["queue"], deque())
        self.attrs[a["queue"]] = {
            "boqname": a.get("boqname", ""),
            "bothresh": a.get("bothresh", 0),
            "share": a.get("share", True),
            "defsopt": a.get("defsopt", "shared"),
            "maxdepth": int(a.get("maxdepth") or 0),
            "put": bool(a.get("put", True)),
            "get": bool(a.get("get", True)),
            "defpsist": bool(a.get("defpsist", False)),
            "defprty": int(a.get("defprty") or 0),
        }
        return {}

    def admin_alter_force(self, a: dict) -> dict:
        """ALTER ... FORCE of `queue` (an alias retargeted, REFRESH CLUSTER) while it is open:
        every handle open on it answers its next get, put or inquire with 2041
        MQRC_OBJECT_CHANGED ("the queue manager marks the object handle as being no longer
        valid"); MQCLOSE takes it back, and a new MQOPEN works."""
        for conn in self.conns:
            for handle in conn.handles.values():
                if handle.queue == a["queue"]:
                    handle.changed = True
        return {}

    def admin_deny(self, a: dict) -> dict:
        """setmqaut -inq / -get / -put / -passall for the connecting user on `queue` (an empty
        list grants them all again: what a later setmqaut +get does)."""
        self.denied[a["queue"]] = set(a.get("what") or [])
        return {}

    def admin_alter_qmgr(self, a: dict) -> dict:
        """ALTER QMGR MAXUMSGS(n): the most uncommitted messages a unit of work may hold."""
        self.maxumsgs = int(a.get("maxumsgs") or 10000)
        return {}

    def admin_deny_connect(self, a: dict) -> dict:
        """setmqaut -t qmgr -connect (deny true) or +connect (deny false) for the test user."""
        self.connect_denied = bool(a.get("deny", True))
        return {}

    def admin_input_handles(self, a: dict) -> dict:
        held = self._input_handles(a["queue"])
        exclusive = sum(1 for h in held if h.exclusive)
        return {"shared": len(held) - exclusive, "exclusive": exclusive}

    def admin_warn_gets(self, a: dict) -> dict:
        """Gets from `queue` complete with MQCC_WARNING and `reason` (0: no more), the data cut
        to `truncate` bytes if given (2079; or a buffer shorter than the message)."""
        self.get_warnings[a["queue"]] = (int(a.get("reason", 0)), a.get("truncate"))
        return {}

    def admin_warn_commits(self, a: dict) -> dict:
        """Commits complete with MQCC_WARNING and `reason` (0: no more): 2003 backs out."""
        self.commit_warning = int(a.get("reason", 0))
        return {}

    def admin_depth(self, a: dict) -> dict:
        q = self._queue(a["queue"])
        held = sum(1 for c in self.conns for qn, _ in c.gets if qn == a["queue"])
        return {"depth": len(q), "uncommitted_gets": held}

    def admin_browse(self, a: dict) -> dict:
        q = self._queue(a["queue"])
        return {"messages": [{"b64": base64.b64encode(m.body).decode(), "md": m.md} for m in q]}

    def admin_drain(self, a: dict) -> dict:
        """Take every committed message off a queue (the test reads what arrived)."""
        out = self.admin_browse(a)
        self._queue(a["queue"]).clear()
        return out

    def admin_counters(self, a: dict) -> dict:
        return dict(self.counters, connections=len(self.conns))

    def admin_warn_puts(self, a: dict) -> dict:
        """Puts to `queue` are taken and complete with MQCC_WARNING and `reason` (0: no more)."""
        self.put_warnings[a["queue"]] = int(a.get("reason", 0))
        return {}

    def admin_break(self, a: dict) -> dict:
        """Every open connection answers `reason` to its next call (also a get that waits) and
        its unit of work is backed out, as when the network or the channel fails."""
        reason = int(a.get("reason", CONNECTION_BROKEN))
        for conn in list(self.conns):
            conn.broken = reason
            self._backout(conn)
            conn.connected = False
            conn.handles.clear()
        self.conns.clear()
        self.cond.notify_all()
        return {"broken": reason}

    def admin_restart(self, a: dict) -> dict:
        """A queue manager restart: connections end (2161 quiescing first), uncommitted work is
        backed out, non-persistent messages are gone, connects fail with 2538 for down_ms."""
        self.admin_break({"reason": a.get("reason", 2161)})
        for q in self.queues.values():
            kept = [m for m in q if int(m.md.get("Persistence", 1)) != NOT_PERSISTENT]
            q.clear()
            q.extend(kept)
        self.down_until = time.monotonic() + a.get("down_ms", 1000) / 1000
        self.counters["restarts"] += 1
        return {}


def _matches(msg: Message, a: dict) -> bool:
    """MQMO_MATCH_MSG_ID | MQMO_MATCH_CORREL_ID, the default MatchOptions: a set field must match."""
    wanted = (("msg_id", "MsgId"), ("correl_id", "CorrelId"))
    return all(not a.get(k) or msg.md.get(f) == a[k] for k, f in wanted)


def _blank(hex_field: str | None) -> bool:
    return not bytes.fromhex(hex_field or "").strip(b" \x00")


def _expired(msg: Message, now: float) -> bool:
    return msg.expires is not None and msg.expires <= now


def _convert(body: bytes, md: dict, target: int) -> tuple[bytes, dict, int]:
    """MQGMO_CONVERT to CCSID `target`: (data, MQMD, 0) or, when it is returned unconverted,
    (the data as put, its MQMD, the warning reason)."""
    source = int(md.get("CodedCharSetId") or 0)
    if source == target or not body:
        return body, md, 0
    if md.get("Format") != FMT_STRING:  # MQFMT_NONE, or a format with no conversion exit here
        return body, md, FORMAT_ERROR
    if source not in CODECS:
        return body, md, SOURCE_CCSID_ERROR
    if target not in CODECS:
        return body, md, TARGET_CCSID_ERROR
    try:
        data = body.decode(CODECS[source]).encode(CODECS[target])
    except (UnicodeDecodeError, UnicodeEncodeError):
        return body, md, NOT_CONVERTED
    return data, dict(md, CodedCharSetId=target), 0


def _properties_as_q_def(body: bytes, md: dict, options: int) -> tuple[bytes, dict]:
    """What a get of a message with an MQRFH2 returns under PROPCTL(COMPAT): the MQRFH2 as it
    is when it holds mcd/jms/usr/mqext folders and the get did not say MQGMO_NO_PROPERTIES;
    otherwise the properties stay behind and the body follows alone."""
    if len(body) < 36 or body[:4] != b"RFH ":
        return body, md
    order = "<" if int(md.get("Encoding", 546)) & 2 else ">"  # MQENC_INTEGER_REVERSED
    (length,) = struct.unpack(order + "i", body[8:12])
    (encoding, ccsid) = struct.unpack(order + "ii", body[12:20])
    folders = body[36:length]
    if not options & GMO_NO_PROPERTIES and any(f in folders for f in COMPAT_FOLDERS):
        return body, md
    inner = dict(md, Format=body[20:28].hex(), Encoding=encoding, CodedCharSetId=ccsid)
    return body[length:], inner


def make_handler(state: QueueManagerState) -> type[StreamRequestHandler]:
    class Handler(StreamRequestHandler):
        def handle(self) -> None:
            conn = Conn(self)
            try:
                for line in self.rfile:
                    req = json.loads(line)
                    try:
                        reply = {"comp": OK, "reason": 0, **state.call(conn, req["op"], req.get("args", {}))}
                    except MQFail as e:
                        reply = {"comp": FAILED, "reason": e.reason}
                    except MQWarn as e:
                        reply = {**e.reply, "comp": WARNING, "reason": e.reason}
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
                    self.wfile.flush()
                    if conn.broken is not None and reply["comp"] == FAILED:
                        return  # the connection ends after telling why
            except (OSError, ValueError):
                pass
            finally:
                state.ended(conn)

    return Handler


class Server(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Stand-in IBM MQ queue manager for tests (not IBM MQ)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--qmgr", default="QM1")
    p.add_argument("--channel", default=None, help="the only channel name accepted (default: any)")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--ccsid", type=int, default=819, help="what MQCCSI_Q_MGR on a put becomes")
    args = p.parse_args(argv)
    state = QueueManagerState(args.qmgr, args.channel, args.user, args.password, args.ccsid)
    try:
        server = Server((args.host, args.port), make_handler(state))
    except OSError as e:
        print(f"ibmmq stand-in: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    print(f"ibmmq stand-in queue manager {args.qmgr} listening on {args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
