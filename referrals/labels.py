"""Labels of the figures staff see, in the reader's language: periods, communes, kinds of
service, a report's scope and date, spike days. Shared by the exports and the staff pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from content.i18n import Catalogs
from referrals.localtime import VIETNAM
from referrals.periods import Period, PeriodKind
from referrals.report import UNKNOWN_COMMUNE, CommuneLine, PeriodReport, ScopeKind


def period_label(period: Period, catalogs: Catalogs, locale: str = "vi") -> str:
    """Name a period as a report does: "Tháng 3/2026", "6 tháng đầu năm 2026", "Năm 2026"."""
    year = period.start.year
    if period.kind is PeriodKind.MONTH:
        month = catalogs.text(locale, f"report.month.{period.start.month}")
        return catalogs.text(locale, "report.period.month", {"month": month, "year": year})
    if period.kind is PeriodKind.HALF:
        key = "report.period.half1" if period.start.month == 1 else "report.period.half2"
        return catalogs.text(locale, key, {"year": year})
    return catalogs.text(locale, "report.period.year", {"year": year})


def commune_label(line: CommuneLine, catalogs: Catalogs, locale: str = "vi") -> str:
    """The commune's name, or "Chưa rõ xã" for the row of people whose commune is not known."""
    if line.code == UNKNOWN_COMMUNE or not line.name:
        return catalogs.text(locale, "report.unknown_commune")
    return line.name


def service_label(service_type: str, catalogs: Catalogs, locale: str = "vi") -> str:
    """The service type's label from the conversation catalog, capitalised for a heading."""
    try:
        text = catalogs.text(locale, f"service_type.{service_type}")
    except KeyError:
        # A type added to the content pack before its label must not stop the report going out.
        text = service_type
    return text[:1].upper() + text[1:]


def scope_label(report: PeriodReport, catalogs: Catalogs, locale: str = "vi") -> str:
    if report.scope.kind is ScopeKind.ALL or not (report.scope.name or report.scope.code):
        return catalogs.text(locale, "report.scope.all")
    return report.scope.name or str(report.scope.code)


def date_label(moment: dt.datetime, catalogs: Catalogs, locale: str) -> str:
    """A report's date, a Vietnamese calendar day: made at 23:00 UTC, it is dated the next day."""
    day = moment.astimezone(VIETNAM).date() if moment.tzinfo else moment.date()
    return catalogs.text(
        locale, "report.date", {"day": f"{day.day:02d}", "month": f"{day.month:02d}", "year": day.year}
    )


def spike_text(days: Sequence[dt.date]) -> str:
    """Spike days the Vietnamese way, for every locale: "12/03/2026, 15/03/2026"."""
    return ", ".join(day.strftime("%d/%m/%Y") for day in days)


__all__ = ["commune_label", "date_label", "period_label", "scope_label", "service_label", "spike_text"]
