"""self.time's Arrow tokens (zato/service/timeutil.py), written and read by Arrow, as in Zato."""

from __future__ import annotations

import datetime as dt

import pytest

from zato.service.timeutil import TIME, format_as, parse

WHEN = dt.datetime(2013, 3, 23, 14, 5, 9, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("YYYY-MM-DDTHH:mm:ss", "2013-03-23T14:05:09"),
        ("DD/MM/YY", "23/03/13"),
        ("dddd, MMMM Do YYYY", "Saturday, March 23rd 2013"),
        ("ddd MMM D h:mm A", "Sat Mar 23 2:05 PM"),
        ("DDDD DDD d", "082 82 6"),
        ("ss.SSS ZZ Z", "09.500 +02:00 +0200"),
        ("[at] HH[h]", "at 14h"),
        ("%Y-%m-%d", "2013-03-23"),  # strftime's, as self.time took before
    ],
)
def test_format_writes_arrow_tokens(fmt: str, text: str) -> None:
    assert format_as(WHEN, fmt) == text


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("23-03-2013", "DD-MM-YYYY", dt.datetime(2013, 3, 23, tzinfo=dt.timezone.utc)),
        (
            "March 3, 2013 12:05 am",
            "MMMM D, YYYY h:mm a",
            dt.datetime(2013, 3, 3, 0, 5, tzinfo=dt.timezone.utc),
        ),
        ("2013-03-23T14:05:09.5+02:00", "YYYY-MM-DDTHH:mm:ss.SZZ", WHEN),
        ("13/082", "YY/DDDD", dt.datetime(2013, 3, 23, tzinfo=dt.timezone.utc)),
        ("1364040309", "X", WHEN.replace(microsecond=0)),
    ],
)
def test_parse_reads_arrow_tokens(value: str, fmt: str, expected: dt.datetime) -> None:
    assert parse(value, fmt) == expected


def test_reformat_and_what_it_refuses() -> None:
    assert TIME.reformat("23-03-2013", "DD-MM-YYYY", "MM/DD/YY") == "03/23/13"
    assert TIME.reformat(dt.date(2020, 2, 29), "ignored", "YYYY-MM-DD") == "2020-02-29"
    with pytest.raises(ValueError, match="'2013-03-23' does not match the format 'DD-MM-YYYY'"):
        TIME.reformat("2013-03-23", "DD-MM-YYYY", "YYYY")
    with pytest.raises(ValueError, match="'31-02-2013' read in the format 'DD-MM-YYYY' is no date"):
        TIME.reformat("31-02-2013", "DD-MM-YYYY", "YYYY")
    assert TIME.reformat("2013-W12-6", "W", "DD.MM.YYYY") == "23.03.2013"  # an ISO week day


def test_defaults_are_zatos() -> None:
    assert len(TIME.utcnow()) == len("2013-03-23T14:05:09")
    today = dt.date.today()
    assert TIME.today() in (today.isoformat(), (today + dt.timedelta(days=1)).isoformat())  # at midnight
    assert isinstance(TIME.today(needs_format=False), dt.date)
    assert TIME.utcnow(needs_format=False).tzinfo is None
    assert TIME.one_day_from("2013-12-31") == "2014-01-01"
    assert TIME.now("ZZ", tz="UTC") == "+00:00"
    with pytest.raises(ValueError, match="no time zone named 'Mars/Olympus'"):
        TIME.now(tz="Mars/Olympus")
