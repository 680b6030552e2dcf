"""Queue managers for the IBM MQ connector tests: the stand-in (tests/ibmmq_standin, always) or a
real IBM MQ queue manager when ZATO_TEST_IBMMQ=host(port)/CHANNEL/QMGR names one.

Each test runs twice, with kind "stand-in" and "real" (skipped, saying why, unless
ZATO_TEST_IBMMQ is set). Both offer the same few calls (put, drain, depth, queue names, the
connectors' PYTHONPATH); break_connections and restart exist only for the stand-in
(skipped on a real one, saying why).
Real queue manager: ZATO_TEST_IBMMQ_USER / ZATO_TEST_IBMMQ_PASSWORD (default app / passw0rd) and
ZATO_TEST_IBMMQ_QUEUES=IN,BACKOUT,OUT (default DEV.QUEUE.1,DEV.QUEUE.2,DEV.QUEUE.3, the IBM MQ
developer image's queues; the tests empty them first).
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import uuid

import pytest

from tests.support import free_port, stop_process, wait_for

STANDIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ibmmq_standin")
REAL = os.environ.get("ZATO_TEST_IBMMQ", "")


def standin_client():  # noqa: ANN201 - the stand-in ibmmq module, loaded under a private name
    """The stand-in `ibmmq` module for this test process, without making `import ibmmq` find it."""
    name = "zato_tests_ibmmq_standin_client"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(STANDIN_DIR, "ibmmq", "__init__.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def with_standin_path(env: dict | None = None) -> dict:
    """`env` (default os.environ) with the stand-in first on PYTHONPATH: `import ibmmq` finds it."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (STANDIN_DIR, env.get("PYTHONPATH", "")) if p)
    return env


class StandinQM:
    """The stand-in queue manager process (tests/ibmmq_standin/qmgr.py) on a free port."""

    is_real = False

    def __init__(self, qmgr: str = "QM1", channel: str = "DEV.APP.SVRCONN"):
        self.qmgr, self.channel, self.port = qmgr, channel, free_port()
        self.conn_name = f"127.0.0.1({self.port})"
        self.user, self.password = "app", "s3cret-mq"
        tag = uuid.uuid4().hex[:6].upper()
        self.queues = {"in": f"ZT.IN.{tag}", "backout": f"ZT.BACKOUT.{tag}", "out": f"ZT.OUT.{tag}"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.join(STANDIN_DIR, "qmgr.py"),
                "--port",
                str(self.port),
                "--qmgr",
                qmgr,
                "--channel",
                channel,
                "--user",
                self.user,
                "--password",
                self.password,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(self._listening, timeout=15, what="the stand-in queue manager to listen")
        for q in self.queues.values():
            self.admin("define", queue=q)
        self.mq = standin_client()

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def admin(self, op: str, **args) -> dict:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(json.dumps({"op": "admin." + op, "args": args}).encode() + b"\n")
            reply = json.loads(s.makefile("rb").readline())
        if reply["comp"]:
            raise AssertionError(f"stand-in admin {op} failed: reason {reply['reason']}")
        return reply

    def define(  # noqa: PLR0913 - one keyword per queue attribute
        self,
        queue: str,
        boqname: str = "",
        bothresh: int = 0,
        share: bool = True,
        defsopt: str = "shared",
        maxdepth: int = 0,
        put: bool = True,
        get: bool = True,
        defpsist: bool = False,
        defprty: int = 0,
    ) -> None:
        """DEFINE/ALTER QLOCAL: BOQNAME, BOTHRESH, SHARE|NOSHARE, DEFSOPT(SHARED|EXCL), MAXDEPTH
        (0: no limit), PUT(ENABLED|DISABLED), GET(ENABLED|DISABLED), DEFPSIST(YES|NO), DEFPRTY."""
        self.admin(
            "define",
            queue=queue,
            boqname=boqname,
            bothresh=bothresh,
            share=share,
            defsopt=defsopt,
            maxdepth=maxdepth,
            put=put,
            get=get,
            defpsist=defpsist,
            defprty=defprty,
        )

    def alter_force(self, queue: str) -> None:
        """ALTER ... FORCE of `queue` while open: each handle on it answers 2041 from now on."""
        self.admin("alter_force", queue=queue)

    def deny(self, queue: str, *what: str) -> None:
        """The test user lacks these authorities on `queue` (inq, get, put, passall)."""
        self.admin("deny", queue=queue, what=list(what))

    def deny_connect(self, deny: bool = True) -> None:
        """The test user lacks +connect on the queue manager (False: granted again)."""
        self.admin("deny_connect", deny=deny)

    def alter_qmgr(self, maxumsgs: int) -> None:
        """ALTER QMGR MAXUMSGS: the most uncommitted messages in one unit of work."""
        self.admin("alter_qmgr", maxumsgs=maxumsgs)

    def input_handles(self, queue: str) -> dict:
        """{"shared": N, "exclusive": N}: the input handles open on `queue`."""
        return {
            k: v for k, v in self.admin("input_handles", queue=queue).items() if k in ("shared", "exclusive")
        }

    def browse(self, queue: str) -> list[tuple[bytes, dict]]:
        return [(base64.b64decode(m["b64"]), m["md"]) for m in self.admin("browse", queue=queue)["messages"]]

    def warn_gets(self, queue: str, reason: int, truncate: int | None = None) -> None:
        """Gets from `queue` complete with MQCC_WARNING and `reason` (0: no more)."""
        self.admin("warn_gets", queue=queue, reason=reason, truncate=truncate)

    def warn_commits(self, reason: int) -> None:
        """Every MQCMIT completes with MQCC_WARNING and `reason` (0: no more; 2003 backs out)."""
        self.admin("warn_commits", reason=reason)

    def drain(self, queue: str) -> list[tuple[bytes, dict]]:
        return [(base64.b64decode(m["b64"]), m["md"]) for m in self.admin("drain", queue=queue)["messages"]]

    def depth(self, queue: str) -> tuple[int, int]:
        """(committed messages waiting, gets held uncommitted by some connection)."""
        d = self.admin("depth", queue=queue)
        return d["depth"], d["uncommitted_gets"]

    def break_connections(self, reason: int = 2009) -> None:
        self.admin("break", reason=reason)

    def warn_puts(self, queue: str, reason: int) -> None:
        """Puts to `queue` are taken and complete with MQCC_WARNING and `reason` (0: no more)."""
        self.admin("warn_puts", queue=queue, reason=reason)

    def restart(self, down_ms: int = 1500) -> None:
        self.admin("restart", down_ms=down_ms)

    def counters(self) -> dict:
        return self.admin("counters")

    def env(self, env: dict | None = None) -> dict:
        return with_standin_path(env)

    def close(self) -> None:
        stop_process(self.proc)


class RealQM:
    """A real queue manager named by ZATO_TEST_IBMMQ (needs the real `ibmmq` installed)."""

    is_real = True

    def __init__(self):
        self.mq = importlib.import_module("ibmmq")
        where, self.channel, self.qmgr = REAL.split("/")
        self.conn_name = where
        self.user = os.environ.get("ZATO_TEST_IBMMQ_USER", "app")
        self.password = os.environ.get("ZATO_TEST_IBMMQ_PASSWORD", "passw0rd")
        names = os.environ.get("ZATO_TEST_IBMMQ_QUEUES", "DEV.QUEUE.1,DEV.QUEUE.2,DEV.QUEUE.3").split(",")
        self.queues = dict(zip(("in", "backout", "out"), names, strict=True))
        for q in self.queues.values():
            self.drain(q)

    def define(self, queue: str, *args: object, **kw: object) -> None:
        pytest.skip("setting queue attributes needs administration rights on a real queue manager")

    def deny(self, queue: str, *what: str) -> None:
        pytest.skip("taking authorities away needs administration rights on a real queue manager")

    def alter_force(self, queue: str) -> None:
        pytest.skip("ALTER ... FORCE needs administration rights on a real queue manager")

    def deny_connect(self, deny: bool = True) -> None:
        pytest.skip("taking +connect away needs administration rights on a real queue manager")

    def alter_qmgr(self, maxumsgs: int) -> None:
        pytest.skip("ALTER QMGR needs administration rights on a real queue manager")

    def input_handles(self, queue: str) -> dict:
        pytest.skip("reading the queue's open handles (DISPLAY QSTATUS) is not done by these tests")

    def browse(self, queue: str) -> list[tuple[bytes, dict]]:
        pytest.skip("browsing a real queue is not done by these tests")

    def warn_gets(self, queue: str, reason: int, truncate: int | None = None) -> None:
        pytest.skip("gets that complete with a warning on demand need the stand-in queue manager")

    def warn_commits(self, reason: int) -> None:
        pytest.skip("commits that complete with a warning on demand need the stand-in queue manager")

    def drain(self, queue: str) -> list[tuple[bytes, dict]]:
        qm, out = client(self), []
        try:
            q = self.mq.Queue(qm, queue)
            while True:
                md = self.mq.MD()
                try:
                    body = q.get(None, md, self.mq.GMO())
                except self.mq.MQMIError as e:
                    if e.reason == 2033:
                        return out
                    raise
                out.append(
                    (
                        body,
                        {
                            "BackoutCount": md.BackoutCount,
                            "MsgId": md.MsgId.hex(),
                            "CorrelId": md.CorrelId.hex(),
                            "Persistence": md.Persistence,
                            "Format": md.Format.hex(),
                            "CodedCharSetId": md.CodedCharSetId,
                        },
                    )
                )
        finally:
            qm.disconnect()

    def depth(self, queue: str) -> tuple[int, int]:
        pytest.skip("queue depth of a real queue manager is not read by these tests")

    def break_connections(self, reason: int = 2009) -> None:
        pytest.skip("breaking connections on demand needs the stand-in queue manager")

    def warn_puts(self, queue: str, reason: int) -> None:
        pytest.skip("puts that complete with a warning on demand need the stand-in queue manager")

    def restart(self, down_ms: int = 1500) -> None:
        pytest.skip("restarting a real queue manager is not done by these tests")

    def env(self, env: dict | None = None) -> dict:
        return dict(os.environ if env is None else env)

    def close(self) -> None:
        pass


QM_KINDS = ("stand-in", "real")  # every IBM MQ test runs against both; "real" skips without one
REAL_SKIP = (
    "no real IBM MQ queue manager: set ZATO_TEST_IBMMQ=host(port)/CHANNEL/QMGR "
    "(and pip install 'zato-ha[ibmmq]') to run this test against one"
)


def make_qm(kind: str = "stand-in") -> StandinQM | RealQM:
    if kind == "real":
        if not REAL:
            pytest.skip(REAL_SKIP)
        return RealQM()
    return StandinQM()


def client(qm: StandinQM | RealQM):  # noqa: ANN201 - a connected QueueManager of qm's module
    m = qm.mq
    cd = m.CD(
        ChannelName=qm.channel.encode(),
        ConnectionName=qm.conn_name.encode(),
        ChannelType=m.CMQXC.MQCHT_CLNTCONN,
        TransportType=m.CMQXC.MQXPT_TCP,
    )
    conn = m.QueueManager(None)
    conn.connect_with_options(qm.qmgr, cd=cd, user=qm.user, password=qm.password)
    return conn


def put(qm: StandinQM | RealQM, queue: str, bodies: list[bytes], batch: int = 0, **md: object) -> None:
    """Put each body under syncpoint through the queue manager's own client module, committing
    every `batch` puts (0: once, at the end); `md`: more MQMD fields (CorrelId, ReplyToQ...)."""
    m = qm.mq
    conn = client(qm)
    try:
        q = m.Queue(conn, queue, m.CMQC.MQOO_OUTPUT)
        for i, body in enumerate(bodies, 1):
            pmo = m.PMO(Options=m.CMQC.MQPMO_SYNCPOINT | m.CMQC.MQPMO_NEW_MSG_ID)
            q.put(body, m.MD(Persistence=m.CMQC.MQPER_PERSISTENT, **md), pmo)
            if batch and i % batch == 0:
                conn.commit()
        conn.commit()
        q.close()
    finally:
        conn.disconnect()


def jms_rfh2(folders: list[str], inner_format: bytes = b"MQSTR   ", ccsid: int = 1208) -> bytes:
    """An MQRFH2 version 2 as a JMS sender puts it before the body (MQMD Format MQHRF2, native
    x86-64 encoding 546): `folders` such as "<usr><shop>eu</shop></usr>", each padded to 4."""
    data = b""
    for f in folders:
        raw = f.encode()
        raw += b" " * (-len(raw) % 4)
        data += struct.pack("<i", len(raw)) + raw
    head = struct.pack("<4sii", b"RFH ", 2, 36 + len(data))
    head += struct.pack("<ii8sii", 546, ccsid, inner_format, 0, 1208)
    return head + data


def definitions(odb, cluster: str, qm: StandinQM | RealQM, **channel) -> None:  # noqa: ANN001
    """An ibm-mq-def "qm", a channel "in" on the in queue to conn.record (backout queue set)
    and an outgoing connection "out" to the out queue."""
    from zato.odb import connectors

    connectors.create(
        odb,
        cluster,
        "ibm-mq-def",
        {
            "name": "qm",
            "queue_manager": qm.qmgr,
            "channel": qm.channel,
            "conn_name": qm.conn_name,
            "username": qm.user,
            "password": qm.password,
            "heartbeat": 5,
        },
    )
    connectors.create(
        odb,
        cluster,
        "ibm-mq-channel",
        {
            "name": "in",
            "def": "qm",
            "queue": qm.queues["in"],
            "service": channel.pop("service", "conn.record"),
            "backout_queue": qm.queues["backout"],
            **channel,
        },
    )
    connectors.create(
        odb, cluster, "ibm-mq-outgoing", {"name": "out", "def": "qm", "queue": qm.queues["out"]}
    )
