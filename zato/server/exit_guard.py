"""A worker's exit code must not halt its server unless the worker really failed to boot.

gunicorn's arbiter stops the whole server when a worker exits with 3 (its WORKER_BOOT_ERROR) or
4 (APP_LOAD_ERROR), whenever that happens. A service calling `os._exit(3)` would do just that,
and the load balancer replays its GET on the next server's worker: one request could halt every
server of the cluster. (`sys.exit()` in a service is caught as its failure: ServiceStore.run.)

So in a worker, once it has booted, `os._exit` with one of those codes exits with 1: the
arbiter starts a new worker, as for any other crash. The worker's own failed boot uses
`real_exit`, whose 3 still stops the server with the reason logged.
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

logger = logging.getLogger(__name__)

HALTING = (3, 4)  # gunicorn's Arbiter.WORKER_BOOT_ERROR and APP_LOAD_ERROR
INSTEAD = 1
real_exit = os._exit


def _guarded_exit(status: int) -> NoReturn:
    if status in HALTING:
        logger.error(
            "worker %d: os._exit(%d) called while serving (by a service?); exiting with %d instead, "
            "so that the server starts a new worker rather than halting",
            os.getpid(),
            status,
            INSTEAD,
        )
        status = INSTEAD
    real_exit(status)


def install() -> None:
    """In a worker process: os._exit(3 or 4) exits with 1 from now on."""
    os._exit = _guarded_exit
