"""`python -m zato.server.main SERVER_DIR`: run one server in the foreground."""

from __future__ import annotations

import logging
import sys
import warnings

from zato.common.errors import EXIT_CONFIG, ConfigError, ZatoError
from zato.config.settings import ServerSettings, load_server_settings
from zato.lifecycle.entry import Entry, EntryExit, pass_gate

# The gevent workers monkey-patch after fork; the arbiter has imported ssl (via redis) by then,
# which is harmless here because nothing in the arbiter uses SSL with gevent.
warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")

# The process title is gunicorn's (proc_name, zato.server.app).
ENTRY = Entry("zato", "python -m zato.server.main SERVER_DIR [--fg]", "arbiter", flags=("--fg",))


def main(argv: list[str] | None = None) -> int:
    return ENTRY.main(argv, 1, serve)


def serve(args: list[str], flags: frozenset[str]) -> int:
    try:
        settings = load_server_settings(args[0])
        ENTRY.start(settings, stream="--fg" in flags)
        from zato.server import arbiter, metrics  # noqa: F401 - imported while `zato start` waits
        from zato.server.app import ZatoApplication
        from zato.server.prechecks import check_server, eviction_line

        if not pass_gate(lambda say: check_server(settings, say)):
            return 1
        evicting = eviction_line(settings.redis)  # in server.log once, whoever started it
        if evicting:
            logging.getLogger("zato.redis").warning(evicting)
        stale_pidfile(settings)
        metrics.prepare(settings)  # before any worker exists or imports prometheus_client
        if settings.access_log:  # opened here, inherited by the workers
            from zato.server import access_log

            access_log.setup(settings.access_logfile, settings.log_format)
        app = ZatoApplication(settings)
    except ConfigError as e:
        raise EntryExit(EXIT_CONFIG, str(e)) from None
    except ZatoError as e:
        raise EntryExit(1, str(e)) from None
    app.run()
    return 0


def stale_pidfile(settings: ServerSettings) -> None:
    """gunicorn refuses to start while its pidfile names any live process: a pidfile left by
    a server that is gone, whose pid is another process now, is removed (said in the log);
    AlreadyRunning if it names this server running."""
    from zato.config.component import SERVER, Component
    from zato.lifecycle.control import pid_owner
    from zato.lifecycle.process import check_not_running

    said = check_not_running(
        settings.pidfile, f"server {settings.name}", pid_owner(Component(SERVER, settings.path))
    )
    if said:
        logging.getLogger("zato.server").warning(said)


if __name__ == "__main__":
    sys.exit(main())
