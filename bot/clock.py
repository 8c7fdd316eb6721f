"""Time as an argument: the system clock, and a settable clock for tests."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from referrals.localtime import local_day


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that stands still until moved."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


def today(clock: Clock) -> dt.date:
    """The local day (Vietnam) on ``clock``."""
    return local_day(clock.now())
