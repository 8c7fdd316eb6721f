"""The periodic report (6-monthly, annual or monthly), already protected for publication.

Built from aggregate counters only (no per-person rows exist to build it from). The exports
(table, CSV, XLSX, DHIS2) render a ``PeriodReport``; none of them sees an unprotected count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from referrals.counting import UNIQUE_INDICATORS
from referrals.periods import Period
from referrals.tables import ProtectedTable

# The indicators (docs/architecture.md, "Indicators"), in report order: the counting's own.
INDICATORS = UNIQUE_INDICATORS
DEFAULT_TARGET_PERCENT = 70.0
# The row for people whose commune is not known (no commune chosen, no peer link).
UNKNOWN_COMMUNE = 0
# The spike rule: a day's new reach (people counted "reached" for the first time that month, on
# that day) is a spike when it is above SPIKE_FACTOR × the median of the SPIKE_BASELINE days
# before it, and above the floor: SPIKE_FLOOR, or the small-cell threshold if that is higher.
# The median, not the mean, so one earlier burst does not hide the next; the floor, so a quiet
# commune going from 0 to 3 is not a spike.
SPIKE_FACTOR = 3
SPIKE_BASELINE = 14
SPIKE_FLOOR = 10


def spike_floor(threshold: int) -> int:
    return max(SPIKE_FLOOR, threshold)


class ScopeKind(StrEnum):
    COMMUNE = "ward"  # the value is the "ward:CODE" of the export form and stored keys
    PROVINCE = "province"
    ALL = "all"


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    code: int | None = None  # commune or province code; None for ALL
    name: str = ""  # "Xã Bình Lư (Lai Châu)", "Tỉnh Lai Châu", "" for all


@dataclass(frozen=True)
class CommuneLine:
    """A row of the report: one commune (2025 code), or UNKNOWN_COMMUNE."""

    code: int
    name: str  # "Xã Bình Lư"; empty for UNKNOWN_COMMUNE (exports write their own label)
    province_code: int
    province_name: str


@dataclass(frozen=True)
class Progress:
    """One indicator of one commune (or of the whole scope) against its target."""

    estimate: int | None  # population-size estimate for the year; None when not entered
    target_percent: float
    # count ÷ estimate × 100, one decimal; None when the count is hidden or there is no estimate.
    percent: float | None

    @property
    def met(self) -> bool | None:
        return None if self.percent is None else self.percent >= self.target_percent


@dataclass(frozen=True)
class PeriodReport:
    period: Period
    scope: Scope
    generated_at: dt.datetime
    threshold: int
    communes: tuple[CommuneLine, ...]
    # communes × INDICATORS, unique people; column totals are the scope's totals.
    people: ProtectedTable
    # communes × INDICATORS, and the scope's own line (None where it cannot be published).
    progress: tuple[tuple[Progress, ...], ...]
    total_progress: tuple[Progress, ...]
    # Columns of the referral tables: service types (content pack ids, e.g. "hiv_testing").
    service_types: tuple[str, ...]
    # communes × service_types, with row totals, column totals and a grand total.
    issued: ProtectedTable
    redeemed: ProtectedTable
    # Per commune: redeemed ÷ issued × 100 in the period, one decimal; None when either is
    # hidden or nothing was issued.
    uptake: tuple[float | None, ...]
    total_uptake: float | None
    # communes × 1, with the column total: people not counted because their address block had
    # used its hourly allowance of new people (NOT_COUNTED_LIMIT). None in reports made without it.
    not_counted: ProtectedTable | None = None
    # Per commune: the days of the period on which its new reach rose far above its own
    # recent days (referrals.reporting.spike_days); empty where the commune's count is hidden.
    spikes: tuple[tuple[dt.date, ...], ...] = ()
