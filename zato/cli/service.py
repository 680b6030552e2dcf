"""`zato service invoke DIR NAME [--payload JSON]`: run a service from the command line, as
Zato's command of that name does: through a running server's invoke endpoint, with the
server's own invoke credentials ([auth] in its server.conf), so the directory must be
readable by whoever runs it. Meant for debugging and scripts, not for measuring services.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

from zato.cli.args import seconds
from zato.common import jsonenc
from zato.common.errors import ConfigError, ZatoError
from zato.config import component
from zato.config.settings import ServerSettings, load_server_settings
from zato.lifecycle.control import server_base


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="invoke a service from the command line")
    act = p.add_subparsers(dest="action", metavar="ACTION")
    act.required = True
    i = act.add_parser(
        "invoke",
        help="invoke a service through a running server and print its response",
        description="Invoke a service through a running server (a quickstart: its first server that"
        " answers) with the server's invoke credentials, and print its response. Exits 1 when the"
        " service does not answer 2xx.",
    )
    i.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    i.add_argument("name", metavar="NAME", help="the service's name, e.g. crm.client.get")
    i.add_argument(
        "--payload", default="", help="the request, JSON ('{\"client_id\": 1}'); - reads it from stdin"
    )
    i.add_argument(
        "--async",
        "--is-async",  # Zato 3.2's name of it; Zato 2.0 and 3.0 called it --async
        dest="is_async",
        action="store_true",
        help="invoke_async: queue it for some server of the cluster and print the new CID",
    )
    i.add_argument(
        "--timeout", type=seconds, default=60.0, help="seconds to wait for the answer (default: 60)"
    )
    i.set_defaults(func=invoke)


def invoke(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.payload == "-" else args.payload
    payload = None
    if text.strip():
        try:
            payload = jsonenc.loads(text)
        except ValueError as e:
            raise ConfigError(f"--payload is not JSON: {e}") from None
    servers = _servers(args.path)
    for n, settings in enumerate(servers):
        try:
            status, body = _call(settings, args.name, payload, args.is_async, args.timeout)
        except urllib.error.URLError as e:
            refused = isinstance(e.reason, ConnectionRefusedError)
            if refused and n + 1 < len(servers):
                continue  # a quickstart's server that is not running: the next one
            why = "nothing listens there: is it running? (zato start DIR)" if refused else str(e.reason)
            if isinstance(e.reason, ssl.SSLError):
                from zato.common.tls import client_error

                why = client_error(e.reason, settings.tls_ca_file)
            every = "no server answers; the last one tried, " if len(servers) > 1 else ""
            raise ZatoError(f"{every}server {settings.name} at {_base(settings)}: {why}") from None
        return _show(args.name, settings, status, body, args.is_async)
    raise ConfigError(f"{args.path}: no server")  # _servers never returns none


def _servers(path: str) -> list[ServerSettings]:
    comp = component.read_component(path)
    if comp.kind == component.SERVER:
        return [load_server_settings(comp.path)]
    if comp.kind == component.QUICKSTART:
        found = [
            load_server_settings(m.path)
            for m in component.quickstart_members(comp)
            if m.kind == component.SERVER
        ]
        if found:
            return found
    raise ConfigError(f"{comp.path}: a {comp.kind} directory; give a server or quickstart directory")


def _base(settings: ServerSettings) -> str:
    return server_base(settings)


def _context(settings: ServerSettings) -> ssl.SSLContext | None:
    """With [tls] cert: the server is verified against [tls] ca_file (the system's CAs if empty)."""
    if not settings.tls_cert:
        return None
    from zato.common.tls import client_context

    return client_context(settings.tls_ca_file)


def _call(
    settings: ServerSettings, name: str, payload: object, is_async: bool, timeout: float
) -> tuple[int, bytes]:
    if is_async:  # Zato's AnyServiceInvoker endpoint: it has invoke_async
        encoded = base64.b64encode(json.dumps(payload).encode()).decode("ascii")
        url = f"{_base(settings)}/zato/admin/invoke"
        body = json.dumps({"name": name, "payload": encoded, "data_format": "json", "is_async": True})
    else:
        url = f"{_base(settings)}/zato/api/invoke/{urllib.parse.quote(name, safe='')}"
        body = json.dumps(payload)
    if not settings.invoke_password:
        raise ConfigError(
            f"server {settings.name}: [auth] invoke_password is empty, so its invoke endpoints are off"
        )
    credentials = base64.b64encode(f"{settings.invoke_username}:{settings.invoke_password}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - a URL of the server's own configuration
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {credentials}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_context(settings)) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _show(name: str, settings: ServerSettings, status: int, body: bytes, is_async: bool) -> int:
    try:
        answer: object = jsonenc.loads(body) if body else None
    except ValueError:
        answer = None
    if is_async and 200 <= status < 300 and isinstance(answer, dict):
        encoded = answer.get("zato_service_invoke_response", "")
        print(base64.b64decode(encoded).decode())  # the new invocation's CID
        return 0
    if answer is not None:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    elif body:
        print(body.decode(errors="replace"))
    elif 200 <= status < 300:
        print("(None)")  # as Zato's command says of a service that produced no response
    if 200 <= status < 300:
        return 0
    print(f"zato: service {name} on server {settings.name} answered {status}", file=sys.stderr)
    return 1
