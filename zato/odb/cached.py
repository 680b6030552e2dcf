"""Definitions a worker reads from the ODB while it serves requests (security definitions of
secured channels, outgoing connections), kept in memory so that no request waits for the ODB
once a definition was read, and kept on while the ODB cannot be read, as a worker's channels
and services stay in memory.

    defs = Cached(load, "security definition")   # load(name) -> dict | None, or ODBError
    defs.get(name)        # the definition (None: there is none); ODBError if never read and
                          # the ODB cannot be read now
    defs.forget(name)     # a config event said it changed: read it again on its next use

- The first use of a name reads it on the request's path, and so does the first use after
  `forget` (the config event of a change: the change applies at once).
- A definition older than RECHECK seconds is read again in the background by its next use,
  which answers with the one it has; so a missed event delays a change by RECHECK seconds and
  one use, and a request never waits on a database that does not answer (a host cut off
  holds a connection attempt for PostgreSQL's connect_timeout, 10 s).
- When a read fails with ODBError the ODB counts as away: uses answer from memory (ODBError
  at once for a name never read), and one read at a time is tried in the background, at most
  every RECHECK seconds, until one works. The log says once when the ODB went away and once
  when it came back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zato.common.errors import ODBError

logger = logging.getLogger(__name__)

RECHECK = 2.0  # seconds a definition read from the ODB is trusted without a config event

Loader = Callable[[str], "dict | None"]


def _in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="odb-reread", daemon=True).start()  # a greenlet in a worker


class Cached:
    def __init__(
        self,
        load: Loader,
        what: str,
        recheck: float = RECHECK,
        clock: Callable[[], float] = time.monotonic,
        background: Callable[[Callable[[], None]], None] = _in_background,
    ):
        self._load, self.what, self.recheck, self._clock = load, what, recheck, clock
        self._background = background
        self._defs: dict[str, tuple[float, dict | None]] = {}  # name -> (when read, definition)
        self._before: dict[str, dict | None] = {}  # forgotten: used only while the ODB is away
        self._away: ODBError | None = None  # the last read failed
        self._next_try = 0.0  # while away: when the background may try the ODB again
        self._reading: set[str] = set()  # names read in the background now
        self._forgotten: dict[str, int] = {}  # name -> how many times forget() was called
        self._lock = threading.Lock()

    def forget(self, name: str) -> None:
        self._forgotten[name] = self._forgotten.get(name, 0) + 1  # a read begun before is stale
        hit = self._defs.pop(name, None)
        if hit is not None:
            self._before[name] = hit[1]

    def get(self, name: str) -> dict | None:
        now = self._clock()
        hit = self._defs.get(name)
        if hit is not None:
            if now - hit[0] > self.recheck:
                self._read_later(name, now)
            return hit[1]
        if self._away is None:
            try:
                return self._read(name)
            except ODBError as e:
                self._went_away(e, now)
        self._read_later(name, now)
        if name in self._before:
            return self._before[name]
        raise ODBError(f"cannot read {self.what} {name!r}: {self._away}")

    def _read(self, name: str) -> dict | None:
        forgotten = self._forgotten.get(name, 0)
        value = self._load(name)
        if self._forgotten.get(name, 0) == forgotten:  # else a change came meanwhile: not kept
            self._defs[name] = (self._clock(), value)
            self._before.pop(name, None)
        return value

    def _went_away(self, e: ODBError, now: float) -> None:
        with self._lock:
            if self._away is None:
                logger.warning(
                    "cannot read %ss from the ODB (%s): using those read before, and trying again"
                    " every %.0f s in the background",
                    self.what,
                    e,
                    self.recheck,
                )
            self._away, self._next_try = e, now + self.recheck

    def _read_later(self, name: str, now: float) -> None:
        with self._lock:
            if name in self._reading or (self._away is not None and (self._reading or now < self._next_try)):
                return
            self._reading.add(name)
        self._background(lambda: self._read_behind(name))

    def _read_behind(self, name: str) -> None:
        try:
            self._read(name)
        except ODBError as e:
            self._went_away(e, self._clock())
            return
        except Exception:  # noqa: BLE001 - a bug must not end the re-reads
            logger.exception("cannot read %s %r from the ODB", self.what, name)
            return
        finally:
            with self._lock:
                self._reading.discard(name)
        if self._away is not None:
            self._away = None
            logger.info("the ODB answers again: %ss are read from it again", self.what)
