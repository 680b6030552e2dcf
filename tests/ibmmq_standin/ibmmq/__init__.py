"""STAND-IN for IBM's `ibmmq` Python binding, for tests only: NOT IBM MQ, never shipped in `zato/`.

It has the names and signatures of the real module for exactly the MQI calls the Zato-HA IBM MQ
connectors make (QueueManager.connect_with_options/commit/backout/disconnect, Queue get/put/
inquire/close, MD, GMO, PMO, CD, SCO, CMQC, CMQXC, MQMIError) and talks to the stand-in queue
manager process (tests/ibmmq_standin/qmgr.py) over TCP, found through the MQCD ConnectionName
`host(port)` as a real client would. Tests make it importable as `ibmmq` for the processes
they start by putting tests/ibmmq_standin first on PYTHONPATH. Constants have IBM's values
(ibmmq 2.1's _CMQC_linux_x64.py / CMQXC.py), structures the real defaults (mqmd.py, mqcd.py...),
and what the real one does on the client side is done here too: object names are encoded as
ASCII and cut to 48 bytes (mqcommon.ensure_strings_are_bytes, MQOpts.pack), a str body goes as
UTF-8 with Format MQSTR and CodedCharSetId 1208 (mqqueue.Queue.put), the MD's MsgId/CorrelId
select the message a get returns (GMO MatchOptions MQMO_MATCH_MSG_ID | MQMO_MATCH_CORREL_ID).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import sys
import threading
from typing import Any


class MQMIError(Exception):
    """As ibmmq's (mqerrors.py): comp and reason, and any keyword as an attribute (a get that
    completes with a warning carries the data as `message` and `original_length`)."""

    def __init__(self, comp: int, reason: int, **kw: Any):
        super().__init__(comp, reason)
        self.comp, self.reason = comp, reason
        for k, v in kw.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return f"MQI Error. Comp: {self.comp}, Reason {self.reason}"


class PYIFError(Exception):
    pass


class CMQC:
    MQCC_OK, MQCC_WARNING, MQCC_FAILED = 0, 1, 2
    MQCNO_NONE, MQCNO_CLIENT_BINDING = 0, 0x800
    MQOO_INPUT_AS_Q_DEF, MQOO_INPUT_SHARED, MQOO_INPUT_EXCLUSIVE, MQOO_BROWSE = 1, 2, 4, 8
    MQOO_OUTPUT, MQOO_INQUIRE = 16, 32
    MQOO_SAVE_ALL_CONTEXT, MQOO_PASS_IDENTITY_CONTEXT, MQOO_PASS_ALL_CONTEXT = 0x80, 0x100, 0x200
    MQOO_FAIL_IF_QUIESCING = 0x2000
    MQCO_NONE = 0
    MQGMO_NO_WAIT, MQGMO_WAIT, MQGMO_SYNCPOINT, MQGMO_NO_SYNCPOINT = 0, 1, 2, 4
    MQGMO_ACCEPT_TRUNCATED_MSG = 0x40
    MQGMO_FAIL_IF_QUIESCING, MQGMO_CONVERT = 0x2000, 0x4000
    MQGMO_PROPERTIES_AS_Q_DEF, MQGMO_NO_PROPERTIES = 0, 0x4000000
    MQMO_NONE, MQMO_MATCH_MSG_ID, MQMO_MATCH_CORREL_ID = 0, 1, 2
    MQPMO_SYNCPOINT, MQPMO_NO_SYNCPOINT, MQPMO_NEW_MSG_ID, MQPMO_FAIL_IF_QUIESCING = 2, 4, 64, 0x2000
    MQPMO_DEFAULT_CONTEXT, MQPMO_PASS_IDENTITY_CONTEXT, MQPMO_PASS_ALL_CONTEXT = 0x20, 0x100, 0x200
    MQPER_NOT_PERSISTENT, MQPER_PERSISTENT, MQPER_PERSISTENCE_AS_Q_DEF = 0, 1, 2
    MQEI_UNLIMITED = -1
    MQPRI_PRIORITY_AS_Q_DEF = -1
    MQFMT_NONE, MQFMT_STRING, MQFMT_RF_HEADER_2 = b"        ", b"MQSTR   ", b"MQHRF2  "
    MQCCSI_Q_MGR = 0
    MQENC_NATIVE = 546  # x86-64 Linux
    MQMI_NONE = MQCI_NONE = b"\x00" * 24
    MQCA_BACKOUT_REQ_Q_NAME, MQIA_BACKOUT_THRESHOLD = 2019, 22
    MQRC_NONE = 0
    MQRC_BACKED_OUT = 2003
    MQRC_CONNECTION_BROKEN = 2009
    MQRC_ENVIRONMENT_ERROR = 2012
    MQRC_GET_INHIBITED = 2016
    MQRC_HCONN_ERROR = 2018
    MQRC_NO_MSG_AVAILABLE = 2033
    MQRC_NOT_AUTHORIZED = 2035
    MQRC_NOT_OPEN_FOR_INPUT, MQRC_NOT_OPEN_FOR_INQUIRE, MQRC_NOT_OPEN_FOR_OUTPUT = 2037, 2038, 2039
    MQRC_OBJECT_CHANGED, MQRC_OBJECT_IN_USE = 2041, 2042
    MQRC_PUT_INHIBITED, MQRC_Q_FULL = 2051, 2053
    MQRC_Q_MGR_NAME_ERROR = 2058
    MQRC_Q_MGR_NOT_AVAILABLE = 2059
    MQRC_SELECTOR_ERROR = 2067
    MQRC_TRUNCATED_MSG_ACCEPTED, MQRC_TRUNCATED_MSG_FAILED = 2079, 2080
    MQRC_NOT_OPEN_FOR_PASS_ALL, MQRC_CONTEXT_HANDLE_ERROR, MQRC_CONTEXT_NOT_AVAILABLE = 2093, 2097, 2098
    MQRC_FORMAT_ERROR, MQRC_SOURCE_CCSID_ERROR, MQRC_TARGET_CCSID_ERROR = 2110, 2111, 2115
    MQRC_NOT_CONVERTED = 2119
    MQRC_OUTCOME_PENDING = 2124
    MQRC_UNKNOWN_OBJECT_NAME = 2085
    MQRC_Q_MGR_QUIESCING = 2161
    MQRC_Q_MGR_STOPPING = 2162
    MQRC_HOST_NOT_AVAILABLE = 2538
    MQRC_UNKNOWN_CHANNEL_NAME = 2540


class CMQXC:
    MQCHT_CLNTCONN = 6
    MQXPT_TCP = 2
    MQCD_VERSION_7 = 7


class _Struct:
    """An MQI structure: attributes with IBM's defaults, overridable by keyword."""

    _defaults: dict[str, Any] = {}

    def __init__(self, **kw: Any):
        for k, v in {**self._defaults, **kw}.items():
            setattr(self, k, v)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class CD(_Struct):
    _defaults = {
        "ChannelName": b"",
        "ConnectionName": b"",
        "ChannelType": 0,
        "TransportType": 2,
        "SSLCipherSpec": b"",
        "HeartbeatInterval": 300,
        "Version": 11,
    }


class SCO(_Struct):
    _defaults = {"KeyRepository": b""}


class MD(_Struct):
    _defaults = {
        "MsgId": b"\x00" * 24,
        "CorrelId": b"\x00" * 24,
        "Format": CMQC.MQFMT_NONE,
        "Encoding": CMQC.MQENC_NATIVE,
        "CodedCharSetId": CMQC.MQCCSI_Q_MGR,
        "Persistence": CMQC.MQPER_PERSISTENCE_AS_Q_DEF,
        "Priority": -1,
        "Expiry": -1,
        "BackoutCount": 0,
        "ReplyToQ": b"",
        "ReplyToQMgr": b"",
        "UserIdentifier": b"",
        "AccountingToken": b"",
        "ApplIdentityData": b"",
        "PutApplType": 0,
        "PutApplName": b"",
        "PutDate": b"",
        "PutTime": b"",
        "ApplOriginData": b"",
    }


class GMO(_Struct):
    _defaults = {"Options": CMQC.MQGMO_NO_WAIT, "WaitInterval": 0}


class PMO(_Struct):
    _defaults = {"Options": 0, "Context": 0}  # Context: the input queue's handle (MQHOBJ)


class OD(_Struct):
    _defaults = {"ObjectName": b""}


_BYTES = (
    "MsgId",
    "CorrelId",
    "Format",
    "ReplyToQ",
    "ReplyToQMgr",
    "UserIdentifier",
    "AccountingToken",
    "ApplIdentityData",
    "PutApplName",
    "PutDate",
    "PutTime",
    "ApplOriginData",
)


class _Warned(Exception):
    def __init__(self, reply: dict):
        super().__init__(reply["reason"])
        self.comp, self.reason, self.reply = reply["comp"], reply["reason"], reply


def _appl_name() -> str:
    """The name a client gives the queue manager for PutApplName in the default context: the
    MQAPPLNAME environment variable, else the program's name (last 28 characters)."""
    name = os.environ.get("MQAPPLNAME") or os.path.basename(sys.argv[0] if sys.argv else "") or "python"
    return name[-28:]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _packed(value: Any, size: int) -> str:
    """A CHAR field of an MQI structure as MQOpts.pack sends it: str as ASCII, cut to `size`."""
    raw = value.encode("ascii") if isinstance(value, str) else bytes(value or b"")
    return raw[:size].decode("ascii", "replace").rstrip(" \x00")


def _object_name(value: Any) -> str:
    """An MQOD ObjectName as the real driver sends it: ASCII (UnicodeEncodeError otherwise, from
    ensure_strings_are_bytes) and cut to 48 bytes without a word (MQOpts.pack)."""
    raw = value.encode("ascii") if isinstance(value, str) else bytes(value or b"")
    return raw[:48].decode("ascii", "replace").rstrip(" \x00")


def _is_set(value: bytes) -> bool:
    return bool(value.strip(b"\x00"))


def _md_out(md: MD) -> dict:
    return {k: (getattr(md, k).hex() if k in _BYTES else getattr(md, k)) for k in MD._defaults}


def _md_in(md: MD, data: dict) -> None:
    for k, v in data.items():
        setattr(md, k, bytes.fromhex(v) if k in _BYTES else v)


class QueueManager:
    def __init__(self, name: str | bytes | None = "", disconnect_on_exit: bool = True):
        self._sock: socket.socket | None = None
        self._rfile = None
        self._lock = threading.Lock()
        if name is not None:
            raise MQMIError(CMQC.MQCC_FAILED, 2012)  # MQRC_ENVIRONMENT_ERROR: no local bindings here

    def connect_with_options(self, name: str | bytes, *args: Any, **kw: Any) -> None:
        """As ibmmq's (mqqmgr.py): the name through ensure_strings_are_bytes (ASCII: any other
        character raises UnicodeEncodeError), the MQCD packed by mqcd.py's fixed fields, which
        cut ChannelName to 20 bytes and ConnectionName to 264 without a word (struct "s")."""
        name = name.encode("ascii") if isinstance(name, str) else name
        cd = kw.get("cd") or (args[0] if args else None)
        if cd is None:
            raise PYIFError("the stand-in only makes client connections: pass cd=CD(...)")
        channel, conn_name = _packed(cd.ChannelName, 20), _packed(cd.ConnectionName, 264)
        last = CMQC.MQRC_HOST_NOT_AVAILABLE
        for where in conn_name.split(","):
            host, _, port = where.strip().partition("(")
            try:
                sock = socket.create_connection((host, int(port.rstrip(")"))), timeout=10)
            except (OSError, ValueError):
                continue
            self._sock, self._rfile = sock, sock.makefile("rb")
            try:
                self._call(
                    "connect",
                    qmgr=_text(name),
                    channel=channel,
                    user=kw.get("user"),
                    password=kw.get("password"),
                    appl_name=_appl_name(),
                )
                return
            except MQMIError as e:
                last = e.reason
                self._close()
        raise MQMIError(CMQC.MQCC_FAILED, last)

    def connect_tcp_client(
        self,
        name: str,
        cd: CD,
        channel: str,
        conn_name: str,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        cd.ChannelName, cd.ConnectionName = channel, conn_name
        self.connect_with_options(name, cd=cd, user=user, password=password)

    def _call(self, op: str, timeout: float = 10.0, **args: Any) -> dict:
        with self._lock:
            if self._sock is None:
                raise MQMIError(CMQC.MQCC_FAILED, CMQC.MQRC_HCONN_ERROR)
            try:
                self._sock.settimeout(timeout)
                self._sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
                line = self._rfile.readline()
            except OSError:
                line = b""
            if not line:
                self._close()
                raise MQMIError(CMQC.MQCC_FAILED, CMQC.MQRC_CONNECTION_BROKEN)
            reply = json.loads(line)
            if reply["comp"] == CMQC.MQCC_WARNING and "md" in reply and "b64" in reply:
                raise _Warned(reply)  # a get that completed with a warning: Queue.get raises
            if reply["comp"]:
                raise MQMIError(reply["comp"], reply["reason"])
            return reply

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._rfile = None

    def is_connected(self) -> bool:
        return self._sock is not None

    def commit(self) -> None:  # MQCMIT: any completion but MQCC_OK raises (mqqmgr.py)
        self._call("commit")

    def backout(self) -> None:
        self._call("backout")

    def disconnect(self) -> None:
        if self._sock is None:
            raise PYIFError("not connected")
        try:
            self._call("disc")
        finally:
            self._close()


class Queue:
    """As ibmmq's Queue (mqqueue.py): opened at once when given a name and options, else on the
    first get (MQOO_INPUT_AS_Q_DEF), put (MQOO_OUTPUT) or inquire (MQOO_INQUIRE); the queue
    manager gives a handle (get_handle(), what PMO.Context names); close() is MQCLOSE."""

    def __init__(
        self, qmgr: QueueManager, q_desc: str | bytes | OD | None = None, open_opts: int | None = None
    ):
        self._qm = qmgr
        self._name = _object_name(q_desc.ObjectName if isinstance(q_desc, OD) else q_desc)
        self._hobj = 0
        self._prev_length = 4096  # mqqueue.Queue: "Set a default length for MQGET buffer"
        if q_desc is not None and open_opts is not None:
            self._open(open_opts)

    def _open(self, options: int) -> None:
        self._hobj = self._qm._call("open", queue=self._name, options=options)["hobj"]

    def get_handle(self) -> int:
        return self._hobj

    def get(self, max_length: int | None = None, md: MD | None = None, gmo: GMO | None = None) -> bytes:
        """As ibmmq 2.1's Queue.get (mqqueue.py), step for step: the buffer is max_length, else
        (None) the last length this Queue needed (4096 at first; 0 with ACCEPT_TRUNCATED_MSG).
        MQCC_OK: the data. Any other outcome but 2080 with max_length None (2079, 2080 with a
        max_length, any warning or failure): the MD filled on a warning, then MQMIError(comp,
        reason, message=data, original_length=DataLength). 2080 with max_length None: the MD
        filled (its MsgId/CorrelId select the same message again), its Encoding and
        CodedCharSetId put back, a second MQGET with DataLength (doubled with MQGMO_CONVERT),
        kept as this Queue's length; any warning or failure of that one raises MQMIError(comp,
        reason) WITHOUT the data and leaves the MD as it was before it."""
        md, gmo = md or MD(), gmo or GMO()
        if not self._hobj:
            self._open(CMQC.MQOO_INPUT_AS_Q_DEF)
        if max_length is None:
            length = 0 if gmo.Options & CMQC.MQGMO_ACCEPT_TRUNCATED_MSG else self._prev_length
        else:
            length = max_length
        encoding, ccsid = md.Encoding, md.CodedCharSetId
        comp, reason, data, got_md, data_length = self._mqget(md, gmo, length)
        if not comp:
            _md_in(md, got_md)
            return data
        if (
            reason == CMQC.MQRC_TRUNCATED_MSG_ACCEPTED
            or (reason == CMQC.MQRC_TRUNCATED_MSG_FAILED and max_length is not None)
            or reason != CMQC.MQRC_TRUNCATED_MSG_FAILED
        ):
            if comp == CMQC.MQCC_WARNING and got_md is not None:
                _md_in(md, got_md)
            raise MQMIError(comp, reason, message=data, original_length=data_length)
        original_length = data_length
        if got_md is not None:
            _md_in(md, got_md)
        md.Encoding, md.CodedCharSetId = encoding, ccsid
        if gmo.Options & CMQC.MQGMO_CONVERT:
            original_length *= 2
        self._prev_length = original_length
        comp, reason, data, got_md, _ = self._mqget(md, gmo, original_length)
        if comp:
            raise MQMIError(comp, reason)
        _md_in(md, got_md)
        return data

    def _mqget(self, md: MD, gmo: GMO, length: int) -> tuple[int, int, bytes, dict | None, int]:
        """One MQGET into a buffer of `length`: (comp, reason, data, the MD got or None,
        DataLength). A failure without a message (2033, a broken connection) raises MQMIError
        from _call, as ibmmqc's return of it makes Queue.get raise."""
        wait = gmo.WaitInterval if gmo.Options & CMQC.MQGMO_WAIT else 0
        try:
            reply = self._qm._call(
                "get",
                timeout=wait / 1000 + 10,
                hobj=self._hobj,
                wait_ms=wait,
                syncpoint=bool(gmo.Options & CMQC.MQGMO_SYNCPOINT),
                options=gmo.Options,
                msg_id=md.MsgId.hex() if _is_set(md.MsgId) else None,
                correl_id=md.CorrelId.hex() if _is_set(md.CorrelId) else None,
                ccsid=md.CodedCharSetId,  # what MQGMO_CONVERT converts to
                buffer=length,
            )
        except _Warned as w:  # completed with a warning, the message's MD and data with it
            body = base64.b64decode(w.reply["b64"])
            return w.comp, w.reason, body, w.reply["md"], int(w.reply.get("length", len(body)))
        body = base64.b64decode(reply["b64"])
        return 0, 0, body, reply["md"], int(reply.get("length", len(body)))

    def put(self, msg: str | bytes, md: MD | None = None, pmo: PMO | None = None) -> None:
        md, pmo = md or MD(), pmo or PMO()
        if isinstance(msg, str):
            msg, md.Format, md.CodedCharSetId = msg.encode("utf-8"), CMQC.MQFMT_STRING, 1208
        elif not isinstance(msg, bytes):
            raise TypeError(f"Message type is {type(msg)}. Convert to bytes.")
        if not self._hobj:
            self._open(CMQC.MQOO_OUTPUT)
        reply = self._qm._call(
            "put",
            hobj=self._hobj,
            b64=base64.b64encode(msg).decode(),
            md=_md_out(md),
            options=pmo.Options,
            context=pmo.Context,
            syncpoint=bool(pmo.Options & CMQC.MQPMO_SYNCPOINT),
            new_msg_id=bool(pmo.Options & CMQC.MQPMO_NEW_MSG_ID),
        )
        _md_in(md, reply["md"])

    def inquire(self, attr: int) -> Any:
        if not self._hobj:
            self._open(CMQC.MQOO_INQUIRE)
        value = self._qm._call("inquire", hobj=self._hobj, attr=attr)["value"]
        return value.encode() if isinstance(value, str) else value

    def close(self, options: int = 0) -> None:
        if not self._hobj:
            raise PYIFError("not open")
        self._qm._call("close", hobj=self._hobj)
        self._hobj = 0


def connect(
    queue_manager: str,
    channel: str | None = None,
    conn_info: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> QueueManager:
    qm = QueueManager(None)
    qm.connect_with_options(
        queue_manager,
        cd=CD(ChannelName=channel or "", ConnectionName=conn_info or ""),
        user=user,
        password=password,
    )
    return qm
