"""Strict parsing of everything read from Redis (the trust boundary of `zato/coord`).

Redis is shared, and often has no password: whatever is read from it may have been written
by someone else. Every value is checked here by type, pattern and range before any other
part of the project sees it: names, hosts and ports by pattern and range, integers as
integers (never "5\\n", " 5", 5.0 or True). A bad value raises BadEntry, which callers
log once (`LogOnce`) and skip; it never reaches a config file, a command or an int() that
could crash a process.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading

from zato.common.errors import CoordDataError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
EPOCH_RE = re.compile(r"[0-9]{1,15}")  # below 2**53: exact in Lua's numbers and in JSON
MAX_EPOCH = 10**15 - 1
# The same rule in Lua, for scripts: read_epoch(key) is the epoch key as a number, 0 when it is
# missing, nil when it holds anything but 1-15 decimal digits or is not a string at all (a
# Redis writer's, damaged: a GET of a hash would fail the script after its first writes).
EPOCH_LUA = """
local function epoch_of(raw)
  if raw and string.match(raw, '^%d+$') and string.len(raw) <= 15 then return tonumber(raw) end
  if raw then return nil end
  return 0
end
local function read_epoch(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return 0 end
  if kind ~= 'string' then return nil end
  return epoch_of(redis.call('GET', key))
end
"""
# Lua for a script that writes more than one key: Redis keeps the writes a script made before
# one of its commands failed (WRONGTYPE: another Redis client replaced a list with a string),
# so such a script calls want(key, kind) for every key a later command could fail on, before
# its first write. A key of another type (missing is fine) stops it there with an error naming
# the key: nothing changed.
TYPES_LUA = """
local function want(key, kind)
  local got = redis.call('TYPE', key)['ok']
  if got ~= 'none' and got ~= kind then
    error({err = 'WRONGTYPE ' .. key .. ' holds a ' .. got .. ', not a ' .. kind
      .. ' (written by another Redis client?): nothing changed'})
  end
end
"""
MAX_PID = 2**22
MAX_TEXT = 1000


class BadEntry(CoordDataError):
    """A value read from Redis that does not have the shape it must have (retrying will not
    help until someone writes a good one)."""


def name(value: object, what: str = "name") -> str:
    """A server, connector or channel name: letters, digits, _ . - (up to 64)."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise BadEntry(f"{what} {_show(value)} is not a name (letters, digits, _ . -, up to 64)")
    return value


def host(value: object) -> str:
    """An IP address or a DNS host name; nothing that could carry a space or a newline."""
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if HOSTNAME_RE.fullmatch(value):
                return value
    raise BadEntry(f"host {_show(value)} is neither an IP address nor a host name")


def integer(value: object, what: str, lo: int, hi: int) -> int:
    """A JSON integer (not a bool, a float or a string) in lo..hi."""
    if type(value) is not int or not lo <= value <= hi:
        raise BadEntry(f"{what} {_show(value)} is not a whole number in {lo}..{hi}")
    return value


def port(value: object) -> int:
    return integer(value, "port", 1, 65535)


def number(value: object, what: str) -> float:
    """A finite JSON number (int or float, not a bool), e.g. a wall-clock time for display."""
    if type(value) not in (int, float) or not isinstance(value, (int, float)):
        raise BadEntry(f"{what} {_show(value)} is not a number")
    if value != value or abs(value) > 1e12:  # NaN, or no time this side of year 33000
        raise BadEntry(f"{what} {_show(value)} is not a number")
    return float(value)


def choice(value: object, what: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise BadEntry(f"{what} {_show(value)} is not one of {', '.join(repr(a) for a in allowed)}")
    return value


def flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadEntry(f"{what} {_show(value)} is not true or false")
    return value


def text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    """Free text for display (an error message): a string, cut to `limit` characters."""
    if not isinstance(value, str):
        raise BadEntry(f"{what} {_show(value)} is not text")
    return value[:limit]


def epoch(raw: object) -> int:
    """A fencing epoch as Redis stores it: decimal digits only (GET returns a string)."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if raw is None:
        return 0
    if isinstance(raw, str) and EPOCH_RE.fullmatch(raw):
        return int(raw)
    if type(raw) is int and 0 <= raw <= MAX_EPOCH:
        return raw
    raise BadEntry(f"the lease epoch in Redis, {_show(raw)}, is not a whole number in 0..{MAX_EPOCH}")


def _show(value: object) -> str:
    """A value in an error message: repr, short, on one line."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class LogOnce:
    """Logs each distinct message once (bounded), so a bad entry read every tick does not
    flood the log; a message may be said again after `forget()` (e.g. when it went away)."""

    def __init__(self, logger: logging.Logger, limit: int = 1000):
        self.logger, self.limit = logger, limit
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def warning(self, message: str) -> None:
        with self._lock:
            if message in self._said:
                return
            if len(self._said) >= self.limit:
                self._said.clear()
            self._said.add(message)
        self.logger.warning("%s", message)

    def forget(self) -> None:
        with self._lock:
            self._said.clear()
