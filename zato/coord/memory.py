"""The lease side of the coordination port in memory, on an injected clock: what one Redis
holds for a cluster (`MemoryCoord`) and one server's handle on it (`MemoryLease`, the same
methods and attributes as `zato.coord.lease.Lease`, the Redis implementation).

It follows the Redis scripts step by step (SET NX PX + INCR with the caller's floor,
compare-and-extend, compare-and-delete, fenced status writes), so the contract suite
(tests/integration/test_lease_contract.py) runs unchanged on both, and the protocol can be
checked exhaustively on a fake clock (tests/unit/test_lease_protocol.py). A server can be cut
off (`partition`): its calls then raise CoordUnavailable, as a Redis it cannot reach would;
`lose_data()` is a Redis restarted without its data. Keys expire by `clock`, as Redis expires
them by its host's wall clock (an expiry is kept as a Unix time): a step of that clock moves
every expiry with it. `MemoryFloor` is the durable epoch floor
the ODB keeps (zato.odb.epoch.EpochFloor), which a Redis data loss does not touch.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zato.common.errors import CoordUnavailable, LeaseLost
from zato.config.settings import LeaseSettings
from zato.coord.lease import Attempt


@dataclass
class MemoryCoord:
    """The shared state of one cluster, as its Redis would hold it."""

    clock: Callable[[], float] = time.monotonic  # the Redis host's clock: expiries are wall-clock times
    token: str = ""
    expires_at: float = 0.0
    epoch: int = 0
    info: dict | None = None
    status: dict | None = None
    messages: list[dict] = field(default_factory=list)  # what the lease channel carried
    unreachable: set[str] = field(default_factory=set)

    def pttl_ms(self) -> int:
        if not self.token:
            return -2
        left = self.expires_at - self.clock()
        if left <= 0:
            self.token, self.info, self.status = "", None, None
            return -2
        return max(1, int(left * 1000))

    def lose_data(self) -> None:
        self.token, self.expires_at, self.epoch, self.info, self.status = "", 0.0, 0, None, None

    def partition(self, server: str, cut: bool = True) -> None:
        (self.unreachable.add if cut else self.unreachable.discard)(server)


@dataclass
class MemoryFloor:
    """The highest epoch ever claimed, as the ODB keeps it (EpochFloor's read and claim)."""

    value: int = 0

    def available(self) -> bool:
        return True

    def read(self) -> int:
        return self.value

    def claim(self, epoch: int) -> bool:
        if epoch <= self.value:
            return False
        self.value = epoch
        return True


class MemoryLease:
    """One server's lease handle over a MemoryCoord (see zato.coord.lease.Lease)."""

    def __init__(
        self, coord: MemoryCoord, server: str, settings: LeaseSettings, floor: MemoryFloor | None = None
    ):
        self.coord = coord
        self.server = server
        self.settings = settings
        self.floor = floor
        self.token = ""
        self.epoch = 0
        self.highest_epoch = 0

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.ttl * 1000)

    def _reach(self, what: str) -> MemoryCoord:
        if self.server in self.coord.unreachable:
            raise CoordUnavailable(f"{what}: cannot reach the coordination store")
        return self.coord

    def remaining_ms(self, with_epoch: bool = True) -> int:
        c = self._reach("checking the lease")
        if with_epoch:
            self.highest_epoch = max(self.highest_epoch, c.epoch)
        return c.pttl_ms()

    def try_acquire(self) -> Attempt:
        if self.floor is not None:
            self.highest_epoch = max(self.highest_epoch, self.floor.read())
        c = self._reach("acquiring the lease")
        if c.pttl_ms() >= 0:
            self.highest_epoch = max(self.highest_epoch, c.epoch)
            return Attempt(False, c.epoch, c.pttl_ms())
        token = f"{self.server}:{secrets.token_hex(8)}"
        c.epoch = max(c.epoch + 1, self.highest_epoch + 1)
        c.token, c.expires_at = token, c.clock() + self.settings.ttl
        c.info = {"server": self.server, "epoch": c.epoch}
        c.messages.append({"event": "acquired", "server": self.server, "epoch": c.epoch})
        self.token, self.epoch = token, c.epoch
        self.highest_epoch = max(self.highest_epoch, c.epoch)
        if self.floor is not None and not self.floor.claim(self.epoch):
            # Issued before (Redis forgot it): give the lease back, compete above the floor.
            self.release()
            self.highest_epoch = max(self.highest_epoch, self.floor.read())
            return Attempt(False, self.highest_epoch, 0)
        return Attempt(True, c.epoch, self.ttl_ms)

    def renew(self) -> None:
        if not self.token:
            raise LeaseLost("not holding the lease")
        c = self._reach("renewing the lease")
        if c.pttl_ms() < 0 or c.token != self.token:
            self.token = ""
            raise LeaseLost(f"lease epoch {self.epoch} is no longer ours")
        c.expires_at = c.clock() + self.settings.ttl

    def release(self) -> bool:
        if not self.token:
            return False
        token, self.token = self.token, ""
        c = self._reach("releasing the lease")
        if c.pttl_ms() < 0 or c.token != token:
            return False
        c.token, c.info, c.status = "", None, None
        c.messages.append({"event": "released", "server": self.server, "epoch": self.epoch})
        return True

    def write_status(self, doc: dict, ttl: float) -> bool:  # noqa: ARG002 - the status expires with the lease
        token = self.token
        if not token:
            return False
        c = self._reach("writing the supervisor status")
        if c.pttl_ms() < 0 or c.token != token:
            return False
        c.status = json.loads(json.dumps(doc))
        return True

    def forget(self) -> None:
        self.token = ""
