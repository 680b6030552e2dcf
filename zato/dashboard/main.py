"""`python -m zato.dashboard.main DASHBOARD_DIR`: the dashboard in the foreground.

Writes DIR/pidfile, logs to DIR/logs/dashboard.log, serves on [main] host:port (8183) with
gevent's WSGI server (zato.dashboard.web: time limits for slow clients, bounded connections).
One greenlet refreshes the cluster snapshot; SIGTERM stops it. Its config/ and logs/ folders
are made owner-only (0700) and its logs 0600 at every start (docs/trust.md)."""

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


def make_private(path: str) -> list[str]:
    """config/ and logs/ of a dashboard directory owner-only (0700), its log files 0600, also
    when an older version made them 0755 and 0644: dashboard.log names the users of failed
    logins. What could not be changed, one line each (for the log)."""
    failures = []
    for sub in ("config", "logs"):
        folder = os.path.join(path, sub)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        except OSError as e:
            failures.append(f"{folder}: cannot make it owner-only (0700): {e.strerror}")
    for name in ("dashboard.log", "stdout.log"):
        logfile = os.path.join(path, "logs", name)
        try:
            os.close(os.open(logfile, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
            os.chmod(logfile, 0o600)
        except OSError as e:
            failures.append(f"{logfile}: cannot make it owner-only (0600): {e.strerror}")
    return failures


def serve(dashboard_dir: str) -> int:
    settings = ENTRY.settings(None, load_dashboard_settings, dashboard_dir, errors=(ConfigError,))
    os.umask(0o077)  # what it writes is its owner's only: a log reopened after rotation too
    not_private = make_private(settings.path)
    ENTRY.start(settings)
    import logging

    from zato.common.log import pika_at_debug

    pika_at_debug()  # a failed Replay parked: its one line in dashboard.log, not pika's ERRORs and traceback

    from zato.coord.client import connect
    from zato.dashboard.app import build_app
    from zato.dashboard.auth import Sessions
    from zato.dashboard.state import Collector
    from zato.dashboard.web import DashboardServer, max_connections, not_framed
    from zato.odb.engine import ODB

    if not pass_gate():
        return 1
    log = logging.getLogger("zato.dashboard")
    for line in not_private:
        log.warning("%s", line)
    if read_pidfile(settings.pidfile, Owner("zato.dashboard.main", settings.path)).alive:
        raise EntryExit(1, f"already running ({settings.pidfile})")
    # an action waiting for a SQLite ODB's write lock must not hold the page and the other requests
    client, odb = connect(settings.redis), ODB(settings.odb_url, wait_in_python=True)
    ctx = Context(
        settings=settings,
        sessions=Sessions(settings.admin_username, settings.admin_password, settings.session_minutes),
        collector=Collector(settings, client, odb),
        client=client,
        odb=odb,
        changed=Event(),
        kick=Event(),
    )
    connections = max_connections()
    server = DashboardServer(
        (settings.host, settings.port), not_framed(build_app(ctx)), connections, log=None, error_log=log
    )
    try:
        server.init_socket()
    except OSError as e:
        where = f"{settings.host}:{settings.port}"
        raise EntryExit(1, f"cannot listen on {where}: {e}") from None
    write_pidfile(settings.pidfile)
    gevent.spawn(refresh_forever, ctx)
    gevent.signal_handler(signal.SIGTERM, server.stop, 2)
    gevent.signal_handler(signal.SIGINT, server.stop, 2)
    log.info(
        "dashboard of cluster %s at %s (at most %d connections at once)",
        settings.cluster,
        settings.url,
        connections,
    )
    try:
        server.serve_forever()
    finally:
        remove_pidfile(settings.pidfile)
        odb.dispose()
        log.info("dashboard stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
