"""The pickup directory of a server: a .py file dropped into SERVER_DIR/pickup is deployed
to the whole cluster and moved to pickup/processed/; a broken one is reported in the log
once (per modification) and left where it is."""

from __future__ import annotations

import logging
import os
import time

from zato.common.errors import ZatoError
from zato.config.settings import ServerSettings
from zato.coord.client import connect
from zato.odb.engine import ODB
from zato.service.deploy import deploy, module_name_of

logger = logging.getLogger("zato.pickup")


class PickupDir:
    def __init__(self, settings: ServerSettings, interval: float = 1.0):
        self.settings = settings
        self.interval = interval
        self.next_poll = 0.0
        self.reported: dict[str, float] = {}  # broken file -> mtime already reported

    @property
    def path(self) -> str:
        return self.settings.pickup_dir

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_poll:
            return
        self.next_poll = now + self.interval
        try:
            names = sorted(n for n in os.listdir(self.path) if n.endswith(".py") and not n.startswith("."))
        except FileNotFoundError:
            return
        for name in names:
            self._handle(os.path.join(self.path, name))

    def _handle(self, path: str) -> None:
        try:
            mtime = os.stat(path).st_mtime
            if self.reported.get(path) == mtime:
                return
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except (OSError, UnicodeDecodeError) as e:
            logger.error("pickup: cannot read %s: %s", path, e)
            return
        try:
            result = self._deploy(module_name_of(path), source)
        except ZatoError as e:
            self.reported[path] = mtime
            logger.error("pickup: %s is broken, not deployed: %s", path, e)
            return
        self.reported.pop(path, None)
        processed = os.path.join(self.path, "processed")
        os.makedirs(processed, exist_ok=True)
        os.replace(path, os.path.join(processed, os.path.basename(path)))
        logger.info("pickup: %s: %s", os.path.basename(path), result.describe())

    def _deploy(self, module: str, source: str):  # noqa: ANN202
        odb = ODB(self.settings.odb_url)
        client = connect(self.settings.redis)
        try:
            return deploy(odb, client, self.settings.cluster, module, source)
        finally:
            odb.dispose()
            client.close()
