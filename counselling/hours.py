"""On-duty hours: spans of a week in Vietnam's time, set per province or per commune.

A commune's own hours, when it has any, replace its province's for people of that commune.
Pure: the spans and the instant come in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from referrals.localtime import VIETNAM

WEEK_DAYS = 7
DAY_MINUTES = 24 * 60


@dataclass(frozen=True, order=True)
class Span:
    weekday: int  # 0 Monday … 6 Sunday
    starts: int  # minutes after local midnight
    ends: int

    def __post_init__(self) -> None:
        if not (0 <= self.weekday < WEEK_DAYS and 0 <= self.starts < self.ends <= DAY_MINUTES):
            raise ValueError("a span is a weekday 0-6 and 0 <= starts < ends <= 1440 minutes")


def applying(province_spans: Sequence[Span], commune_spans: Sequence[Span]) -> Sequence[Span]:
    """The hours that apply to a person of a commune: its own if it has any, else its province's."""
    return commune_spans or province_spans


def is_on(spans: Iterable[Span], now: dt.datetime) -> bool:
    local = now.astimezone(VIETNAM)
    minute = local.hour * 60 + local.minute
    return any(span.weekday == local.weekday() and span.starts <= minute < span.ends for span in spans)


def next_start(spans: Sequence[Span], now: dt.datetime) -> dt.datetime | None:
    """When the next span starts after ``now`` (an aware local time), or None without hours."""
    if not spans:
        return None
    local = now.astimezone(VIETNAM)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    best: dt.datetime | None = None
    for span in spans:
        for week in (0, 1):
            days = (span.weekday - local.weekday()) % WEEK_DAYS + WEEK_DAYS * week
            start = midnight + dt.timedelta(days=days, minutes=span.starts)
            if start > local and (best is None or start < best):
                best = start
    return best


def parse_spans(text: str) -> list[Span]:
    """Read "0 08:00-17:00, 5 08:00-11:30" (weekday, then times); raise ValueError saying what is wrong."""
    spans = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        try:
            day, times = part.split()
            start, end = times.split("-")
            spans.append(Span(int(day), _minutes(start), _minutes(end)))
        except ValueError as exc:
            raise ValueError(f"{part!r}: write a weekday 0-6 and HH:MM-HH:MM, e.g. '0 08:00-17:00'") from exc
    return sorted(spans)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(minutes) < 60 and 0 <= value <= DAY_MINUTES):
        raise ValueError(clock)
    return value
