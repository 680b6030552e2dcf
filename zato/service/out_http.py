"""Outgoing plain HTTP connections for services, as in Zato:

    conn = self.outgoing.plain_http["CRM"].conn
    response = conn.get(self.cid, params={"id": 1})        # path "/clients/{id}" -> /clients/1
    response = conn.post(self.cid, {"name": "x"}, headers={"X-A": "b"})   # a dict, list or model: JSON
    response.status_code, response.text, response.json(), response.data

`self.outgoing.rest` (Zato 3.2 and 4.1's name) is the same object as `.plain_http`;
`conn.http_request("PUT", self.cid, data, params)` names the method, and `conn.send` is `post`.
`response.data` is the body parsed as JSON when it is JSON (its Content-Type says so, or the
connection's data format is JSON and it parses), else its text, as in Zato 4.1.

A definition (kind http-outgoing: address, url_path with {params}, timeout, username/password,
data_format) lives in the ODB. Each worker keeps one requests.Session (a connection pool,
gevent-friendly under the server's monkey-patching) per connection and makes a new one when
the definition changes. Parameters the path does not name go to the query string.
"""

from __future__ import annotations

import json
import string
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from zato.common import jsonenc
from zato.common.errors import ConnectorError
from zato.service.outgoing import PerWorker

if TYPE_CHECKING:  # imported when a connection is first made: a worker without one never pays for it
    import requests

_FORMATTER = string.Formatter()
DEFAULT_MAX_BODY = 64 * 1024 * 1024  # [limits] max_outgoing_body


def _without_body(method: str) -> Any:
    def call(
        self: HTTPConn, cid: str, params: dict | None = None, headers: dict | None = None, **kw: Any
    ) -> requests.Response:
        return self._call(method, cid, None, params, headers)

    call.__name__ = method.lower()
    return call


def _with_body(method: str) -> Any:
    def call(
        self: HTTPConn,
        cid: str,
        data: Any = "",
        params: dict | None = None,
        headers: dict | None = None,
        **kw: Any,
    ) -> requests.Response:
        return self._call(method, cid, data, params, headers)

    call.__name__ = method.lower()
    return call


DOT_SEGMENTS = (".", "..")  # path parameters that would move a request's path (RFC 3986 5.2.4)


class HTTPConn:
    """`.conn` of one outgoing connection: get/post/put/patch/delete/options(cid, ...)."""

    def __init__(self, name: str, definition: dict, max_body: int = DEFAULT_MAX_BODY):
        self.name = name
        self._address = definition["address"].rstrip("/")
        self._path = definition.get("url_path") or ""
        self._timeout = definition.get("timeout") or 10
        self._max_body = max_body
        self._json = (definition.get("data_format") or "json") == "json"
        import requests

        self._session = requests.Session()
        if definition.get("username"):
            self._session.auth = (definition["username"], definition.get("password") or "")

    def _url(self, params: dict | None) -> tuple[str, dict]:
        params = dict(params or {})
        names = [field for _, field, _, _ in _FORMATTER.parse(self._path) if field]
        missing = [n for n in names if n not in params]
        if missing:
            given = ", ".join(missing)
            raise ConnectorError(f"outgoing HTTP {self.name!r}: path parameter(s) {given} not given")
        values = {n: str(params.pop(n)) for n in names}
        for n, value in values.items():
            # quote() keeps them, and requests removes dot segments: /clients/{id}/orders with
            # id ".." would call /orders, with this connection's credentials
            if value in DOT_SEGMENTS:
                raise ConnectorError(
                    f"outgoing HTTP {self.name!r}: path parameter {n} is {value!r}, which would make"
                    " the request go to another path; refused"
                )
        path = self._path.format(**{n: quote(v, safe="") for n, v in values.items()})
        return self._address + path, params

    def _call(
        self, method: str, cid: str, data: Any, params: dict | None, headers: dict | None
    ) -> requests.Response:
        import gevent
        import requests

        url, query = self._url(params)
        sent_headers = {"X-Zato-CID": cid or ""}
        body = data
        if self._json and (isinstance(data, (dict, list)) or jsonenc.is_model(data)):
            body = jsonenc.dumps(data)
            sent_headers["Content-Type"] = "application/json"
        sent_headers.update(headers or {})
        said = f"outgoing HTTP {self.name!r}: {method} {url}"
        # The whole call, the answer's body included, within the connection's timeout: requests'
        # own timeout is per read, so a remote sending a byte every few seconds held the call
        # (and its request) for as long as it went on
        deadline = gevent.Timeout(self._timeout)
        deadline.start()
        response = None
        try:
            response = self._session.request(
                method,
                url,
                params=query or None,
                data=body,
                headers=sent_headers,
                timeout=self._timeout,
                stream=True,  # read below, within the deadline
                hooks={"response": self._capped(said)},
            )
            try:
                response.content  # noqa: B018 - the whole body, read now
            finally:
                response.close()  # the connection back to the pool, or closed if not read whole
        except gevent.Timeout as e:
            if e is not deadline:
                raise
            if response is not None:
                response.close()
            raise ConnectorError(
                f"{said}: no whole answer within {self._timeout} s (the connection's timeout)"
            ) from None
        except requests.RequestException as e:
            if response is not None:
                response.close()
            raise ConnectorError(f"{said}: {type(e).__name__}: {e}") from None
        finally:
            deadline.close()
        parsed = response_data(response.text, response.headers.get("Content-Type"), self._json)
        response.data = parsed  # type: ignore[attr-defined]  # Zato's extra attribute
        return response

    def _capped(self, said: str) -> Any:
        """A response hook (each answer, redirects' too, before requests reads its body): a body
        over max_body bytes is refused. A body is held whole in the worker's memory, and a
        remote answering gigabytes took all of it (the worker killed, with every request it
        was serving)."""
        too_big = (
            f"{said}: the answer's body is over {self._max_body} bytes, the most an outgoing HTTP"
            " answer may have ([limits] max_outgoing_body in server.conf)"
        )

        def hook(response: requests.Response, **kw: Any) -> requests.Response:
            declared = response.headers.get("Content-Length", "")
            if (
                declared.isdigit()
                and int(declared) > self._max_body
                and "Content-Encoding" not in response.headers
            ):
                response.close()
                raise ConnectorError(too_big)
            response.raw = _Capped(response.raw, self._max_body, too_big)  # counted decoded (gzip)
            return response

        return hook

    def http_request(
        self,
        method: str,
        cid: str,
        data: Any = "",
        params: dict | None = None,
        headers: dict | None = None,
        **kw: Any,
    ) -> requests.Response:
        """Any method by its name, as Zato's `http_request(method, cid, data, params)`."""
        return self._call(method.upper(), cid, data, params, headers)

    get = _without_body("GET")
    delete = _without_body("DELETE")
    options = _without_body("OPTIONS")
    post = _with_body("POST")
    put = _with_body("PUT")
    patch = _with_body("PATCH")
    send = post

    def close(self) -> None:
        self._session.close()


class _Capped:
    """An answer's `raw` (urllib3's response) whose stream() ends in a ConnectorError once more
    than `cap` bytes (decoded) came; everything else is the response's own."""

    def __init__(self, raw: Any, cap: int, too_big: str):
        self._raw, self._cap, self._too_big = raw, cap, too_big

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Any:
        size = 0
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            size += len(chunk)
            if size > self._cap:
                raise ConnectorError(self._too_big)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def response_data(text: str, content_type: str | None, json_connection: bool) -> Any:
    """Zato's `response.data`: the parsed JSON of a JSON body, else the body's text."""
    kind = (content_type or "").split(";")[0].strip().lower()
    says_json = kind == "application/json" or kind.endswith("+json")
    if text and (says_json or (json_connection and not kind.startswith("text/"))):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: its text, as for any other body
    return text


class HTTPConnection:
    """What `self.outgoing.plain_http[name]` is: `.conn` and `.name`."""

    def __init__(self, name: str, conn: HTTPConn):
        self.name, self.conn = name, conn


class PlainHTTP(PerWorker):
    """`self.outgoing.plain_http`: connections by name."""

    def __init__(self, defs: Any, max_body: int = DEFAULT_MAX_BODY):
        super().__init__(defs)
        self._max_body = max_body

    def make(self, name: str, definition: dict) -> HTTPConnection:
        return HTTPConnection(name, HTTPConn(name, definition, self._max_body))

    def close(self, conn: Any) -> None:
        conn.conn.close()
