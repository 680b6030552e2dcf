"""Zato's exception names for services (`from zato.common.exception import BadRequest`):
raising one answers with its HTTP status and the message in Zato's error envelope."""

from __future__ import annotations

from zato.common.errors import ServiceError


class Reportable(ServiceError):
    """A service's own error with the HTTP status to answer with."""

    status = 500

    def __init__(self, cid: str = "", msg: str = "", *args: object):
        super().__init__(msg or self.__class__.__name__)
        self.cid, self.msg = cid, msg

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Headers the answer carries besides the server's own."""
        return []


ZatoException = Reportable


def _status(name: str, status: int) -> type[Reportable]:
    return type(name, (Reportable,), {"status": status, "__doc__": f"Answered with HTTP {status}."})


BadRequest = _status("BadRequest", 400)
Forbidden = _status("Forbidden", 403)
NotFound = _status("NotFound", 404)
MethodNotAllowed = _status("MethodNotAllowed", 405)
NotAcceptable = _status("NotAcceptable", 406)
Conflict = _status("Conflict", 409)
TooManyRequests = _status("TooManyRequests", 429)
InternalServerError = _status("InternalServerError", 500)
ServiceUnavailable = _status("ServiceUnavailable", 503)


class Unauthorized(Reportable):
    """Answered with HTTP 401 and, as in Zato, `challenge` (`'Basic realm="x"'`) as its
    WWW-Authenticate header, which tells a browser or client how to authenticate."""

    status = 401

    def __init__(self, cid: str = "", msg: str = "", challenge: str = "", *args: object):
        super().__init__(cid, msg, *args)
        self.challenge = challenge

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("WWW-Authenticate", self.challenge)] if self.challenge else []


class LockTimeout(Reportable):
    """`self.lock(...)` could not take its lock within `block` seconds: another service of the
    cluster holds it. Uncaught, the service answers 409."""

    status = 409
