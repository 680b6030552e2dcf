"""Dashboard sessions and CSRF tokens on a fake clock."""

from __future__ import annotations

from zato.dashboard.auth import LoginThrottle, Sessions, csrf_ok


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_only_the_admin_credentials_log_in_and_sessions_expire() -> None:
    clock = Clock()
    sessions = Sessions("admin", "s3cret", minutes=1, clock=clock)
    assert sessions.login("admin", "wrong") is None
    assert sessions.login("", "") is None
    assert sessions.login("root", "s3cret") is None
    token = sessions.login("admin", "s3cret")
    assert token and sessions.get(token).user == "admin"
    assert sessions.get("forged") is None
    clock.t = 61
    assert sessions.get(token) is None


def test_each_session_has_its_own_csrf_token_and_logout_ends_it() -> None:
    sessions = Sessions("admin", "pw", minutes=5, clock=Clock())
    a, b = sessions.login("admin", "pw"), sessions.login("admin", "pw")
    sa, sb = sessions.get(a), sessions.get(b)
    assert csrf_ok(sa, sa.csrf) and not csrf_ok(sa, sb.csrf)
    assert not csrf_ok(sa, None) and not csrf_ok(sa, "")
    sessions.logout(a)
    assert sessions.get(a) is None and sessions.get(b) is not None


def test_failed_logins_from_one_address_are_throttled_for_a_minute() -> None:
    clock = Clock()
    throttle = LoginThrottle(limit=3, clock=clock)
    for _ in range(3):
        assert throttle.blocked("10.0.0.5") == 0
        throttle.failed("10.0.0.5")
    assert throttle.blocked("10.0.0.5") == 60  # the oldest of the last 3 failures is a minute away
    assert throttle.blocked("10.0.0.6") == 0  # another address is not affected
    clock.t = 59.5
    assert throttle.blocked("10.0.0.5") == 0.5
    clock.t = 60.01
    assert throttle.blocked("10.0.0.5") == 0
