"""Turning what happens into aggregate counts (docs/architecture.md, "Indicators" and "Privacy invariants"), without per-person rows.

Two kinds of count:

* **events** — a referral issued, used or cancelled, a person accepting the notice: each adds
  one to the day's counter;
* **unique indicators** — *reached* (received the minimum package), *informed* (opened
  counselling information) and *connected* (used a referral at a service). Each person counts
  once per month, half-year and year. Which periods a person was already counted in is kept
  as ``Marks`` inside their sealed record, never in a table; the counter itself only learns
  "one more person, this day, this commune".

Everything here is pure: the day and the marks come in, new marks and increments go out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from referrals.periods import Period, PeriodKind, periods_of

UNIQUE_INDICATORS = ("reached", "informed", "connected")
# What a person can receive; "reached" needs one of the kinds in the package.
ENGAGEMENTS = ("topic", "services", "referral", "hotlines")
DEFAULT_PACKAGE = frozenset({"topic", "services", "referral"})
CONSENTED = "consented"
REFERRAL_ISSUED = "referral_issued"
REFERRAL_REDEEMED = "referral_redeemed"
REFERRAL_CANCELLED = "referral_cancelled"
EVENTS = (CONSENTED, REFERRAL_ISSUED, REFERRAL_REDEEMED, REFERRAL_CANCELLED)
# A person who would have been counted but whose address block had used its hourly allowance
# of new counted people (bot/admission.py): one per person and month, per commune and day.
NOT_COUNTED_LIMIT = "not_counted_limit"
# The mark (per month) that such a person was already added to NOT_COUNTED_LIMIT.
LIMITED = "limited"


def unique_metric(indicator: str, kind: PeriodKind) -> str:
    """The counter metric of a unique indicator for one kind of period: "reached:m"."""
    return f"{indicator}:{kind.value}"


@dataclass(frozen=True)
class Where:
    """Where a count belongs: commune (0 = unknown) and its province, channel and peer link."""

    commune: int = 0
    province: int = 0
    channel: str = ""
    peer: str = ""


@dataclass(frozen=True)
class Increment:
    day: dt.date
    where: Where
    metric: str
    detail: str = ""
    count: int = 1


_NO_MARKS: Mapping[str, frozenset[str]] = MappingProxyType({})


@dataclass(frozen=True)
class Marks:
    """The periods in which a person was already counted, per unique indicator."""

    counted: Mapping[str, frozenset[str]] = field(default_factory=lambda: _NO_MARKS)

    def has(self, indicator: str, period: Period) -> bool:
        return period.key in self.counted.get(indicator, frozenset())

    def with_mark(self, indicator: str, period: Period) -> Marks:
        counted = dict(self.counted)
        counted[indicator] = counted.get(indicator, frozenset()) | {period.key}
        return Marks(MappingProxyType(counted))

    def current(self, day: dt.date) -> Marks:
        """Only the marks of periods that contain ``day``: older ones can never matter again."""
        keep = {period.key for period in periods_of(day)}
        counted = {name: keys & keep for name, keys in self.counted.items() if keys & keep}
        return Marks(MappingProxyType(counted))

    def to_json(self) -> dict[str, list[str]]:
        return {name: sorted(keys) for name, keys in sorted(self.counted.items())}

    @classmethod
    def from_json(cls, data: Any) -> Marks:
        """Read stored marks; anything malformed is dropped (worst case a person counts again)."""
        if not isinstance(data, dict):
            return cls()
        counted = {
            name: frozenset(key for key in keys if isinstance(key, str))
            for name, keys in data.items()
            if (name in UNIQUE_INDICATORS or name == LIMITED) and isinstance(keys, list)
        }
        return cls(MappingProxyType(counted))


def count_unique(marks: Marks, indicator: str, day: dt.date, where: Where) -> tuple[Marks, list[Increment]]:
    """Count a person for ``indicator`` in each period containing ``day`` they were not yet counted in."""
    increments = []
    for period in periods_of(day):
        if not marks.has(indicator, period):
            marks = marks.with_mark(indicator, period)
            increments.append(Increment(day, where, unique_metric(indicator, period.kind)))
    return marks, increments


def count_engagement(
    marks: Marks,
    engagement: str,
    package: Iterable[str],
    day: dt.date,
    where: Where,
    *,
    admit: Callable[[], bool] | None = None,
) -> tuple[Marks, list[Increment]]:
    """Count one engagement towards the unique indicators it belongs to.

    ``admit`` is asked only for a *new counted person* — someone about to be counted who has
    no mark in any period containing ``day`` — and says whether their address block may add
    one more (None: no limit, as on Telegram and Zalo). Refused, the person is not counted and
    not marked, so a later visit may count them; one NOT_COUNTED_LIMIT is added instead, once
    a month per person.
    """
    counted, found = marks, []
    for indicator in indicators_for(engagement, package):
        counted, increments = count_unique(counted, indicator, day, where)
        found.extend(increments)
    new_person = not any(marks.counted.get(name) for name in UNIQUE_INDICATORS)
    if not found or admit is None or not new_person or admit():
        return counted, found
    month = Period.containing(day, PeriodKind.MONTH)
    if marks.has(LIMITED, month):
        return marks, []
    return marks.with_mark(LIMITED, month), [Increment(day, where, NOT_COUNTED_LIMIT)]


def indicators_for(engagement: str, package: Iterable[str]) -> list[str]:
    """The unique indicators an engagement counts towards, given the minimum package."""
    found = []
    if engagement in set(package):
        found.append("reached")
    if engagement == "topic":
        found.append("informed")
    return found
