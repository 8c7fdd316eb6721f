"""Reporting periods: a month ("2026-03"), a half-year ("2026-H1") or a year ("2026").

Unique indicators are de-duplicated per person and period, so each kind of period has its own
counter metric: a person reached in March 2026 is counted once in "reached:m" on the day they
were first reached that month, once in "reached:h" for 2026-H1 and once in "reached:y" for 2026.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

_PATTERN = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>\d{2})|[Hh](?P<half>[12])))?$")


class PeriodKind(StrEnum):
    MONTH = "m"
    HALF = "h"
    YEAR = "y"


class PeriodError(ValueError):
    """A period is written in a form An Tâm does not know."""


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month, half-year or year."""

    start: dt.date
    kind: PeriodKind

    @classmethod
    def parse(cls, text: str) -> Period:
        """Read "2026-03", "2026-H1" (or "2026-h1") or "2026"."""
        match = _PATTERN.match(text.strip())
        if match is None:
            raise PeriodError(f"'{text}' is not a period: write 2026-03 (a month), 2026-H1 (a half-year) or 2026")
        year = int(match.group("year"))
        if not 2000 <= year <= 2100:
            raise PeriodError(f"year {year} is out of range (2000-2100)")
        if match.group("month"):
            month = int(match.group("month"))
            if not 1 <= month <= 12:
                raise PeriodError(f"month {month:02d} does not exist")
            return cls(dt.date(year, month, 1), PeriodKind.MONTH)
        if match.group("half"):
            return cls(dt.date(year, 1 if match.group("half") == "1" else 7, 1), PeriodKind.HALF)
        return cls(dt.date(year, 1, 1), PeriodKind.YEAR)

    @classmethod
    def containing(cls, day: dt.date, kind: PeriodKind) -> Period:
        if kind is PeriodKind.MONTH:
            return cls(day.replace(day=1), kind)
        if kind is PeriodKind.HALF:
            return cls(dt.date(day.year, 1 if day.month <= 6 else 7, 1), kind)
        return cls(dt.date(day.year, 1, 1), kind)

    @property
    def end(self) -> dt.date:
        """The last day of the period."""
        months = {PeriodKind.MONTH: 1, PeriodKind.HALF: 6, PeriodKind.YEAR: 12}[self.kind]
        index = self.start.year * 12 + self.start.month - 1 + months
        return dt.date(index // 12, index % 12 + 1, 1) - dt.timedelta(days=1)

    def months(self) -> list[dt.date]:
        """The first day of every month in the period."""
        found = []
        day = self.start
        while day <= self.end:
            found.append(day)
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return found

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end

    @property
    def key(self) -> str:
        """The text form: "2026-03", "2026-H1" or "2026"."""
        if self.kind is PeriodKind.MONTH:
            return f"{self.start.year}-{self.start.month:02d}"
        if self.kind is PeriodKind.HALF:
            return f"{self.start.year}-H{1 if self.start.month == 1 else 2}"
        return str(self.start.year)

    @property
    def dhis2(self) -> str:
        """DHIS2's period identifier: "202603", "2026S1" or "2026"."""
        if self.kind is PeriodKind.MONTH:
            return f"{self.start.year}{self.start.month:02d}"
        if self.kind is PeriodKind.HALF:
            return f"{self.start.year}S{1 if self.start.month == 1 else 2}"
        return str(self.start.year)

    def __str__(self) -> str:
        return self.key


def periods_of(day: dt.date) -> tuple[Period, Period, Period]:
    """The month, half-year and year that contain ``day``."""
    return (
        Period.containing(day, PeriodKind.MONTH),
        Period.containing(day, PeriodKind.HALF),
        Period.containing(day, PeriodKind.YEAR),
    )
