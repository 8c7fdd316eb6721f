"""The periodic report (6-monthly, annual or monthly), already protected for publication.

Built from aggregate counters only (no per-person rows exist to build it from). The exports
(table, CSV, XLSX, DHIS2) render a ``PeriodReport``; none of them sees an unprotected count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from referrals.periods import Period
from referrals.tables import ProtectedTable

# The indicators of DESIGN §1, in report order.
INDICATORS = ("reached", "informed", "connected")
DEFAULT_TARGET_PERCENT = 70.0
# The row for people whose commune is not known (no commune chosen, no peer link).
UNKNOWN_COMMUNE = 0


class ScopeKind(StrEnum):
    WARD = "ward"
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
