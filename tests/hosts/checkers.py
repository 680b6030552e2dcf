"""Jepsen-style checkers of the lab: they count every operation instead of sampling.

HttpChecker   steady GETs through the LB from the client host (5 s timeout each): ok, failed,
              timed out, and the worst latency of the window the test cares about.
AmqpChecker   numbered messages published with confirms into the channel's queue; lost = the
              numbers no server's lab.record accepted, duplicates counted.
MixedLoad     GETs and POSTs through the LB, each with its own id, to a service that records
              every run: what each client got, and (with lab.slow_runs) how often each ran.
OutgoingSender  numbered items POSTed through the LB to lab.send (self.outgoing.amqp.send each);
              lost = the numbers of requests answered 200 that never reached the queue.
stale_accepted  fencing: calls accepted under an epoch older than one already accepted anywhere.
EpochWatch    counts lease epoch changes while it runs.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Self

import pika
import pika.exceptions
import requests
import urllib3.exceptions

from zato.connector.amqp_channel import parking_queue

# A client's limit, well under HAProxy's `timeout server` (30 s): a request left hanging fails
# here. The slowest good path (a request the vanished host had received, found dead by TCP
# keep-alive after about 3 s, then replayed) once took over 5 s under the 3-process suite.
TIMEOUT = 10.0


@dataclass
class HttpResult:
    started: float  # monotonic
    latency: float
    outcome: str  # ok, failed, timeout


class ClientThreads:
    """`clients` threads in the lab's client host, each running _loop() until stop()."""

    lab: object
    clients: int

    def start(self) -> Self:
        self._stop = threading.Event()
        self._threads = [
            self.lab.net.in_host(self.lab.host("client"), self._loop) for _ in range(self.clients)
        ]
        return self

    def _loop(self) -> None:
        raise NotImplementedError

    def stop(self) -> Self:
        """Stop and join every thread (any number of times, also before start())."""
        if not hasattr(self, "_stop"):
            return self
        self._stop.set()
        for t in self._threads:
            t.join(TIMEOUT + 2)
        return self


@dataclass
class HttpChecker(ClientThreads):
    """`clients` threads in the client host, each a keep-alive session GETting `url` in a loop
    (with `headers`)."""

    lab: object
    url: str
    clients: int = 4
    results: list[HttpResult] = field(default_factory=list)
    headers: dict = field(default_factory=dict)

    def _loop(self) -> None:
        session = requests.Session()
        session.headers.update(self.headers)
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r = session.get(self.url, timeout=TIMEOUT)
                outcome = "ok" if r.status_code == 200 else f"failed:{r.status_code}"
            except requests.Timeout:
                outcome = "timeout"
            except requests.exceptions.ChunkedEncodingError:
                outcome = "cut"  # the headers came, then the body broke off: its host went away mid-response
            except requests.RequestException as e:
                outcome = f"failed:{type(e).__name__}"
            self.results.append(HttpResult(t0, time.monotonic() - t0, outcome))
            time.sleep(0.01)

    def counts(self, since: float = 0.0) -> dict:
        window = [r for r in self.results if r.started >= since]
        kinds = Counter(r.outcome if r.outcome in ("ok", "timeout", "cut") else "failed" for r in window)
        return {
            "sent": len(window),
            "ok": kinds["ok"],
            "failed": kinds["failed"],
            "timeout": kinds["timeout"],
            "cut": kinds["cut"],
            "worst": max((r.latency for r in window), default=0.0),
            "errors": sorted({r.outcome for r in window if r.outcome != "ok"}),
        }


@dataclass
class MixedLoad(ClientThreads):
    """`clients` threads in the client host, each a keep-alive session calling `url` (lab.slow
    with s=0, which records each run's id) in a loop; every `post_every`-th call is a POST.
    Each call has its own id (`run`-n); results[id] = (method, outcome), outcome one of ok,
    status:N (another answer), closed (the connection closed without any answer), timeout,
    cut (the body broke off), failed:Exception. A GET that ends closed, cut or timeout is sent
    again, up to `get_tries` in all (what a browser or curl does with an idempotent request on
    a closed connection); its outcome is the last one."""

    lab: object
    url: str
    run: str
    clients: int = 4
    post_every: int = 2
    get_tries: int = 1
    results: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._next = itertools.count()

    def _loop(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            n = next(self._next)
            method = "POST" if n % self.post_every == self.post_every - 1 else "GET"
            call_id = f"{self.run}-{n}"
            for _ in range(self.get_tries if method == "GET" else 1):
                outcome = self._call(session, method, f"{self.url}&id={call_id}")
                if outcome not in ("closed", "cut", "timeout"):
                    break
            self.results[call_id] = (method, outcome)

    @staticmethod
    def _call(session: requests.Session, method: str, url: str) -> str:
        try:
            r = session.request(method, url, json={} if method == "POST" else None, timeout=TIMEOUT)
            return "ok" if r.status_code == 200 else f"status:{r.status_code}"
        except requests.Timeout:
            return "timeout"
        except requests.exceptions.ChunkedEncodingError:
            return "cut"
        except requests.ConnectionError as e:
            # http.client's RemoteDisconnected: HAProxy closed a kept-alive connection instead of
            # answering (it does so when a request's server connection failed: the client may
            # send it again).
            if "RemoteDisconnected" in repr(e):
                return "closed"
            # The answer's head came and its body did not within TIMEOUT (lost packets of a lossy
            # link, each resent later and later): requests says a ConnectionError around urllib3's
            # ReadTimeoutError, not a Timeout. Once taken for a failure (a whole run, 2026-12-07).
            if any(isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in e.args):
                return "timeout"
            return f"failed:{type(e).__name__}:{_cause(e)}"  # which one: a reset, a refusal, ...
        except requests.RequestException as e:
            return f"failed:{type(e).__name__}"

    def counts(self, runs: Counter) -> dict:
        """What the clients saw, by method, and `runs` (id -> times run, lab.slow_runs): POSTs
        that ran more than once (twice_run) and the extra runs of GETs (replayed)."""
        out: dict = {}
        for method in ("GET", "POST"):
            mine = {i: o for i, (m, o) in self.results.items() if m == method}
            kinds = Counter(o for o in mine.values())
            out[method] = {
                "sent": len(mine),
                "ok": kinds["ok"],
                "not_ok": dict(sorted((k, v) for k, v in kinds.items() if k != "ok")),
                "twice_run": sum(1 for i in mine if runs[i] > 1),
                "extra_runs": sum(max(0, runs[i] - 1) for i in mine),
            }
        return out


def _cause(e: BaseException) -> str:
    """The innermost exception's type under requests' and urllib3's wrappers (ConnectionResetError,
    NewConnectionError, ...), or of `e` itself."""
    seen = e
    for _ in range(20):  # a chain is short; bounded all the same
        inner = seen.__cause__ or seen.__context__
        inner = inner or next((a for a in seen.args if isinstance(a, BaseException)), None)
        if inner is None or inner is seen:
            break
        seen = inner
    return type(seen).__name__


class AmqpPublisher:
    """Publishes {"n": i} with confirms into `queue` through the lab's broker route (from the
    root namespace: the client side of the broker is not under test)."""

    def __init__(self, queue: str, host: str = "127.0.0.1"):
        self.queue = queue
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(host, 5672, heartbeat=0))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.ch.queue_declare(queue, durable=True)
        self.published: list[int] = []
        self.channel = ""  # the Zato AMQP channel consuming the queue, when a test made one

    def publish(self, n: int) -> None:
        body = json.dumps({"n": n}).encode()
        self.ch.basic_publish("", self.queue, body, pika.BasicProperties(delivery_mode=2))
        self.published.append(n)

    def take_all(self) -> list[int]:
        """Every {"n": i} waiting in the queue now, taken off it (a consumer's view of it)."""
        got = []
        while (message := self.ch.basic_get(self.queue, auto_ack=True))[0] is not None:
            got.append(json.loads(message[2])["n"])
        return got

    def close(self, delete: bool = True) -> None:
        if delete:
            for q in (self.queue, parking_queue(self.queue)):
                try:
                    self.ch.queue_delete(q)
                except pika.exceptions.AMQPError:
                    self.ch = self.conn.channel()
        self.conn.close()


def delete_queues(queues: list[str], host: str = "127.0.0.1") -> list[str]:
    """Delete each queue and its parking queue where they still exist; returns those that did."""
    existed = []
    conn = pika.BlockingConnection(pika.ConnectionParameters(host, 5672, heartbeat=0))
    try:
        for q in [name for queue in queues for name in (queue, parking_queue(queue))]:
            ch = conn.channel()
            try:
                ch.queue_declare(q, passive=True)
            except pika.exceptions.ChannelClosedByBroker:  # 404: not there
                continue
            ch.queue_delete(q)
            existed.append(q)
            ch.close()
    finally:
        conn.close()
    return existed


def amqp_counts(published: list[int], accepted: list[dict]) -> dict:
    got = Counter(a["item"]["n"] for a in accepted if isinstance(a.get("item"), dict) and "n" in a["item"])
    return {
        "published": len(published),
        "lost": len(set(published) - set(got)),
        "duplicates": sum(c - 1 for c in got.values()),
    }


class OutgoingSender(ClientThreads):
    """`clients` threads in the client host, each POSTing {"items": [{"n": i}, ...]} (`batch`
    numbers a request, never reused) to `url` in a loop; `returned` holds the numbers of every
    request answered 200: the service's self.outgoing.amqp.send returned for each of them."""

    def __init__(self, lab: object, url: str, clients: int = 2, batch: int = 5):
        self.lab, self.url, self.clients, self.batch = lab, url, clients, batch
        self.returned: list[int] = []
        self.failed = 0
        self._next = itertools.count()

    def _loop(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            numbers = [next(self._next) for _ in range(self.batch)]
            try:
                r = session.post(self.url, json={"items": [{"n": n} for n in numbers]}, timeout=TIMEOUT)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                self.returned.extend(numbers)
            else:
                self.failed += 1
            time.sleep(0.02)


def outgoing_counts(returned: list[int], received: list[int]) -> dict:
    got = Counter(received)
    return {
        "returned": len(returned),
        "lost": len(set(returned) - set(got)),
        "duplicates": sum(c - 1 for c in got.values()),
    }


def stale_accepted(accepted: list[dict]) -> int:
    """Calls accepted under an epoch older than one accepted anywhere before them. Every host
    of the lab shares the machine's clock, so the services' timestamps order all servers."""
    stale, newest = 0, 0
    for a in sorted(accepted, key=lambda a: a["t"]):
        if a["epoch"] < newest:
            stale += 1
        newest = max(newest, a["epoch"])
    return stale


class EpochWatch:
    """Counts lease epoch changes seen while running (polls Redis from the root namespace)."""

    def __init__(self, lab: object, interval: float = 0.1):
        self.lab, self.interval = lab, interval
        self.epochs: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> EpochWatch:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                e = self.lab.epoch()
                if not self.epochs or self.epochs[-1] != e:
                    self.epochs.append(e)
            except Exception:  # noqa: BLE001 - Redis blips are not epoch changes
                pass
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return max(0, len(self.epochs) - 1)
