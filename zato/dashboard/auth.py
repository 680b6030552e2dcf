"""Dashboard sessions: the cluster's admin credentials log a user in; the session lives in
this process (a restart logs everyone out), its token in an HttpOnly SameSite=Strict cookie,
and each session has its own CSRF token that every action must send back."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "zato_dashboard_session"


def cookie_name(port: int) -> str:
    """The session cookie of the dashboard on `port`. A browser sends a host's cookies to every
    port of it, so one name for all would let the login to a second dashboard on the host (the
    next cluster's) replace the first one's session: its page kept updating while each of its
    actions answered "log in first"."""
    return f"{COOKIE}_{port}"


CSRF_HEADER = "X-CSRF-Token"


@dataclass
class Session:
    user: str
    csrf: str
    expires_at: float  # monotonic


class Sessions:
    def __init__(
        self, username: str, password: str, minutes: int, clock: Callable[[], float] = time.monotonic
    ):
        self._username, self._password = username.encode(), password.encode()
        self._lifetime = minutes * 60.0
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def check(self, user: str, password: str) -> bool:
        ok_user = hmac.compare_digest(user.encode(), self._username)
        ok_password = hmac.compare_digest(password.encode(), self._password)
        return bool(user) and ok_user and ok_password

    def login(self, user: str, password: str) -> str | None:
        """A new session token, or None for wrong credentials."""
        if not self.check(user, password):
            return None
        self._expire()
        token = secrets.token_urlsafe(32)
        self._sessions[token] = Session(user, secrets.token_urlsafe(32), self._clock() + self._lifetime)
        return token

    def get(self, token: str | None) -> Session | None:
        session = self._sessions.get(token or "")
        if session is None or session.expires_at <= self._clock():
            return None
        return session

    def logout(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[token]


class LoginThrottle:
    """Failed logins per address in a sliding minute: at `limit` the address is refused (429)
    until its oldest failure is a minute old, as HAProxy does for the admin API ([admin]
    max_failures). A success does not reset it: guessing stays as slow as it was."""

    WINDOW = 60.0

    def __init__(self, limit: int = 10, clock: Callable[[], float] = time.monotonic):
        self.limit, self._clock = limit, clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, address: str) -> list[float]:
        since = self._clock() - self.WINDOW
        kept = [t for t in self._failures.get(address, []) if t > since]
        if kept:
            self._failures[address] = kept
        else:
            self._failures.pop(address, None)
        return kept

    def blocked(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        recent = self._recent(address)
        if self.limit <= 0 or len(recent) < self.limit:
            return 0.0
        return max(0.0, recent[-self.limit] + self.WINDOW - self._clock())

    def failed(self, address: str) -> None:
        self._recent(address)
        if len(self._failures) > 10000:  # a spray of addresses cannot grow this without bound
            self._failures.clear()
        self._failures.setdefault(address, []).append(self._clock())


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
