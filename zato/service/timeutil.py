"""self.time: Zato's date and time helpers, on the Arrow library, as Zato's are.

Their formats are Arrow's tokens ('YYYY-MM-DD', 'DD/MM/YY HH:mm:ss', 'MMMM D, YYYY'), not
strftime's: `self.time.utcnow()` is '2026-12-06T18:57:38', `self.time.today()` '2026-12-06',
and `self.time.reformat('23-03-2013', 'DD-MM-YYYY', 'MM/DD/YY')` '03/23/13'
(https://arrow.readthedocs.io/en/latest/guide.html#supported-tokens). A format with a '%' in it
is strftime's, as this server took before. Arrow is imported on first use, so a worker whose
services never ask for the time does not load it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DATE = "YYYY-MM-DD"  # Zato's default formats
DATE_TIME = "YYYY-MM-DDTHH:mm:ss"
TIMESTAMP = "YYYY-MM-DDTHH:mm:ss.SSSSSS"


def format_as(value: dt.datetime | dt.date, fmt: str) -> str:
    """`value` written in Arrow's tokens (or strftime's, for a format with a '%'); a naive
    datetime or a date is taken as UTC, as Arrow takes it."""
    if "%" in fmt:
        return value.strftime(fmt)
    import arrow

    return arrow.get(value).format(fmt)


def parse(value: str, fmt: str) -> dt.datetime:
    """`value` read in the format `fmt` (Arrow's tokens); UTC unless it gives its zone.
    ValueError naming the value and the format when it does not match or is no date."""
    import arrow
    from arrow.parser import ParserError

    try:
        return arrow.get(value, fmt).datetime
    except ParserError as e:
        raise ValueError(f"self.time: {value!r} does not match the format {fmt!r} ({e})") from None
    except ValueError as e:  # it matched, but names no such day or time (31-02-2013)
        raise ValueError(f"self.time: {value!r} read in the format {fmt!r} is no date: {e}") from None


def _now(tz: Any) -> Any:
    """An Arrow of now in `tz` (a zone's name, 'UTC', a tzinfo; None: the server's own zone)."""
    import arrow
    from arrow.parser import ParserError

    try:
        return arrow.now(tz) if tz is not None else arrow.now()
    except ParserError:
        raise ValueError(f"self.time: no time zone named {tz!r}") from None


def _get(value: Any) -> Any:
    """An Arrow of a datetime, a date or ISO 8601 text (UTC if it gives no zone)."""
    import arrow

    return arrow.get(value)


class TimeUtil:
    """self.time: Zato's helpers. Each returns text in `format` (Arrow's tokens), or with
    needs_format=False the datetime (utcnow: naive, in UTC, as Zato's other datetimes are)."""

    def now(
        self, format: str = DATE_TIME, tz: Any = None, needs_format: bool = True, delta: Any = None
    ) -> Any:  # noqa: A002
        now = _now(tz)
        if delta:
            now = now + delta
        return _out(now.datetime, format, needs_format)

    def utcnow(self, format: str = DATE_TIME, needs_format: bool = True) -> Any:  # noqa: A002
        now = _now("UTC").datetime
        return format_as(now, format) if needs_format else now.replace(tzinfo=None)

    def today(self, format: str = DATE, tz: Any = None, needs_format: bool = True) -> Any:  # noqa: A002
        day = _now(tz).date()
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
        return _out((_get(value) + delta).datetime, format, needs_format)

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


def _out(value: dt.datetime, fmt: str, needs_format: bool) -> Any:
    return format_as(value, fmt) if needs_format else value


TIME = TimeUtil()
