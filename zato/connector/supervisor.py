"""Connector supervisor: the sidecar process of each server (see DESIGN "Process model").

STUB until issue #3: keeps this server's membership key alive and withdraws it on SIGTERM.
Entry point contract: `python -m zato.connector.supervisor SERVER_DIR`, started by the
server's arbiter; it exits when its parent (the arbiter) is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from zato.common.log import setup_logging
from zato.config.settings import ServerSettings, load_server_settings
from zato.coord import membership
from zato.coord.client import connect
from zato.common.errors import CoordError

logger = logging.getLogger("zato.supervisor")


def run(settings: ServerSettings) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    client = connect(settings.redis)
    me = membership.Member(settings.name, settings.host, settings.port, os.getppid(), time.time())
    while not stop.is_set() and os.getppid() == parent:
        try:
            membership.announce(client, settings.cluster, me, settings.membership.ttl)
        except CoordError as e:
            logger.warning("membership heartbeat failed: %s", e)
        stop.wait(settings.membership.heartbeat)
    try:
        membership.withdraw(client, settings.cluster, settings.name)
    except CoordError as e:
        logger.warning("could not withdraw membership: %s", e)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    settings = load_server_settings(argv[0])
    setup_logging(settings.logfile, settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
