"""self.time: Zato's date and time helpers, on Python's datetime.

Zato builds them on the Arrow library, so its formats are Arrow's tokens ('YYYY-MM-DD',
'DD/MM/YY HH:mm:ss', 'MMMM D, YYYY'), not strftime's: `self.time.utcnow()` is
'2026-12-06T18:57:38', `self.time.today()` '2026-12-06', and
`self.time.reformat('23-03-2013', 'DD-MM-YYYY', 'MM/DD/YY')` '03/23/13'. Arrow is not installed
here; the tokens are read by this module (the English names only, as Arrow's default locale).
A format with a '%' in it is strftime's, as this server took before.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

DATE = "YYYY-MM-DD"  # Zato's default formats
DATE_TIME = "YYYY-MM-DDTHH:mm:ss"
TIMESTAMP = "YYYY-MM-DDTHH:mm:ss.SSSSSS"

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]
MONTHS += ["November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Arrow's tokens, longest first; [text] is text as it is.
TOKEN = re.compile(
    r"\[(?:(?!\]).)*\]|YYYY|YY|MMMM|MMM|MM|M|Do|DDDD|DDD|DD|D|dddd|ddd|d|HH?|hh?|mm?|ss?|S+|ZZZ|ZZ|Z|a|A|X|x|W"
)


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _offset(value: dt.datetime, sep: str) -> str:
    off = value.utcoffset() or dt.timedelta(0)
    sign = "-" if off < dt.timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}{sep}{minutes % 60:02d}"


def _token_text(part: str, v: dt.datetime) -> str:  # noqa: C901, PLR0911, PLR0912 - one branch a token
    if part[0] == "[":
        return part[1:-1]
    if part[0] == "S":  # a fraction of a second, to as many digits as S's (at most 6)
        return f"{v.microsecond:06d}"[: min(len(part), 6)]
    simple = {
        "YYYY": f"{v.year:04d}",
        "YY": f"{v.year % 100:02d}",
        "MMMM": MONTHS[v.month - 1],
        "MMM": MONTHS[v.month - 1][:3],
        "MM": f"{v.month:02d}",
        "M": str(v.month),
        "Do": _ordinal(v.day),
        "DDDD": f"{v.timetuple().tm_yday:03d}",
        "DDD": str(v.timetuple().tm_yday),
        "DD": f"{v.day:02d}",
        "D": str(v.day),
        "dddd": DAYS[v.weekday()],
        "ddd": DAYS[v.weekday()][:3],
        "d": str(v.isoweekday()),
        "HH": f"{v.hour:02d}",
        "H": str(v.hour),
        "hh": f"{(v.hour % 12) or 12:02d}",
        "h": str((v.hour % 12) or 12),
        "mm": f"{v.minute:02d}",
        "m": str(v.minute),
        "ss": f"{v.second:02d}",
        "s": str(v.second),
        "A": "AM" if v.hour < 12 else "PM",
        "a": "am" if v.hour < 12 else "pm",
    }
    if part in simple:
        return simple[part]
    aware = v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)  # naive: UTC, as Arrow takes it
    if part == "X":
        return str(int(aware.timestamp()))
    if part == "x":
        return str(int(aware.timestamp() * 1_000_000))
    if part == "ZZZ":
        return aware.tzname() or ""
    if part in ("ZZ", "Z"):
        return _offset(aware, ":" if part == "ZZ" else "")
    year, week, day = v.isocalendar()  # W
    return f"{year}-W{week:02d}-{day}"


def format_as(value: dt.datetime | dt.date, fmt: str) -> str:
    """`value` written in Arrow's tokens (or strftime's, for a format with a '%')."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if "%" in fmt:
        return value.strftime(fmt)
    return TOKEN.sub(lambda m: _token_text(m.group(0), value), fmt)


# What each token reads when parsing (reformat's `from_`), as a regex group.
_NAMES = "|".join(MONTHS + [m[:3] for m in MONTHS])
_DAY_NAMES = "|".join(DAYS + [d[:3] for d in DAYS])
_READS = {
    "YYYY": r"(?P<YYYY>\d{4})",
    "YY": r"(?P<YY>\d{2})",
    "MMMM": rf"(?P<MMMM>{_NAMES})",
    "MMM": rf"(?P<MMM>{_NAMES})",
    "MM": r"(?P<MM>\d{2})",
    "M": r"(?P<M>\d{1,2})",
    "Do": r"(?P<Do>\d{1,2})(?:st|nd|rd|th)",
    "DDDD": r"(?P<DDDD>\d{3})",
    "DDD": r"(?P<DDD>\d{1,3})",
    "DD": r"(?P<DD>\d{2})",
    "D": r"(?P<D>\d{1,2})",
    "dddd": rf"(?:{_DAY_NAMES})",
    "ddd": rf"(?:{_DAY_NAMES})",
    "d": r"[1-7]",
    "HH": r"(?P<HH>\d{2})",
    "H": r"(?P<H>\d{1,2})",
    "hh": r"(?P<hh>\d{2})",
    "h": r"(?P<h>\d{1,2})",
    "mm": r"(?P<mm>\d{2})",
    "m": r"(?P<m>\d{1,2})",
    "ss": r"(?P<ss>\d{2})",
    "s": r"(?P<s>\d{1,2})",
    "A": r"(?P<A>AM|PM|am|pm)",
    "a": r"(?P<a>am|pm|AM|PM)",
    "X": r"(?P<X>\d+(?:\.\d+)?)",
    "x": r"(?P<x>\d+)",
    "ZZ": r"(?P<ZZ>Z|[+-]\d{2}:?\d{2}|[+-]\d{2})",
    "Z": r"(?P<Z>Z|[+-]\d{2}:?\d{2}|[+-]\d{2})",
}


@functools.lru_cache(maxsize=256)
def _parser(fmt: str) -> re.Pattern[str]:
    parts, at, seen = [], 0, set()
    for m in TOKEN.finditer(fmt):
        parts.append(re.escape(fmt[at : m.start()]))
        part, at = m.group(0), m.end()
        if part[0] == "[":
            parts.append(re.escape(part[1:-1]))
            continue
        if part[0] == "S":
            read = r"(?P<S>\d+)"
        elif part in _READS:
            read = _READS[part]
        else:  # ZZZ (a zone's name) and W (an ISO week) are not read here
            raise ValueError(f"the format token {part} cannot be read here (only written)")
        group = read[4 : read.index(">")] if read.startswith("(?P<") else ""
        if group in seen:  # a token twice: the second must say the same, as a backreference
            read = f"(?P={group})"
        seen.add(group)
        parts.append(read)
    parts.append(re.escape(fmt[at:]))
    return re.compile("".join(parts), re.IGNORECASE)


def _tz(text: str) -> dt.tzinfo:
    if text.upper() == "Z":
        return dt.timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return dt.timezone(sign * dt.timedelta(minutes=minutes))


def _month(name: str) -> int:
    return next(i for i, m in enumerate(MONTHS, 1) if m.lower().startswith(name.lower()[:3]))


def parse(value: str, fmt: str) -> dt.datetime:
    """`value` read with Arrow's tokens in `fmt` (the whole of it must match); ValueError if
    it does not, naming both. A value without a zone is UTC, as Arrow takes it."""
    m = _parser(fmt).fullmatch(value.strip())
    if m is None:
        raise ValueError(f"{value!r} does not match the format {fmt!r}")
    try:
        return _datetime_of({k: v for k, v in m.groupdict().items() if v is not None})
    except (ValueError, OverflowError) as e:  # a month 13, a 30 February...
        raise ValueError(f"{value!r} read in the format {fmt!r} is no date: {e}") from None


def _datetime_of(g: dict[str, str]) -> dt.datetime:
    if "X" in g:
        return dt.datetime.fromtimestamp(float(g["X"]), dt.timezone.utc)
    if "x" in g:  # milliseconds or microseconds, told apart by their size as Arrow does
        n = int(g["x"])
        return dt.datetime.fromtimestamp(n / (1_000_000 if n > 10**14 else 1000), dt.timezone.utc)
    year = int(g["YYYY"]) if "YYYY" in g else None
    if year is None and "YY" in g:
        yy = int(g["YY"])
        year = 1900 + yy if yy > 68 else 2000 + yy  # as Arrow reads two digits
    year = year or 1
    name = g.get("MMMM") or g.get("MMM")
    month = int(g.get("MM") or g.get("M") or 0) or (_month(name) if name else 1)
    day = int(g.get("DD") or g.get("D") or g.get("Do") or 1)
    hour = int(g.get("HH") or g.get("H") or g.get("hh") or g.get("h") or 0)
    meridian = (g.get("A") or g.get("a") or "").lower()
    if meridian == "pm" and hour < 12:
        hour += 12
    elif meridian == "am" and hour == 12:
        hour = 0
    minute, second = int(g.get("mm") or g.get("m") or 0), int(g.get("ss") or g.get("s") or 0)
    micro = int((g.get("S", "") + "000000")[:6])
    zone = g.get("ZZ") or g.get("Z")
    out = dt.datetime(year, month, day, hour, minute, second, micro, _tz(zone) if zone else dt.timezone.utc)
    if "DDDD" in g or "DDD" in g:
        out = out.replace(month=1, day=1) + dt.timedelta(days=int(g.get("DDDD") or g["DDD"]) - 1)
    return out


def _zone(tz: Any) -> dt.tzinfo | None:
    """Zato's `tz=`: a zone's name ('Europe/Prague', 'UTC'), a tzinfo; None: the server's own."""
    if tz is None or isinstance(tz, dt.tzinfo):
        return tz
    if str(tz).upper() in ("UTC", "Z"):
        return dt.timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"self.time: no time zone named {tz!r}") from None


def _from_iso(value: Any) -> dt.datetime:
    """A datetime or date, or ISO 8601 text (as Arrow's get(value) reads it); UTC if zoneless."""
    if isinstance(value, dt.datetime):
        out = value
    elif isinstance(value, dt.date):
        out = dt.datetime(value.year, value.month, value.day)
    else:
        out = dt.datetime.fromisoformat(str(value).strip())
    return out if out.tzinfo else out.replace(tzinfo=dt.timezone.utc)


class TimeUtil:
    """self.time: Zato's helpers. Each returns text in `format` (Arrow's tokens), or with
    needs_format=False the datetime (utcnow: naive, in UTC, as Zato's other datetimes are)."""

    def now(
        self, format: str = DATE_TIME, tz: Any = None, needs_format: bool = True, delta: Any = None
    ) -> Any:  # noqa: A002
        now = dt.datetime.now(_zone(tz)) if tz is not None else dt.datetime.now().astimezone()
        if delta:
            now += delta
        return format_as(now, format) if needs_format else now

    def utcnow(self, format: str = DATE_TIME, needs_format: bool = True) -> Any:  # noqa: A002
        now = dt.datetime.now(dt.timezone.utc)
        return format_as(now, format) if needs_format else now.replace(tzinfo=None)

    def today(self, format: str = DATE, tz: Any = None, needs_format: bool = True) -> Any:  # noqa: A002
        day = self.now(tz=tz, needs_format=False).date()
        return format_as(day, format) if needs_format else day

    def yesterday(self, format: str = DATE_TIME, tz: Any = None, needs_format: bool = True) -> Any:  # noqa: A002
        return self.now(format, tz, needs_format, delta=dt.timedelta(days=-1))

    def tomorrow(self, format: str = DATE_TIME, tz: Any = None, needs_format: bool = True) -> Any:  # noqa: A002
        return self.now(format, tz, needs_format, delta=dt.timedelta(days=1))

    def isonow(self, tz: Any = None, needs_format: bool = True) -> Any:
        return self.now(TIMESTAMP, tz, needs_format)

    def isoutcnow(self, needs_format: bool = True) -> Any:
        return self.utcnow(TIMESTAMP, needs_format)

    def _from(self, value: Any, delta: dt.timedelta, format: str, needs_format: bool) -> Any:  # noqa: A002
        out = _from_iso(value) + delta
        return format_as(out, format) if needs_format else out

    def one_day_from(self, date: Any, format: str = DATE, needs_format: bool = True) -> Any:  # noqa: A002
        return self._from(date, dt.timedelta(days=1), format, needs_format)

    def one_hour_from(self, date: Any, format: str = DATE, needs_format: bool = True) -> Any:  # noqa: A002
        return self._from(date, dt.timedelta(hours=1), format, needs_format)

    def one_minute_from(self, date: Any, format: str = DATE, needs_format: bool = True) -> Any:  # noqa: A002
        return self._from(date, dt.timedelta(minutes=1), format, needs_format)

    def reformat(self, value: Any, from_: str, to: str) -> str:
        """Zato's: `value` read in the format `from_` and written in `to`, as
        reformat('23-03-2013', 'DD-MM-YYYY', 'MM/DD/YY') is '03/23/13'. A value that does not
        match is a ValueError naming it and the format (the service's 500, as in Zato)."""
        if isinstance(value, (dt.datetime, dt.date)):
            return format_as(value, to)
        return format_as(parse(str(value), from_), to)


TIME = TimeUtil()
