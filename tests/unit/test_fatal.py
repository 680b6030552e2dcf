"""zato.server.fatal's records and table: what a worker's slot says while requests begin and
end, and which CIDs a server refuses (a real ended process, a live one)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zato.server import fatal

CID = "K" + "A" * 27
OTHER = "K" + "B" * 27


def test_a_record_reads_back_and_a_long_path_is_cut_not_its_time():
    record = fatal.Record(123, CID, "GET", "/a\tb", 1700000000.25)
    assert fatal.decode(fatal.encode(record)) == record._replace(path="/a b")
    long = fatal.encode(record._replace(path="/x" * 500, method="M" * 100))
    assert len(long) <= fatal.SLOT - fatal.TEXT
    assert fatal.decode(long) == record._replace(path=("/x" * 500)[: fatal.PATH_MAX], method="M" * 16)
    assert fatal.decode(b"\0") is None
    assert fatal.decode(b"garbage\0") is None


def ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class Worker:
    def __init__(self, pid: int = 0):
        self.pid = pid


@pytest.fixture
def table():
    return fatal.Table(slots=4, ring=2)


def test_a_cid_alone_in_the_slot_of_a_worker_that_ended_is_refused(table):
    for _ in range(4):
        table.take(Worker())
    table.write(0, 1, fatal.encode(fatal.Record(ended_pid(), CID, "GET", "/x", 0.0)))
    table.write(1, 1, fatal.encode(fatal.Record(os.getpid(), OTHER, "GET", "/y", 0.0)))
    third = "K" + "C" * 27
    table.write(2, 3, fatal.encode(fatal.Record(ended_pid(), third, "GET", "/z", 0.0)))
    table.slot = 3  # the worker asking
    assert table.ended_a_worker(CID)
    assert not table.ended_a_worker(OTHER)  # its worker is alive: a client reusing its CID
    assert not table.ended_a_worker(third)  # one of three in flight: not told from the others
    assert not table.ended_a_worker("K" + "D" * 27)
    table.slot = 0  # its own slot is never evidence
    assert not table.ended_a_worker(CID)


def test_a_reaped_workers_only_request_goes_to_the_ring_for_keep_seconds(table, monkeypatch, caplog):
    worker = Worker(4242)
    table.take(worker)
    assert table.slot == 0
    table.write(0, 1, fatal.encode(fatal.Record(4242, CID, "GET", "/orders", 1000.0)))
    monkeypatch.setattr(fatal.time, "time", lambda: 1002.5)
    record = table.release(worker, "server1")
    assert record is not None and record.cid == CID
    said = f"server server1: worker 4242 ended while running cid {CID}, GET /orders (for 2.5 s), the only"
    assert said in caplog.text
    assert table.read(0) == (0, None)  # the slot is free for the next worker
    table.slot = 1
    assert table.ended_a_worker(CID)
    monkeypatch.setattr(fatal.time, "time", lambda: 1002.5 + fatal.KEEP)
    assert not table.ended_a_worker(CID)


def test_a_worker_ending_with_several_requests_says_so_and_refuses_none(table, caplog):
    worker = Worker(77)
    table.take(worker)
    table.write(0, 3, fatal.encode(fatal.Record(77, CID, "GET", "/a", 0.0)))
    assert table.release(worker, "s1") is None
    assert f"worker 77 ended with 3 requests in flight (the last to begin: cid {CID}, GET /a)" in caplog.text
    table.slot = None
    assert not table.ended_a_worker(CID)


def test_slots_are_reused_and_the_ring_keeps_the_latest(table):
    workers = [Worker() for _ in range(5)]
    for w in workers:
        table.take(w)
    assert table.slot is None  # a fifth worker has none: served, its crash unnamed
    table.release(workers[1], "s")
    table.take(workers[4])
    assert table.slot == 1
    for w in workers:
        table.release(w, "s")
    for i in range(3):  # three crashes through a ring of two
        w = Worker()
        table.take(w)
        table.write(table.slot, 1, fatal.encode(fatal.Record(1, f"K{i:027d}", "GET", "/", 0.0)))
        table.release(w, "s")
    table.slot = None
    assert not table.ended_a_worker(f"K{0:027d}")
    assert table.ended_a_worker(f"K{1:027d}") and table.ended_a_worker(f"K{2:027d}")


def test_the_slot_names_a_request_only_while_it_is_the_last_begun_and_not_ended(table):
    table.take(Worker())
    running = fatal.Running(table)
    a = running.begin(CID, "GET", "/a")
    assert table.read(0)[0] == 1 and table.read(0)[1].cid == CID
    b = running.begin(OTHER, "GET", "/b")
    assert table.read(0)[0] == 2 and table.read(0)[1].cid == OTHER
    running.end(a)  # not the one shown: the count goes down, B stays named
    assert table.read(0)[0] == 1 and table.read(0)[1].cid == OTHER
    running.end(b)
    assert table.read(0) == (0, None)
    a = running.begin(CID, "GET", "/a")
    b = running.begin(OTHER, "GET", "/b")
    running.end(b)  # A is alone again but was not the last to begin: unnamed, never misnamed
    assert table.read(0) == (1, None)
    running.end(a)
    assert table.read(0) == (0, None)
