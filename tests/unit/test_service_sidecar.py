"""The arbiter's connector-supervisor sidecar: respawn with backoff 0.5 s doubling to 10 s."""

from __future__ import annotations

from zato.server.sidecar import Sidecar


class FakeProc:
    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        return self.returncode


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_respawns_with_doubling_backoff_and_resets_after_a_healthy_run():
    clock, procs = Clock(), []

    def spawn(argv):
        procs.append(FakeProc(len(procs) + 1))
        return procs[-1]

    car = Sidecar(["x"], spawn=spawn, clock=clock)
    car.tick()
    assert car.pid == 1
    waits = []
    for _ in range(7):
        procs[-1].returncode = 1  # dies at once
        car.tick()
        assert car.pid is None
        start = clock.now
        while car.pid is None:
            clock.now += 0.25
            car.tick()
        waits.append(clock.now - start)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    clock.now += 60  # a long healthy run
    procs[-1].returncode = 0
    car.tick()
    clock.now += 0.5
    car.tick()
    assert car.pid == len(procs)


def test_stop_prevents_respawn():
    procs = []
    car = Sidecar(["x"], spawn=lambda argv: procs.append(FakeProc(1)) or procs[-1], clock=Clock())
    car.tick()
    procs[0].returncode = 0
    car.stop()
    car.tick()
    assert len(procs) == 1 and car.pid is None


class KillableProc(FakeProc):
    def kill(self):
        self.returncode = -9


def test_a_supervisor_without_progress_for_hang_after_is_killed_and_started_again():
    clock, procs, stamps = Clock(), [], {"now": 5}  # the stamp left by a supervisor before

    def spawn(argv):
        procs.append(KillableProc(len(procs) + 1))
        return procs[-1]

    car = Sidecar(["x"], spawn=spawn, clock=clock, progress=lambda: stamps["now"], hang_after=30.0)
    car.tick()
    for beat in range(6, 100):  # the new one beats: never hung
        stamps["now"] = beat
        clock.now += 1
        car.tick()
    assert car.pid == 1 and procs[0].returncode is None
    for _ in range(59):  # then it stops beating
        clock.now += 0.5
        car.tick()
    assert procs[0].returncode is None
    clock.now += 1
    car.tick()
    assert procs[0].returncode == -9  # killed
    clock.now += 0.5
    car.tick()  # its exit noticed, restart due after the backoff
    clock.now += 0.5
    car.tick()
    assert car.pid == 2


def test_a_supervisor_that_never_beat_is_not_taken_for_hung():
    """No file yet, or the one a supervisor before left: the check starts with the first
    stamp the new one writes (it may take long to start: imports, the ODB)."""
    for left in (None, 5):
        procs, clock = [], Clock()
        car = Sidecar(["x"], spawn=lambda argv, p=procs: p.append(KillableProc(1)) or p[-1], clock=clock,
                      progress=lambda s=left: s, hang_after=5.0)  # fmt: skip
        car.tick()
        for _ in range(100):
            clock.now += 1
            car.tick()
        assert procs[0].returncode is None


def test_an_arbiter_that_was_stopped_itself_gives_no_verdict():
    procs, clock, stamps = [], Clock(), {"now": 1}
    car = Sidecar(["x"], spawn=lambda argv: procs.append(KillableProc(1)) or procs[-1], clock=clock,
                  progress=lambda: stamps["now"], hang_after=30.0)  # fmt: skip
    car.tick()
    stamps["now"] = 2  # it beat once
    clock.now += 1
    car.tick()
    clock.now += 300  # the whole server was stopped five minutes
    car.tick()
    stamps["now"] = 3
    clock.now += 0.25
    car.tick()
    assert procs[0].returncode is None


def test_the_log_says_how_the_supervisor_ended_and_never_makes_up_a_code(caplog):
    """Before: 'exited with code 0' for a supervisor gunicorn's arbiter had reaped, SIGKILL or not."""
    clock, procs = Clock(), []

    def spawn(argv):
        procs.append(FakeProc(len(procs) + 1))
        return procs[-1]

    car = Sidecar(["x"], spawn=spawn, clock=clock)
    said = []
    for code, lost in ((-9, False), (0, True), (3, False)):
        car.tick()
        procs[-1].returncode = code
        procs[-1].status_lost = lost
        caplog.clear()
        car.tick()
        said.append(caplog.records[-1].getMessage().split(") ", 1)[1].split(" after")[0])
        clock.now += 20
    assert said == [
        "was killed by SIGKILL",
        "ended (its exit status went to gunicorn's arbiter, which reaps every child)",
        "exited with code 3",
    ]
