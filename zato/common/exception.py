"""Zato's exception names for services (`from zato.common.exception import BadRequest`):
raising one answers with its HTTP status and the message in Zato's error envelope."""

from __future__ import annotations

from zato.common.errors import ServiceError


class Reportable(ServiceError):
    """A service's own error with the HTTP status to answer with: Zato's
    `Reportable(cid, msg, status)`, e.g. `raise Reportable(self.cid, "I am a teapot", 418)`.
    The status is checked as self.response.status_code is (a whole number 200-599, or its
    digits as text); anything else is the service's 500. Without one (Zato's ZatoException,
    an alias, takes cid and msg only) it is 500; the subclasses below have their own."""

    status: object = 500

    def __init__(self, cid: str = "", msg: str = "", status: object = None, *args: object):
        super().__init__(msg or self.__class__.__name__)
        self.cid, self.msg = cid, msg
        if status is not None:
            self.status = status

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Headers the answer carries besides the server's own."""
        return []


ZatoException = Reportable


def _fixed_init(self: Reportable, cid: str = "", msg: str = "", *args: object) -> None:
    """Zato's BadRequest(cid, msg) and the others of a fixed status take no status."""
    Reportable.__init__(self, cid, msg)


def _status(name: str, status: int) -> type[Reportable]:
    doc = f"Answered with HTTP {status}."
    return type(name, (Reportable,), {"status": status, "__doc__": doc, "__init__": _fixed_init})


BadRequest = _status("BadRequest", 400)
Forbidden = _status("Forbidden", 403)
NotFound = _status("NotFound", 404)
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
        super().__init__(cid, msg)  # its third argument is the challenge, not a status
        self.challenge = challenge

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("WWW-Authenticate", self.challenge)] if self.challenge else []


class MethodNotAllowed(Reportable):
    """Answered with HTTP 405 and, given `allow` (the methods there are), its Allow header
    (RFC 9110 15.5.6); Zato's MethodNotAllowed(cid, msg) too."""

    status = 405

    def __init__(self, cid: str = "", msg: str = "", *args: object, allow: tuple[str, ...] = ()):
        super().__init__(cid, msg)
        self.allow = allow

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Allow", ", ".join(self.allow))] if self.allow else []


class LockTimeout(Reportable):
    """`self.lock(...)` could not take its lock within `block` seconds: another service of the
    cluster holds it. Uncaught, the service answers 409."""

    status = 409
