"""`python -m zato.dashboard.main DASHBOARD_DIR`: the dashboard in the foreground.

Writes DIR/pidfile, logs to DIR/logs/dashboard.log, serves on [main] host:port (8183) with
gevent's WSGI server. One greenlet refreshes the cluster snapshot; SIGTERM stops it."""

import os

if __name__ == "__main__":
    # A viewer: it gives the CPU up to the servers and the LB it shows whenever they want it
    # (at start-up above all, when all of them import at once), and itself loses only latency.
    os.nice(10)

from gevent import monkey  # noqa: E402 - after the nice above, which its imports already count in

monkey.patch_all()

import signal  # noqa: E402 - after monkey-patching
import sys  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from zato.common.errors import ConfigError  # noqa: E402
from zato.common.pidfile import Owner, read_pidfile, remove_pidfile, write_pidfile  # noqa: E402
from zato.config.settings import load_dashboard_settings  # noqa: E402
from zato.lifecycle.entry import Entry, EntryExit, pass_gate  # noqa: E402

REFRESH = 0.5


class Context(SimpleNamespace):
    """What the routes share: settings, sessions, collector, Redis client, ODB, change signal."""

    def wake(self) -> None:
        self.kick.set()

    def wait_change(self, timeout: float) -> bool:
        return bool(self.changed.wait(timeout))


def refresh_forever(ctx: Context) -> None:
    import logging

    log = logging.getLogger("zato.dashboard")
    while True:
        try:
            if ctx.collector.refresh():
                changed, ctx.changed = ctx.changed, Event()
                changed.set()
        except Exception:  # noqa: BLE001 - the page must keep updating whatever one source does
            log.exception("refreshing the cluster snapshot failed")
        ctx.kick.wait(REFRESH)
        ctx.kick.clear()


ENTRY = Entry("zato-dashboard", "python -m zato.dashboard.main DASHBOARD_DIR", "dashboard")


def main(argv: list[str] | None = None) -> int:
    return ENTRY.main(argv, 1, lambda args, _flags: serve(args[0]))


def serve(dashboard_dir: str) -> int:
    settings = ENTRY.settings(None, load_dashboard_settings, dashboard_dir, errors=(ConfigError,))
    ENTRY.start(settings)
    import logging

    from zato.coord.client import connect
    from zato.dashboard.app import build_app
    from zato.dashboard.auth import Sessions
    from zato.dashboard.state import Collector
    from zato.odb.engine import ODB

    if not pass_gate():
        return 1
    log = logging.getLogger("zato.dashboard")
    if read_pidfile(settings.pidfile, Owner("zato.dashboard.main", settings.path)).alive:
        raise EntryExit(1, f"already running ({settings.pidfile})")
    client, odb = connect(settings.redis), ODB(settings.odb_url)
    ctx = Context(
        settings=settings,
        sessions=Sessions(settings.admin_username, settings.admin_password, settings.session_minutes),
        collector=Collector(settings, client, odb),
        client=client,
        odb=odb,
        changed=Event(),
        kick=Event(),
    )
    server = WSGIServer((settings.host, settings.port), build_app(ctx), log=None, error_log=log)
    try:
        server.init_socket()
    except OSError as e:
        where = f"{settings.host}:{settings.port}"
        raise EntryExit(1, f"cannot listen on {where}: {e}") from None
    write_pidfile(settings.pidfile)
    gevent.spawn(refresh_forever, ctx)
    gevent.signal_handler(signal.SIGTERM, server.stop, 2)
    gevent.signal_handler(signal.SIGINT, server.stop, 2)
    log.info("dashboard of cluster %s at %s", settings.cluster, settings.url)
    try:
        server.serve_forever()
    finally:
        remove_pidfile(settings.pidfile)
        odb.dispose()
        log.info("dashboard stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
