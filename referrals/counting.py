"""Turning what happens into aggregate counts (docs/architecture.md, "Indicators" and "Privacy invariants"), without per-person rows.

Two kinds of count:

* **events** — a referral issued, used or cancelled, a person accepting the notice: each adds
  one to the day's counter;
* **unique indicators** — *reached* (received the minimum package), *informed* (opened
  counselling information) and *connected* (used a referral at a service). Each person counts
  once per month, half-year and year. Which periods a person was already counted in is kept
  as ``Marks`` inside their sealed record, never in a table; the counter itself only learns
  "one more person, this day, this commune".

A person counted before naming a commune is counted under "Chưa rõ xã" (commune 0). Their marks
also note which of those counts were made there, and on which day; when they name a commune,
``attribute`` moves exactly those counts to it, once (see its docstring for why on that day).

Everything here is pure: the day and the marks come in, new marks and increments go out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from referrals.periods import Period, PeriodError, PeriodKind, periods_of

UNIQUE_INDICATORS = ("reached", "informed", "connected", "counselled")
# A counsellor chat closed with an outcome: it counts towards "counselled", and towards "reached"
# whatever the minimum package is (a person a counsellor talked with was reached).
COUNSELLING = "counselling"
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
# The commune code of counts made before the person named a commune ("Chưa rõ xã").
UNKNOWN = 0
# Where in the stored marks the counts made under UNKNOWN are noted (not an indicator's name).
_UNKNOWN_KEY = "unknown"


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
_NOTHING_UNKNOWN: Mapping[tuple[str, str], dt.date] = MappingProxyType({})


@dataclass(frozen=True)
class Marks:
    """The periods in which a person was already counted, per unique indicator.

    ``unknown``: of those marks, the ones counted under UNKNOWN, each with the day its count was
    made: {(indicator, period key): day}. A record written before this was kept has none, and
    is then "not known to be unknown": nothing of it is ever moved.
    """

    counted: Mapping[str, frozenset[str]] = field(default_factory=lambda: _NO_MARKS)
    unknown: Mapping[tuple[str, str], dt.date] = field(default_factory=lambda: _NOTHING_UNKNOWN)

    def has(self, indicator: str, period: Period) -> bool:
        return period.key in self.counted.get(indicator, frozenset())

    def with_mark(self, indicator: str, period: Period, *, unknown_on: dt.date | None = None) -> Marks:
        """With ``period`` marked; ``unknown_on``: the count was made under UNKNOWN on that day."""
        counted = dict(self.counted)
        counted[indicator] = counted.get(indicator, frozenset()) | {period.key}
        unknown = self.unknown
        if unknown_on is not None:
            unknown = MappingProxyType({**unknown, (indicator, period.key): unknown_on})
        return Marks(MappingProxyType(counted), unknown)

    def current(self, day: dt.date) -> Marks:
        """Only the marks of periods that contain ``day``: older ones can never matter again."""
        keep = {period.key for period in periods_of(day)}
        counted = {name: keys & keep for name, keys in self.counted.items() if keys & keep}
        unknown = {mark: on for mark, on in self.unknown.items() if mark[1] in keep}
        return Marks(MappingProxyType(counted), MappingProxyType(unknown))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: sorted(keys) for name, keys in sorted(self.counted.items())}
        if self.unknown:
            noted: dict[str, dict[str, str]] = {}
            for (indicator, key), on in sorted(self.unknown.items()):
                noted.setdefault(indicator, {})[key] = on.isoformat()
            data[_UNKNOWN_KEY] = noted
        return data

    @classmethod
    def from_json(cls, data: Any) -> Marks:
        """Read stored marks; anything malformed is dropped (worst case a person counts again,
        or a count made under UNKNOWN stays there)."""
        if not isinstance(data, dict):
            return cls()
        counted = {
            name: frozenset(key for key in keys if isinstance(key, str))
            for name, keys in data.items()
            if (name in UNIQUE_INDICATORS or name == LIMITED) and isinstance(keys, list)
        }
        return cls(MappingProxyType(counted), MappingProxyType(_read_unknown(data.get(_UNKNOWN_KEY), counted)))


def _read_unknown(data: Any, counted: Mapping[str, frozenset[str]]) -> dict[tuple[str, str], dt.date]:
    """The noted counts under UNKNOWN that are sound: a unique indicator's mark the person holds,
    with a day inside its period. Only those can be moved without making a count up."""
    found: dict[tuple[str, str], dt.date] = {}
    if not isinstance(data, dict):
        return found
    for indicator, periods in data.items():
        if indicator not in UNIQUE_INDICATORS or not isinstance(periods, dict):
            continue
        for key, text in periods.items():
            if not isinstance(key, str) or not isinstance(text, str) or key not in counted.get(indicator, ()):
                continue
            try:
                on, period = dt.date.fromisoformat(text), Period.parse(key)
            except (ValueError, PeriodError):
                continue
            if on in period and period.key == key:
                found[(indicator, key)] = on
    return found


def count_unique(marks: Marks, indicator: str, day: dt.date, where: Where) -> tuple[Marks, list[Increment]]:
    """Count a person for ``indicator`` in each period containing ``day`` they were not yet counted in."""
    increments = []
    unknown_on = day if where.commune == UNKNOWN else None
    for period in periods_of(day):
        if not marks.has(indicator, period):
            marks = marks.with_mark(indicator, period, unknown_on=unknown_on)
            increments.append(Increment(day, where, unique_metric(indicator, period.kind)))
    return marks, increments


def attribute(marks: Marks, commune: int, province: int, channel: str) -> tuple[Marks, list[Increment]]:
    """Move the person's counts made under UNKNOWN to the commune they named; return the marks
    without those notes (so it happens once) and the increments that make the move.

    Each noted (indicator, period) is one ``-1`` under UNKNOWN and one ``+1`` under ``commune``
    (and its province; UNKNOWN's province is 0), on the day the count was made, with the channel
    of the record (a pseudonym, so a record, belongs to one channel) and no peer link (a count
    under a peer link has the link's commune, never UNKNOWN). On that day, not today: the day
    is in every period the count belongs to, so every period's total stays right, per commune
    and overall; each day and month keeps its own total too, and the counter under UNKNOWN that
    is lowered holds this person's own +1 on that day, so no row a report sums goes below zero
    (moving today would leave UNKNOWN at -1 on today's row for a half-year count made in an
    earlier month). Days the housekeeping already summed into months go to those monthly rows
    (apply_increments with ``today``). Only the periods still in ``marks`` are moved: those
    containing the day the person names the commune (the caller passes ``current`` marks);
    closed months keep their figures.
    """
    if not marks.unknown or commune == UNKNOWN:
        return marks, []
    before, after = Where(UNKNOWN, 0, channel, ""), Where(commune, province, channel, "")
    increments = []
    for (indicator, key), on in sorted(marks.unknown.items()):
        metric = unique_metric(indicator, Period.parse(key).kind)
        increments.append(Increment(on, before, metric, count=-1))
        increments.append(Increment(on, after, metric))
    return replace(marks, unknown=_NOTHING_UNKNOWN), increments


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
    if engagement in set(package) or engagement == COUNSELLING:
        found.append("reached")
    if engagement == "topic":
        found.append("informed")
    if engagement == COUNSELLING:
        found.append("counselled")
    return found
