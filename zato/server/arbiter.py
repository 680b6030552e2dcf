"""The server's gunicorn arbiter, extended with what a Zato server does besides HTTP:
the connector supervisor sidecar, the pickup directory, up_status in the ODB, and a
graceful stop that leaves the load balancer before the workers stop."""

from __future__ import annotations

import logging
import time

from gunicorn.arbiter import Arbiter

from zato.common.errors import ZatoError
from zato.config.settings import ServerSettings
from zato.lifecycle.process import python_module_argv
from zato.odb import api as odb_api
from zato.odb.engine import ODB
from zato.server.pickup import PickupDir
from zato.server.sidecar import Sidecar

logger = logging.getLogger("zato.arbiter")

SUPERVISOR_MODULE = "zato.connector.supervisor"
SUPERVISOR_STOP_TIMEOUT = 5.0


def record_up_status(settings: ServerSettings, status: str) -> None:
    odb = ODB(settings.odb_url)
    try:
        odb_api.set_up_status(odb, settings.cluster, settings.name, status)
    except ZatoError as e:
        logger.error("cannot record up_status %s in the ODB: %s", status, e)
    finally:
        odb.dispose()


class ZatoArbiter(Arbiter):
    def __init__(self, app) -> None:  # noqa: ANN001 - gunicorn's application object
        super().__init__(app)
        self.zato: ServerSettings = app.settings
        self.sidecar = Sidecar(python_module_argv(SUPERVISOR_MODULE, self.zato.path))
        self.pickup = PickupDir(self.zato)
        self.stopping = False

    def start(self) -> None:
        super().start()
        record_up_status(self.zato, "running")
        logger.info(
            "server %s of cluster %s listening at %s", self.zato.name, self.zato.cluster, self.zato.address
        )

    def reap_workers(self) -> None:
        # Collect the sidecar's exit status before gunicorn's waitpid(-1) swallows it.
        self.sidecar.poll()
        super().reap_workers()

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.stopping:
            return
        self.sidecar.tick()
        try:
            self.pickup.tick()
        except Exception:  # noqa: BLE001 - the arbiter loop must go on
            logger.exception("pickup directory poll failed")

    def handle_term(self) -> None:
        """Graceful stop: supervisor first (withdraws membership, releases the lease), then
        keep serving for drain_seconds so the LB stops sending traffic, then gunicorn's stop."""
        logger.info("graceful stop of server %s", self.zato.name)
        self.stopping = True
        self.app.draining.set()  # /zato/ready answers 503 from now on: the LB stops sending traffic
        self.sidecar.stop(SUPERVISOR_STOP_TIMEOUT)
        if self.zato.drain_seconds > 0:
            logger.info("draining for %.1f s", self.zato.drain_seconds)
            time.sleep(self.zato.drain_seconds)
        raise StopIteration

    def halt(self, reason=None, exit_status=0) -> None:  # noqa: ANN001 - gunicorn's signature
        self.stopping = True
        self.sidecar.stop(SUPERVISOR_STOP_TIMEOUT)
        self.pickup.close()
        self._stop_control_server()
        self.stop()
        record_up_status(self.zato, "clean-down")
        logger.info("server %s stopped", self.zato.name)
        super().halt(reason, exit_status)
