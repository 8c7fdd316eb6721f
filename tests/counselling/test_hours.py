"""On-duty hours in Vietnam's time."""

from __future__ import annotations

import datetime as dt

import pytest

from counselling.hours import Span, applying, is_on, next_start, parse_spans
from referrals.localtime import VIETNAM

# Monday 2026-12-07, 07:30 in Vietnam.
MONDAY_EARLY = dt.datetime(2026, 12, 7, 7, 30, tzinfo=VIETNAM)
WEEKDAYS = [Span(day, 8 * 60, 17 * 60) for day in range(5)]


def test_on_and_off_duty() -> None:
    assert not is_on(WEEKDAYS, MONDAY_EARLY)
    assert is_on(WEEKDAYS, MONDAY_EARLY + dt.timedelta(hours=1))
    assert is_on(WEEKDAYS, (MONDAY_EARLY + dt.timedelta(hours=1)).astimezone(dt.UTC)), "any zone in, Vietnam's clock used"
    assert not is_on(WEEKDAYS, MONDAY_EARLY + dt.timedelta(days=5, hours=1)), "Saturday"


def test_next_start() -> None:
    assert next_start(WEEKDAYS, MONDAY_EARLY) == MONDAY_EARLY.replace(hour=8, minute=0)
    friday_evening = MONDAY_EARLY + dt.timedelta(days=4, hours=12)
    assert next_start(WEEKDAYS, friday_evening) == (MONDAY_EARLY + dt.timedelta(days=7)).replace(hour=8, minute=0)
    assert next_start([], MONDAY_EARLY) is None


def test_a_communes_hours_replace_its_provinces() -> None:
    own = [Span(5, 8 * 60, 11 * 60)]
    assert applying(WEEKDAYS, own) == own
    assert applying(WEEKDAYS, []) == WEEKDAYS


def test_parse_spans() -> None:
    assert parse_spans("0 08:00-17:00, 5 08:00-11:30") == [Span(0, 480, 1020), Span(5, 480, 690)]
    for wrong in ("7 08:00-09:00", "0 09:00-08:00", "0 8h-9h", "monday 08:00-09:00", "0 08:60-09:00"):
        with pytest.raises(ValueError):
            parse_spans(wrong)
