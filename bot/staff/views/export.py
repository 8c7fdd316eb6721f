"""Exporting the periodic report (XLSX, CSV, DHIS2 JSON) for a chosen period and scope.

The download is a POST with the CSRF token, not a GET link: an export is recorded in the audit
log (a change of state), every change of state in this app is a POST, and the chosen period
and scope then stay out of the browser history and any proxy's request line. The file is the
same protected report as `antam report` writes (referrals/exports.py), in the page's language.
"""

from __future__ import annotations

import json

from aiohttp import web

from bot.clock import today
from bot.staff.auth import Viewer
from bot.staff.figures import default_period, period_choices
from bot.staff.forms import form_of, text
from bot.staff.places import communes_of, export_scope, scope_words
from bot.staff.render import locale_of, render
from bot.staff.state import SERVICES
from referrals import exports
from referrals.periods import Period, PeriodError
from referrals.published import period_report
from referrals.report import Scope, ScopeKind
from storage.staff import add_audit

AUDIT_ACTION = "export"
FORMATS = {
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "csv": ("csv", "text/csv; charset=utf-8"),
    "dhis2": ("json", "application/json"),
}


def _scope_choices(viewer: Viewer, request: web.Request) -> list[tuple[str, str]]:
    services = request.app[SERVICES]
    communes = services.context.communes
    t = services.renderer.catalogs
    locale = locale_of(request)
    if viewer.scope.commune is not None:
        commune = communes.get(viewer.scope.commune)
        return [(f"ward:{viewer.scope.commune}", commune.label if commune else str(viewer.scope.commune))]
    if viewer.scope.everywhere:
        choices = [("all", t.text(locale, "staff.export.everywhere"))]
        choices += [(f"province:{code}", name) for code, name in sorted(communes.provinces.items(), key=lambda i: i[1])]
        return choices
    province = viewer.scope.province
    if province is None:  # pragma: no cover - an admin has a province or is national
        return []
    name = communes.provinces.get(province, str(province))
    choices = [(f"province:{province}", t.text(locale, "staff.export.whole_province", {"province": name}))]
    choices += [(f"ward:{c.code}", c.name) for c in communes_of(communes, province)]
    return choices


def filename(period: Period, scope: Scope, fmt: str) -> str:
    """antam-2026-H1-xa-3390.xlsx, antam-2026-tinh-12.csv, antam-2026-03-toan-quoc.json."""
    if scope.kind is ScopeKind.COMMUNE:
        where = f"xa-{scope.code}"
    elif scope.kind is ScopeKind.PROVINCE:
        where = f"tinh-{scope.code}"
    else:
        where = "toan-quoc"
    return f"antam-{period.key}-{where}.{FORMATS[fmt][0]}"


async def _form(
    request: web.Request, viewer: Viewer, *, values: dict[str, str] | None = None, error: str | None = None,
    notice: str | None = None, status: int = 200,
) -> web.Response:
    services = request.app[SERVICES]
    day = today(services.clock)
    choices = _scope_choices(viewer, request)
    values = values or {"period": default_period(day).key, "scope": choices[0][0] if choices else "", "format": "xlsx"}
    context = {
        "periods": period_choices(day, services.renderer.catalogs, locale_of(request)),
        "scopes": choices,
        "formats": list(FORMATS),
        "values": values,
        "error": error,
        "notice": notice,
    }
    return await render(request, "export.html", context, status=status)


async def export_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _form(request, viewer)


async def export_download(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    catalogs, locale = services.renderer.catalogs, locale_of(request)
    form = await form_of(request)
    values = {
        "period": text(form, "period", limit=10),
        "scope": text(form, "scope", limit=20),
        "format": text(form, "format", limit=10),
    }
    scope = export_scope(viewer, services.context.communes, values["scope"])  # 404 outside the viewer's scope
    try:
        period = Period.parse(values["period"])
    except PeriodError:
        return await _form(request, viewer, values=values, error="staff.export.error.period", status=400)
    fmt = values["format"]
    if fmt not in FORMATS:
        return await _form(request, viewer, values=values, error="staff.export.error.format", status=400)
    async with services.db.transaction() as db:
        report = await period_report(
            db, period=period, scope=scope, communes=services.context.communes, now=services.clock.now(),
            pack=services.context.pack,
        )
        if report is None:
            return await _form(request, viewer, values=values, notice="staff.export.empty")
        await add_audit(
            db, now=services.clock.now(), actor=viewer.username, action=AUDIT_ACTION,
            detail=f"exported {period.key} {scope_words(scope)} {fmt}",
            province=scope.code if scope.kind is ScopeKind.PROVINCE else _province_of(request, scope),
        )
    if fmt == "xlsx":
        body = exports.to_xlsx(report, catalogs, locale)
    elif fmt == "csv":
        body = exports.csv_bytes(report, catalogs, locale)
    else:
        payload = exports.to_dhis2(report, exports.DEFAULT_DHIS2_MAPPING).payload
        body = (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return web.Response(
        body=body,
        headers={
            "Content-Type": FORMATS[fmt][1],
            "Content-Disposition": f'attachment; filename="{filename(period, scope, fmt)}"',
            "Cache-Control": "no-store",
        },
    )


def _province_of(request: web.Request, scope: Scope) -> int | None:
    if scope.kind is ScopeKind.COMMUNE and scope.code is not None:
        commune = request.app[SERVICES].context.communes.get(scope.code)
        return commune.province_code if commune else None
    return None

