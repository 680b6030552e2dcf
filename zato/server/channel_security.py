"""Who may call a secured HTTP channel: its `security` names a definition (kind "security" in
zato.odb.connectors), HTTP Basic Auth or an API key in a header, and a request that does not
present its credentials is answered 401 before its body is read or any service runs.

A definition is read from the ODB when first needed and again after a few seconds, or at once
when a config event says it changed (`forget`); zato.odb.cached keeps it. A definition that is
gone or inactive refuses every caller (the channel stays closed, never open), and the log says
why once. While the ODB cannot be read, callers are checked against the definition read before
(as a worker's channels stay in memory); one never read is a 503 until the ODB answers.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from collections.abc import Callable

from zato.common.errors import ZatoError
from zato.common.passwords import Verifier
from zato.coord.parse import LogOnce
from zato.odb.cached import Cached
from zato.service.base import SecurityInfo

logger = logging.getLogger(__name__)
_misconfigured = LogOnce(logger)

Loader = Callable[[str], "dict | None"]  # security definition name -> its full row, or None


class Refused(ZatoError):
    """The caller did not present the channel's credentials: a 401 with these headers.
    `reason`: what was wrong with what it presented, for the log (zato.server.rejections;
    never the secret); "" when the channel refuses everyone (already said once)."""

    def __init__(self, detail: str, headers: list[tuple[str, str]], reason: str = ""):
        super().__init__(detail)
        self.detail, self.headers, self.reason = detail, headers, reason


def environ_key(header: str) -> str:
    """The WSGI environ key of an HTTP header (X-API-Key -> HTTP_X_API_KEY)."""
    return "HTTP_" + header.upper().replace("-", "_")


class Guard:
    def __init__(
        self,
        load: Loader,
        run: Callable[..., bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._defs = Cached(load, "security definition", clock=clock)
        self._verify = Verifier(run)

    def forget(self, name: str) -> None:
        """Definition `name` changed: read it again on its next use (and say again what is
        wrong with it, if anything still is)."""
        self._defs.forget(name)
        _misconfigured.forget()

    def check(self, channel: str, security: str, environ: dict) -> tuple[SecurityInfo, str | None]:
        """What the caller authenticated as, and the environ key of the header that carried
        an API key (None for Basic Auth, whose header services never see); Refused if the
        request lacks the credentials."""
        d = self._defs.get(security)
        if d is None or not d.get("is_active"):
            state = "does not exist" if d is None else "is inactive"
            _misconfigured.warning(
                f"HTTP channel {channel}: its security definition {security!r} {state}: "
                "every request to it is refused (401)"
            )
            raise Refused("wrong or missing credentials", [])
        if d["type"] == "basic_auth":
            return self._basic_auth(d, environ), None
        key = environ_key(d.get("header") or "X-API-Key")
        return self._apikey(d, environ, key), key

    def _basic_auth(self, d: dict, environ: dict) -> SecurityInfo:
        user, password = basic_auth(environ.get("HTTP_AUTHORIZATION", ""))
        # The password is checked whatever the user: a wrong user answered sooner than a wrong
        # password would tell a caller which user names exist. No credentials: nothing to check.
        password_ok = bool(user) and self._verify(password, d["password"])
        same_user = hmac.compare_digest(user.encode(), str(d["username"]).encode())
        if not (user and same_user and password_ok):
            realm = str(d.get("realm") or "Zato").replace('"', "'")
            challenge = [("WWW-Authenticate", f'Basic realm="{realm}"')]
            raise Refused("wrong or missing credentials", challenge, f"user {said_user(user)!r}")
        return SecurityInfo(d["name"], "basic_auth", user)

    def _apikey(self, d: dict, environ: dict, env_key: str) -> SecurityInfo:
        key = environ.get(env_key, "")
        if not (key and self._verify(key, d["password"])):
            header = d.get("header") or "X-API-Key"
            raise Refused("wrong or missing credentials", [], f"{'a wrong' if key else 'no'} {header} header")
        return SecurityInfo(d["name"], "apikey")


def said_user(user: str) -> str:
    """A user name a client sent, as a log line says it: '(none)', else at most 100 characters."""
    if not user:
        return "(none)"
    return user if len(user) <= 100 else user[:100] + "..."


def basic_auth(header: str) -> tuple[str, str]:
    """(user, password) from an Authorization header; ("", "") if absent or malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except ValueError:  # binascii.Error; a character beyond ASCII (a byte WSGI gives as latin-1); not UTF-8
        return "", ""
    return user, password
