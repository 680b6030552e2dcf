"""Zato's invoke endpoints, so Zato's own Python clients (package zato-client) work unchanged.
Both accept only the invoke user ([auth] invoke_username, `admin.invoke` by default, and
invoke_password); anything else is a 401. The wire format is in docs/zato-compat.md.

POST /zato/admin/invoke (AnyServiceInvoker): a JSON object {"name", "payload": base64 of the
    JSON (or text) payload, "data_format", "is_async", ...}; the answer is {"zato_env":
    {"result", "cid", "details"}, "zato_service_invoke_response": base64 of the service's
    response}; with is_async the response is the new invocation's CID (a 503 while the
    cluster's Redis, which queues it, is gone or refuses writes).
ANY /zato/api/invoke/{service} (APIClient): the JSON body is the payload, the query string
    adds input; the answer is the service's own response.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from zato.common.errors import ServiceNotFound
from zato.server import body as bodies
from zato.server import rejections
from zato.server.channel_security import basic_auth, said_user
from zato.server.wsgi import (
    JSON,
    REDIS_AWAY,
    REDIS_AWAY_SAID,
    HTTPError,
    ServerApp,
    as_text,
    parse_payload,
    refuse_cross_site,
)
from zato.service.base import INVOKE, ChannelInfo, Request, without_credentials
from zato.service.query import QueryDict

logger = logging.getLogger("zato.http")

RESPONSE_KEY = "zato_service_invoke_response"
StartResponse = Callable[..., Any]


class InvokeAPI:
    def __init__(self, app: ServerApp):
        self.app = app
        settings = app.worker.settings
        self.username = getattr(settings, "invoke_username", "admin.invoke").encode()
        self.password = getattr(settings, "invoke_password", "").encode()

    def check_user(self, environ: dict, cid: str) -> None:
        user, password = basic_auth(environ.get("HTTP_AUTHORIZATION", ""))
        ok_user = hmac.compare_digest(user.encode(), self.username)
        ok_password = hmac.compare_digest(password.encode(), self.password)
        if not (self.password and user and ok_user and ok_password):
            path = bodies.one_line(as_text(environ.get("PATH_INFO", "")))  # a path the client chose
            what = "%s: rejected credentials for user %r from %s"
            self.app.rejections.say(rejections.INVOKE, cid, what, path, said_user(user), bodies.peer(environ))
            raise HTTPError(401, "wrong or missing credentials", [("WWW-Authenticate", 'Basic realm="Zato"')])
        refuse_cross_site(environ, cid, "the invoke API")  # whatever the method, it runs a service
        environ["zato.user"] = user  # for the access log

    # AnyServiceInvoker

    def admin_invoke(self, environ: dict, start_response: StartResponse, cid: str) -> list[bytes]:
        self.check_user(environ, cid)
        if environ.get("REQUEST_METHOD") != "POST":
            raise HTTPError(405, "/zato/admin/invoke accepts POST only", [("Allow", "POST")])
        msg = parse_payload(self.app._body(environ), True)
        self.app._wait_loaded()
        if not isinstance(msg, dict):
            raise HTTPError(400, "the request must be a JSON object with name and payload")
        name = msg.get("name")
        if not isinstance(name, str) or not name:
            if msg.get("id"):
                raise HTTPError(400, "invoking by id is not supported; give the service's name")
            raise HTTPError(400, "name is required")
        raw = decode_b64(msg.get("payload"))
        as_json = (msg.get("data_format") or "json") == "json"
        payload = parse_payload(raw, as_json)
        if msg.get("is_async"):
            try:
                body = self.app.worker.store.invoke_async(name, payload).encode()  # the new CID
            except ServiceNotFound:
                raise HTTPError(404, f"no such service: {name}") from None
            except REDIS_AWAY as e:  # the queue is in the cluster's Redis: gone, or refusing writes
                self.app.said_away(cid, "invoke_async %s: the cluster's Redis is not available: %s", name, e)
                raise HTTPError(503, REDIS_AWAY_SAID) from None
        else:
            request = Request(
                payload=payload,
                raw=raw,
                path=environ.get("PATH_INFO", ""),
                environ=without_credentials(environ),
                channel=ChannelInfo("invoke", INVOKE),
            )
            response = self.app._run(name, request, cid)
            response.content_type = None  # the body alone travels, base64-encoded
            body, _ = self.app._render(response, name, cid)
        out = {
            "zato_env": {"result": "ZATO_OK", "cid": cid, "details": ""},
            RESPONSE_KEY: base64.b64encode(body).decode("ascii"),
        }
        return self.app._send(start_response, 200, json.dumps(out).encode(), JSON, cid)

    # APIClient

    def api_invoke(self, environ: dict, start_response: StartResponse, name: str, cid: str) -> list[bytes]:
        self.check_user(environ, cid)
        if not name:
            raise HTTPError(404, "no service named in /zato/api/invoke/{service}")
        raw = self.app._body(environ)
        self.app._wait_loaded()
        query = environ.get("QUERY_STRING")
        request = Request(
            payload=parse_payload(raw, True),
            raw=raw,
            method=environ.get("REQUEST_METHOD", "POST"),
            path=environ.get("PATH_INFO", ""),
            params=QueryDict.parse(query or ""),
            environ=without_credentials(environ),
            channel=ChannelInfo("api-invoke", INVOKE),
        )
        response = self.app._run(name, request, cid)
        extra = self.app._headers(response, name, cid)
        return self.app._reply(start_response, response, *self.app._render(response, name, cid), cid, extra)


def decode_b64(value: Any) -> bytes:
    if value in (None, ""):
        return b""
    if not isinstance(value, str):
        raise HTTPError(400, "payload must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, "payload is not valid base64") from None
