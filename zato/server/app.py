"""gunicorn embedded through BaseApplication: settings from server.conf, our server hooks
(zato.server.arbiter) as gunicorn's documented hook settings on its stock arbiter, and a WSGI
app built in each worker after fork (so ODB/Redis connections are never shared)."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import ssl
import sys

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from zato.common.errors import ConfigError
from zato.common.log import set_role
from zato.config.settings import ServerSettings, proc_name
from zato.server import exit_guard, fatal
from zato.server.body import Throttled
from zato.server.readiness import DrainFlag

logger = logging.getLogger("zato.server")


# The start of gunicorn's WARNING for each request it cannot parse, before the app sees it (a
# bad request line or header, one over [limits]): "Invalid request from ip=ADDR: ERROR".
INVALID_REQUEST = "Invalid request from ip="


class ZatoGunicornLogger(GunicornLogger):
    """gunicorn's own messages go through our handlers (text or JSON, secrets masked). Its
    warning for a request it could not parse is said once per `every` seconds at most per
    worker ([logging] client_warning_interval: `logger_class` gives a subclass with it), with
    how many went unsaid: any client of a server's own port can send them in a loop (before,
    2,000 such requests were 2,000 lines in server.log). Should gunicorn word it otherwise,
    each is said again, as before."""

    every = ServerSettings.client_warning_interval

    def setup(self, cfg) -> None:  # noqa: ANN001 - gunicorn's Config
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True
        self.invalid_said = Throttled(self.every)

    def warning(self, msg, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003 - gunicorn's
        if isinstance(msg, str) and msg.startswith(INVALID_REQUEST):
            said = self.invalid_said
            unsaid = said.due()
            if unsaid is None:
                return
            msg += f" (said {said.how_often} at most in each worker; {unsaid} more since the last time)"
        super().warning(msg, *args, **kwargs)


def logger_class(settings: ServerSettings) -> type[ZatoGunicornLogger]:
    """ZatoGunicornLogger with this server's [logging] client_warning_interval (gunicorn makes
    the logger from its class, with gunicorn's own settings only)."""
    if settings.client_warning_interval == ZatoGunicornLogger.every:
        return ZatoGunicornLogger
    every = settings.client_warning_interval
    return type(ZatoGunicornLogger.__name__, (ZatoGunicornLogger,), {"every": every})


def gunicorn_options(settings: ServerSettings) -> dict:
    options = {
        "bind": [settings.address],
        "workers": settings.workers,
        "worker_class": "gevent",
        "pidfile": settings.pidfile,
        "errorlog": settings.logfile,
        "loglevel": settings.log_level.lower(),
        "proc_name": proc_name(settings.cluster, settings.name),  # also settings.server_title
        "graceful_timeout": 30,
        "timeout": 30,
        "worker_tmp_dir": settings.work_dir,
        # [limits]: gunicorn answers 400 to a request over these before the app sees it
        "limit_request_fields": settings.limits.max_headers,
        "limit_request_field_size": settings.limits.max_header_size,
        "limit_request_line": settings.limits.max_request_line,
        "logger_class": logger_class(settings),
        # No client sets the WSGI environ through headers. gunicorn trusts 127.0.0.1 by default
        # (where the LB of a one-host cluster is) and takes from it a SCRIPT_NAME header, cut
        # off the path before the app routes it, and X-Forwarded-Proto; the LB passes on what
        # its clients send: `SCRIPT_NAME: /x` made `/x/metrics` the server's /metrics through
        # the public port, `/x/zato/internal/...` the internal endpoint. Dropped now, as any
        # header with an underscore is (gunicorn's header_map).
        "forwarded_allow_ips": "",
        "forwarder_headers": "",
    }
    if settings.tls_cert:  # [tls] cert: the port serves HTTPS only
        from zato.common.tls import key_file

        options.update(
            certfile=settings.tls_cert, keyfile=key_file(settings.tls_cert), ssl_context=tls_context
        )
    options.update(settings.gunicorn)  # [gunicorn] in server.conf wins
    return options


def tls_context(config, default_ssl_context_factory):  # noqa: ANN001, ANN201 - gunicorn's ssl_context hook
    """gunicorn's context, sending no TLS 1.3 session tickets: a client then gets nothing
    before its answer, so a connector that sees a byte knows the answer began
    (zato.connector.invoke), and the clients here never resume sessions anyway. Each
    connection's handshake must end within gunicorn's `keepalive`, as a request's head must
    (Handshake): else a client that connects and sends nothing held its greenlet for ever."""
    context = default_ssl_context_factory()
    context.num_tickets = 0
    if not config.do_handshake_on_connect:
        every = getattr(config.logger_class, "every", ZatoGunicornLogger.every)
        context.wrap_socket = Handshake(context.wrap_socket, float(config.keepalive), every)
    return context


class Handshake:
    """gevent's wrap_socket for the port's TLS connections: wraps each and makes its handshake
    within `timeout` seconds. One that fails ends its greenlet quietly (gevent's GreenletExit)
    instead of with a traceback in logs/stdout.log per connection: a client that left before
    a worker took its connection (a probe that timed out meanwhile) or never finished the
    handshake, and a client speaking plain HTTP to the HTTPS-only port, which is said in one
    WARNING at most every `every` seconds per worker ([logging] client_warning_interval)."""

    def __init__(self, wrap, timeout: float, every: float):  # noqa: ANN001 - SSLContext.wrap_socket
        self.wrap, self.timeout = wrap, timeout
        self.said = Throttled(every)

    def __call__(self, sock, **kwargs):  # noqa: ANN001, ANN003, ANN204 - gevent's wrap_socket arguments
        import gevent

        try:
            peer = sock.getpeername()[0]
        except OSError:
            peer = "?"
        try:
            tls_sock = self.wrap(sock, do_handshake_on_connect=False, **kwargs)
        except (ssl.SSLError, OSError) as e:  # the client left before it was taken
            logger.debug("a TLS connection from %s closed before it was taken: %s", peer, e)
            raise gevent.GreenletExit from None
        try:
            with gevent.Timeout(self.timeout):
                tls_sock.do_handshake()
        except gevent.Timeout:
            tls_sock.close()
            logger.debug("a TLS connection from %s made no handshake within %g s", peer, self.timeout)
            raise gevent.GreenletExit from None
        except (ssl.SSLError, OSError) as e:
            tls_sock.close()
            self._failed(peer, e)
            raise gevent.GreenletExit from None
        return tls_sock

    def _failed(self, peer: str, e: OSError) -> None:
        reason = getattr(e, "reason", None) or ""
        if reason != "HTTP_REQUEST":
            logger.debug("a TLS handshake from %s failed: %s", peer, e)
            return
        unsaid = self.said.due()
        if unsaid is not None:
            logger.warning(
                "a client at %s spoke plain HTTP to this HTTPS-only port ([tls] cert in server.conf): is it"
                " a load balancer without [tls] ca_file, or a server without [tls] cert? (said %s at"
                " most in each worker; %d more since the last time)",
                peer, self.said.how_often, unsaid,
            )  # fmt: skip


# gunicorn settings that server.conf sets elsewhere: [gunicorn] still wins (it may be needed),
# but `zato start` warns that the rest of the cluster goes by the other setting.
MANAGED = {
    "bind": "[main] host and port, which `zato start`, the load balancer and the connectors use",
    "workers": "[main] workers, which `zato info` shows",
    "worker_class": "gevent, which the server needs (its I/O is patched for it)",
    "pidfile": "the server directory's pidfile, which `zato stop` and `zato info` read",
    "errorlog": "logs/server.log",
    "loglevel": "[logging] level",
    "logger_class": "the server's own logging (secrets masked)",
    "proc_name": "the process title `zato info` and the pidfile checks look for",
    "certfile": "[tls] cert, which the load balancer, the connectors and the CLI go by",
    "keyfile": "[tls] cert's key",
}


def overridden(settings: ServerSettings) -> list[str]:
    """A warning for each [gunicorn] key that overrides what server.conf sets elsewhere with
    another value (the same value is fine)."""
    ours = {**gunicorn_options(dataclasses.replace(settings, gunicorn={})), "bind": settings.address}
    return [
        f"{settings.config_file}: [gunicorn] {key} = {value} overrides {MANAGED[key]}"
        f" ({ours.get(key, 'not set')})"
        for key, value in settings.gunicorn.items()
        if key in MANAGED and str(value) != str(ours.get(key, ""))
    ]


# Settings only some supported gunicorn versions have: set when this gunicorn knows them.
OPTIONAL = {"control_socket_disable": True}  # gunicorn >= 25.1 would open a control socket


class ZatoApplication(BaseApplication):
    hooked = True  # our server hooks are set (not when only checking the settings)

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.draining = DrainFlag()  # made before the workers fork: the arbiter sets it, they read it
        from zato.server.arbiter import ServerHooks

        self.hooks = ServerHooks(settings, self.draining)
        super().__init__()

    def load_config(self) -> None:
        for key, value in OPTIONAL.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)
        if self.hooked:
            for key in ("when_ready", "pre_fork", "on_exit", "worker_exit", "worker_abort", "child_exit"):
                self.cfg.set(key, getattr(self.hooks, key))
        where = f"{self.settings.config_file}: [gunicorn]"
        for key, value in gunicorn_options(self.settings).items():
            if key not in self.cfg.settings:
                close = difflib.get_close_matches(key, sorted(self.cfg.settings), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where} {key} is not a gunicorn setting{hint}")
            try:
                self.cfg.set(key, value)  # gunicorn's own validator: `timeout = abc` raises here
            except (ValueError, TypeError) as e:
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ConfigError(f"{where} {key}: {value!r} is not valid ({reason})") from None
        if self.hooked and self.settings.tls_cert and self.cfg.certfile == self.settings.tls_cert:
            pinned = self._pin_tls(self.settings.tls_cert, self.cfg.keyfile or self.settings.tls_cert)
            self.cfg.set("certfile", pinned)
            self.cfg.set("keyfile", pinned)
        if self.cfg.keepalive < 1:
            raise ConfigError(
                f"{where} keepalive: {self.cfg.keepalive} would give a request's head no time limit "
                "(gunicorn times the head with keepalive, and with 0 not at all): slow clients of the "
                "server's own port would hold its connections for ever; 1 or more (seconds)"
            )

    _tls_fd = -1

    def _pin_tls(self, cert: str, key: str) -> str:
        """[tls] cert and its key as read now (`zato start` checked them), in a memory file the
        workers inherit: each worker makes its TLS context when it starts, so one made again
        later (after a crash) would read the files again, and serve a renewal put in place
        before the restart, or fail at once, and again for ever, on one half written."""
        try:
            data = b""
            for path in dict.fromkeys((cert, key)):
                with open(path, "rb") as f:
                    data += f.read() + b"\n"
        except OSError as e:
            raise ConfigError(f"{cert}: cannot read the TLS certificate: {e.strerror}") from None
        fd = os.memfd_create("zato-server-tls", 0)  # not close-on-exec: forked workers inherit it
        os.write(fd, data)
        if self._tls_fd >= 0:  # the file a reload (HUP) replaces
            os.close(self._tls_fd)
        self._tls_fd = fd
        return f"/proc/self/fd/{fd}"  # the same file in each worker (an inherited fd)

    def do_load_config(self) -> None:
        # gunicorn's version prints and exits on any error; we want our one-line ConfigError.
        self.load_default_config()
        self.load_config()
        try:
            self.cfg.validate()
            self.cfg.worker_class  # noqa: B018 - imports the worker class, failing early if it cannot
        except Exception as e:  # noqa: BLE001 - gunicorn raises assorted types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(": ")
            raise ConfigError(f"{self.settings.config_file}: [gunicorn] {first}") from None

    def load(self):  # noqa: ANN201 - a WSGI callable
        from zato.admin.api import build_app
        from zato.server.worker import Worker
        from zato.server.wsgi import ServerApp

        set_role("worker")
        exit_guard.install()  # a service's os._exit(3) must not halt the server
        worker = Worker(self.settings)
        worker.start()  # loads services and channels in the background; /zato/ready is 503 until then
        self.hooks.zato_worker = worker  # closed by the worker_exit hook
        running = fatal.Running(self.hooks.fatal)  # its slot names the request running now
        return ServerApp(worker, build_app(worker), self.draining, running)

    def run(self) -> None:
        try:
            super().run()
        except RuntimeError as e:
            print(f"zato: error: {e}", file=sys.stderr)
            sys.exit(1)


class _SettingsCheck(ZatoApplication):
    hooked = False

    def __init__(self, settings: ServerSettings):  # noqa: D107 - no hooks, no drain flag
        self.settings = settings
        BaseApplication.__init__(self)


def check_gunicorn_settings(settings: ServerSettings) -> None:
    """ConfigError (one line) for what ZatoApplication would refuse in [gunicorn], without
    importing the server's hooks (the arbiter and all it imports): `zato start` checks this."""
    _SettingsCheck(settings)
