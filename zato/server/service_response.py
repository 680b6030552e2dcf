"""What a service set on self.response, checked before it goes out, so that a client always
gets one well-formed HTTP answer (or the service's 500 in Zato's envelope) and never one the
load balancer drops or gunicorn replaces with its own HTML page.

The status is a final one, a whole number from 200 to 599; a text of digits ('202', as Zato's
users write it) is taken as that number. An informational status (1xx) is not one: HTTP sends
it ahead of the answer, so a client, or HAProxy, would wait on for an answer that never comes.
Headers the server frames the answer with (Content-Length, Transfer-Encoding, Connection...)
are its own: a service's are dropped, since a second
Content-Length makes HAProxy refuse the whole answer; so is X-Zato-CID, which is always the
request's CID (a second one left clients to pick either). A Content-Type header is the content
type, as if set on self.response.content_type. A header HTTP cannot carry (a name that is not
a token; a value with a line break, a control character, or a letter outside latin-1) is
reported, never sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

# Framing and hop-by-hop headers (RFC 9110 7.6.1, RFC 9112), and those gunicorn writes itself.
SERVER_OWN = frozenset(
    (
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "upgrade",
        "server",
        "date",
        "x-zato-cid",  # the request's CID, which every answer carries once
        "x-zato-call-refused",  # zato.common.signing.REFUSED_HEADER: a server's refusal, not a service's
    )
)
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is allowed


def status_of(value: Any) -> int | None:
    """The HTTP status a service's self.response.status_code stands for, or None if it is none
    (1xx included: an interim status, never an answer's)."""
    if isinstance(value, bool):  # an int to Python, never a status
        return None
    if isinstance(value, int):
        code = int(value)  # an IntEnum such as HTTPStatus.ACCEPTED, too
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        code = int(value)
    else:
        return None
    return code if 200 <= code <= 599 else None


def value_problem(value: str) -> str | None:
    """Why a header value cannot be sent, or None."""
    if "\r" in value or "\n" in value:
        return "its value contains a line break"
    if CONTROL.search(value):
        return "its value contains a control character"
    if not value.isascii() and max(map(ord, value)) > 0xFF:
        return "its value is not latin-1 text (HTTP headers carry latin-1 only)"
    return None


class Headers(NamedTuple):
    send: list[tuple[str, str]]
    content_type: str | None  # from a Content-Type header, whatever its case
    dropped: list[str]  # the server's own headers the service set, by the name it gave
    problem: str | None  # why a header cannot be sent; nothing else holds then


def service_headers(given: Mapping[Any, Any]) -> Headers:
    """The headers of a service's self.response.headers to send, sorted out as above."""
    send: list[tuple[str, str]] = []
    dropped: list[str] = []
    content_type = None
    for name, raw in given.items():
        if not isinstance(name, str) or not TOKEN.fullmatch(name):
            why = f"response header {name!r:.100}: the name is not an HTTP header name"
            return Headers([], None, [], why)
        value = raw if isinstance(raw, str) else str(raw)
        problem = value_problem(value)
        if problem:
            return Headers([], None, [], f"response header {name}: {problem}")
        lower = name.lower()
        if lower in SERVER_OWN:
            dropped.append(name)
        elif lower == "content-type":
            content_type = value
        else:
            send.append((name, value))
    return Headers(send, content_type, dropped, None)
