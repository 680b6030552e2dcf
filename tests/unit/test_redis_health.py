"""What a process logs of its Redis while it is away (zato.coord.health.RedisHealth), over a fake
clock: the first failure in full with which Redis and what to do, then at most one line a
minute with a count however often its threads fail, and one line when Redis answers again."""

from __future__ import annotations

import logging

from zato.common.errors import CoordDataError, CoordForbidden, CoordUnavailable
from zato.coord.health import RedisHealth

REFUSED = CoordUnavailable(
    "config events: ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."
)
WRONGPASS = CoordUnavailable(
    "config events: AuthenticationError: invalid username-password pair or user is disabled."
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:  # noqa: ANN001
    return [r.getMessage() for r in caplog.records if r.name == "zato.redis"]


def test_an_outage_is_one_line_then_one_a_minute_with_a_count_then_one_when_it_answers(caplog):
    clock = Clock()
    health = RedisHealth("redis://127.0.0.1:1/0", clock=clock)
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        for _ in range(130):  # every half second, from two threads: 260 failures in 65 s
            health.failed("config events", REFUSED)
            health.failed("membership heartbeat", REFUSED)
            clock.now += 0.5
        health.ok()
    said = lines(caplog)
    assert len(said) == 3, said
    assert said[0].startswith("Redis unreachable (config events at redis://127.0.0.1:1/0): ")
    assert "is Redis running there, and reachable from this host?" in said[0]
    assert said[1].startswith(
        "Redis still unreachable after 60 s at redis://127.0.0.1:1/0: 240 more failure(s)"
    )
    assert said[2] == "Redis answers again at redis://127.0.0.1:1/0 after 65.0 s (260 failure(s) meanwhile)"


def test_credentials_refused_say_to_mend_the_password(caplog):
    health = RedisHealth("redis://zato:******@127.0.0.1:1/0", clock=Clock())
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("config events", WRONGPASS)
        health.failed("config events", WRONGPASS)
    (said,) = lines(caplog)
    assert "Redis refuses the user or password of [kvdb] url" in said and "docs/redis-acl.md" in said


def test_a_read_that_works_ends_no_outage_of_writes_and_a_bug_is_no_outage(caplog):
    from zato.common.errors import CoordRefused

    health = RedisHealth(clock=Clock())
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed(
            "lease check", CoordRefused("lease check: Redis refuses writes (READONLY: it is a replica)")
        )
        health.ok(wrote=False)
        assert health.down_since is not None
        health.ok()
        health.failed("status write", CoordDataError("status write: WRONGTYPE"))
    said = lines(caplog)
    assert len(said) == 3 and said[1].startswith("Redis answers again after"), said
    assert said[0].startswith("Redis is a read-only replica (lease check): "), said
    assert said[2].startswith("Redis refused status write: status write: WRONGTYPE; a key of the"), said
    assert health.down_since is None


def test_an_unblocked_take_in_a_failover_is_part_of_the_outage_not_a_bug(caplog):
    from zato.common.errors import CoordRefused

    health = RedisHealth(clock=Clock())
    unblocked = CoordDataError(
        "invoke_async take: ResponseError: UNBLOCKED force unblock (master -> replica?)"
    )
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("invoke_async", unblocked, answered_is_bug=False)
        health.failed(
            "invoke_async",
            CoordRefused("invoke_async register: Redis refuses writes (READONLY: it is a replica)"),
            False,
        )
    (said,) = lines(caplog)
    assert said.startswith("Redis is a read-only replica (invoke_async): ") and "check [kvdb] url" in said


NOPERM = CoordForbidden(
    "acquiring the lease: Redis's ACL refuses it to the user of [kvdb] url (NOPERM: this user has no"
    " permissions to run the 'evalsha' command); grant it (docs/redis-acl.md)"
)
NOPERM_KEY = CoordForbidden(
    "membership heartbeat: Redis's ACL refuses it to the user of [kvdb] url (NOPERM: this user has no"
    " permissions to access one of the keys used as arguments); grant it (docs/redis-acl.md)"
)


def test_refusals_of_commands_are_said_once_each_then_once_a_minute_and_no_answer_ends_them(caplog):
    """NOPERM (its ACL) and WRONGTYPE (a key of another type): before, one ERROR line at every
    retry; a success of another command (the heartbeat, each second) must not end them."""
    clock = Clock()
    health = RedisHealth("redis://zato-x:******@127.0.0.1:1/0", clock=clock, cluster="prod")
    wrongtype = CoordDataError(
        "membership heartbeat: ResponseError: WRONGTYPE Operation against a key holding the wrong kind"
        " of value (the key: zato:prod:member:server1)"
    )
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        for _ in range(130):  # every half second: 130 of each in 65 s
            health.failed("lease check", NOPERM)
            health.ok()  # the heartbeat works meanwhile
            health.failed("membership heartbeat", NOPERM_KEY)
            health.failed("membership heartbeat", wrongtype)
            clock.now += 0.5
    said = lines(caplog)
    assert len(said) == 6, said  # each in full, then each once more after 60 s with its count
    first = [s for s in said if "(retried as before" in s]
    assert len(first) == 3, said
    assert "'evalsha' command); add +evalsha to the ACL rules of [kvdb] url's user" in first[0]
    assert "one of the keys used as arguments); add ~zato:prod:* to the ACL rules" in first[1]
    assert first[0].startswith("Redis at redis://zato-x:******@127.0.0.1:1/0 refused lease check: ")
    assert "redis-cli DEL zato:prod:member:server1" in first[2]
    again = [s for s in said if s not in first]
    assert all(" still refuses " in s and "120 more time(s)" in s for s in again), again
    assert health.down_since is None  # no outage: no 'answers again' line


def test_a_refusal_that_comes_back_after_a_quiet_minute_is_said_in_full_again(caplog):
    clock = Clock()
    health = RedisHealth(clock=clock)
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("lease check", NOPERM)
        clock.now += 61  # mended meanwhile, then refused again
        health.failed("lease check", NOPERM)
    said = lines(caplog)
    assert len(said) == 2 and all("add +evalsha" in s for s in said), said


def test_every_role_reads_the_same_hint_from_what_to_do():
    from zato.common.errors import CoordRefused
    from zato.coord.health import REPLICA, what_to_do

    readonly = CoordRefused("membership read: Redis refuses writes (READONLY: it is a replica): ...")
    assert what_to_do(readonly) == REPLICA
    channel = CoordForbidden(
        "x: (NOPERM: this user has no permissions to access one of the channels used as arguments)"
    )
    assert what_to_do(channel, cluster="prod").startswith("add &zato:prod:* to the ACL rules")
    assert what_to_do(REFUSED).startswith("is Redis running there")
    assert what_to_do(WRONGPASS).startswith("Redis refuses the user or password")
    from redis.sentinel import MasterNotFoundError

    from zato.coord.client import translate

    try:  # behind Sentinel: the Sentinels are what to look at, not [kvdb] url (there is none)
        with translate("membership heartbeat"):
            raise MasterNotFoundError("No master found for 'mymaster' : Sentinel<...>")
    except CoordUnavailable as e:
        assert what_to_do(e).startswith("are the Sentinels of [kvdb] sentinels running"), what_to_do(e)
        assert "No master found for 'mymaster' (no Sentinel of [kvdb] sentinels that answers" in str(e)
    else:
        raise AssertionError("translate let MasterNotFoundError through")


def test_two_different_errors_of_two_calls_are_each_said(caplog):
    """Errors Redis answered that name no command or key (a failing script: a bug) are told
    apart by the call that met them: neither hides the other's first line."""
    health = RedisHealth(clock=Clock())
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        for _ in range(3):
            health.failed("lease renewal", CoordDataError("renewing the lease: ResponseError: ERR script"))
            health.failed("status write", CoordDataError("status write: ResponseError: ERR another"))
    said = lines(caplog)
    assert len(said) == 2 and "lease renewal" in said[0] and "status write" in said[1], said


def test_a_master_demoted_behind_sentinel_is_said_as_a_replica_not_as_redis_unreachable(caplog):
    """redis-py behind Sentinel turns READONLY from a demoted master into a ConnectionError
    ('The previous master is now a slave'): before, 'Redis unreachable (...): ...; is Redis
    running there'."""
    health = RedisHealth("sentinel 127.0.0.1:26379 master m", clock=Clock())
    demoted = CoordUnavailable("lease renewal: ConnectionError: The previous master is now a slave")
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("lease renewal", demoted)
        health.ok(wrote=False)  # it asked the Sentinels again: the new master answers
    said = lines(caplog)
    assert said[0].startswith("Redis at sentinel 127.0.0.1:26379 master m is a read-only replica ("), said
    assert "a failover may be under way" in said[0] and len(said) == 2, said


def test_a_connection_closed_while_redis_refuses_the_password_is_part_of_that_outage(caplog):
    """A password change is followed by CLIENT KILL: a worker's subscription may meet the new
    password before its invoke_async take meets its killed connection. Before, that connection
    was said as 'Redis unreachable' and the refusal after it in full again; a connection that
    cannot be made (Redis stopped meanwhile) is still said."""
    health = RedisHealth(clock=Clock())
    closed = CoordUnavailable("invoke_async take: ConnectionError: Connection closed by server.")
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("config events", WRONGPASS)
        health.failed("invoke_async", closed)
        health.failed("invoke_async", WRONGPASS)
        health.failed("config events", REFUSED)
    said = lines(caplog)
    assert len(said) == 2, said
    assert "Redis refuses the user or password" in said[0] and "Connection refused" in said[1], said


def test_an_answer_to_a_call_sent_before_the_outage_ends_nothing(caplog):
    """A lease renewal sent at 100.0 and answered just before Redis stopped, its thread reporting
    after the events listener's failure at 100.2: no 'answers again', and no second 'unreachable'
    line for the same outage. A call sent after the failure, answered, ends it."""
    clock = Clock()
    health = RedisHealth("redis://127.0.0.1:1/0", clock=clock)
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        asked = clock()
        clock.now += 0.2
        health.failed("config events", REFUSED)
        health.ok(asked_at=asked)
        assert health.down_since == 100.2
        clock.now += 0.3
        health.failed("lease renewal", REFUSED)
        clock.now += 5
        asked = clock()
        health.ok(asked_at=asked)
    said = lines(caplog)
    assert len(said) == 2, said
    assert said[0].startswith("Redis unreachable (config events at ")
    assert said[1] == "Redis answers again at redis://127.0.0.1:1/0 after 5.3 s (2 failure(s) meanwhile)"


def test_a_redis_that_fails_and_answers_in_turn_is_one_outage_said_once_a_minute(caplog):
    """Redis's default user turned off under processes that use it: connections already made
    still work, new ones are refused, so a worker's subscription fails while its take answers.
    Before: 'unreachable' in full and 'answers again' at every turn, two lines every 1.5 s (400
    in 5 minutes). Now the first turn is said, then one outage said again once a minute, ended
    once Redis has answered for STEADY s with no failure."""
    clock = Clock()
    health = RedisHealth("redis://127.0.0.1:6379/0", clock=clock)
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        for _ in range(200):  # 5 minutes
            health.failed("config events", WRONGPASS)
            clock.now += 0.75
            health.ok()  # the take, on a connection made before
            clock.now += 0.75
        for _ in range(11):  # mended: it answers, each second
            health.ok()
            clock.now += 1
    said = lines(caplog)
    first = "Redis unreachable (config events at redis://127.0.0.1:6379/0): "
    assert said[0].startswith(first) and "Redis refuses the user or password of [kvdb] url" in said[0], said
    assert said[1] == "Redis answers again at redis://127.0.0.1:6379/0 after 0.8 s (1 failure(s) meanwhile)"
    assert said[2].startswith(first) and "Redis refuses the user or password of [kvdb] url" in said[2], said
    assert (
        "1 s after it answered: it fails and answers in turn (said again at most once every 60 s" in said[2]
    )
    still = [line for line in said if " still refuses the user or password after " in line]
    assert len(still) == 4 and len(said) == 3 + 4 + 1, said  # once a minute over the 5 minutes
    assert said[-1].startswith("Redis answers again at redis://127.0.0.1:6379/0 after "), said
    assert "(199 failure(s) meanwhile, answering between them 199 time(s))" in said[-1], said


def test_an_outage_a_minute_after_the_last_one_ended_is_said_in_full_and_ends_at_once(caplog):
    clock = Clock()
    health = RedisHealth("redis://127.0.0.1:1/0", clock=clock)
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("config events", REFUSED)
        clock.now += 1
        health.ok()
        clock.now += 61
        health.failed("config events", REFUSED)
        clock.now += 1
        health.ok()
    said = lines(caplog)
    assert len(said) == 4, said
    assert "(retried as before; " in said[2] and "in turn" not in said[2], said
    assert said[3] == "Redis answers again at redis://127.0.0.1:1/0 after 1.0 s (1 failure(s) meanwhile)"
