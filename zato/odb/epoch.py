"""The durable floor of the fencing epoch: the highest lease epoch ever issued, kept in the ODB.

Redis replicates asynchronously: after a Sentinel failover the new master may never have seen
the INCR that issued epoch N, and the next acquirer would get N again, so two holders could
act under one epoch. The ODB (PostgreSQL, Oracle; SQLite for one host) is the cluster's
durable store, so every acquisition claims its epoch there with one conditional UPDATE:

    UPDATE zato_cluster SET lease_epoch = :e WHERE name = :c AND (lease_epoch IS NULL OR lease_epoch < :e)

One row changed: the epoch is new, the holder may act. None: somebody already claimed this
epoch or a higher one (Redis lost it); the acquirer gives the Redis lease back and tries
again above the floor. The update is atomic in every database, so an epoch is claimed once.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from zato.common.errors import CoordODBUnavailable
from zato.odb import answer
from zato.odb.engine import ODB, reason
from zato.odb.models import Cluster

logger = logging.getLogger("zato.lease")


class EpochFloor:
    """read() and claim() of one cluster's floor; ODB errors become CoordODBUnavailable, a
    CoordError (the lease keeper retries those like a Redis outage: no holder acts on an
    unclaimed epoch), logged as the ODB's (before, as 'Redis unreachable')."""

    def __init__(self, odb_url: str, cluster: str):
        self.odb_url, self.cluster = odb_url, cluster
        self._odb: ODB | None = None  # created on first use (after the supervisor's fork)
        self._available: bool | None = None

    def available(self) -> bool:
        """False (said once, in the log) when the ODB has no row for this cluster or predates
        the floor column: epochs then rest on Redis alone, with the limit lease.py describes.
        Every cluster made with `zato quickstart` or `zato create cluster` has the row."""
        if self._available is None:
            try:
                engine = self._engine().engine
                found = inspect(engine)
                table = Cluster.__tablename__
                columns = {c["name"] for c in found.get_columns(table)} if found.has_table(table) else set()
                row = None
                if "lease_epoch" in columns:
                    with engine.connect() as conn:
                        row = conn.execute(select(Cluster.id).where(Cluster.name == self.cluster)).first()
            except SQLAlchemyError as e:
                raise CoordODBUnavailable(f"reading the epoch floor from the ODB: {reason(e)}") from None
            self._available = row is not None
            if not self._available:
                logger.warning(
                    "cluster %s has no epoch floor in the ODB (run `zato create odb` to upgrade it): "
                    "fencing epochs rest on Redis alone",
                    self.cluster,
                )
        return self._available

    def _engine(self) -> ODB:
        if self._odb is None:
            self._odb = ODB(self.odb_url)
        return self._odb

    def read(self) -> int:
        """The highest epoch claimed so far (0 before the first)."""
        answer.clear()
        try:
            with self._engine().engine.connect() as conn:
                value = conn.execute(select(Cluster.lease_epoch).where(Cluster.name == self.cluster)).scalar()
        except SQLAlchemyError as e:
            raise CoordODBUnavailable(f"reading the epoch floor from the ODB: {reason(e)}") from None
        return int(value or 0)

    def claim(self, epoch: int) -> bool:
        """True if `epoch` is above every epoch claimed before (and is now the floor)."""
        stmt = (
            update(Cluster)
            .where(Cluster.name == self.cluster)
            .where(or_(Cluster.lease_epoch.is_(None), Cluster.lease_epoch < epoch))
            .values(lease_epoch=epoch)
        )
        answer.clear()
        try:
            with self._engine().engine.begin() as conn:
                return conn.execute(stmt).rowcount == 1
        except SQLAlchemyError as e:
            raise CoordODBUnavailable(f"claiming epoch {epoch} in the ODB: {reason(e)}") from None

    def close(self) -> None:
        if self._odb is not None:
            self._odb.dispose()
            self._odb = None
