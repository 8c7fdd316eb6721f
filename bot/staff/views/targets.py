"""Population-size estimates and targets, for admins; the minimum package and the small-cell
threshold, for national admins only.

One indicator of one year of one province at a time: a row per commune with its estimate and
target. Everything is checked before anything is saved, so a form with one mistake saves
nothing and says, in Vietnamese, which commune and which field. Only rows whose values change
are written (an untouched commune gets no row). Each save is one "settings" audit entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from bot.clock import today
from bot.staff.auth import Viewer
from bot.staff.figures import number
from bot.staff.forms import Form, form_of, text
from bot.staff.places import chosen_province, code_of, communes_of, province_choices
from bot.staff.render import locale_of, render, see_other
from bot.staff.state import SERVICES
from content.geo import Commune
from referrals.counting import ENGAGEMENTS, UNIQUE_INDICATORS
from referrals.indicators import (
    MAX_THRESHOLD,
    IndicatorError,
    Target,
    load_policy,
    set_package,
    set_target,
    set_threshold,
    targets_for,
)
from referrals.report import DEFAULT_TARGET_PERCENT
from storage.staff import add_audit

AUDIT_ACTION = "settings"
MAX_ESTIMATE = 10_000_000
_GROUPED = re.compile(r"^\d{1,3}([ .,]\d{3})+$")
_DECIMAL = re.compile(r"^\d{1,3}([.,]\d{1,2})?$")
DONE = {"saved", "policy"}


def parse_estimate(raw: str) -> int | None:
    """A whole number as people type it ("1200", "1.200", "1 200"); None if it is not one."""
    cleaned = raw.strip()
    if _GROUPED.match(cleaned):
        cleaned = re.sub(r"[ .,]", "", cleaned)
    if not cleaned.isdigit() or len(cleaned) > 9:
        return None
    value = int(cleaned)
    return value if 1 <= value <= MAX_ESTIMATE else None


def parse_percent(raw: str) -> float | None:
    """A percentage above 0 and at most 100 ("70", "70,5", "70.5", "70 %"); None otherwise."""
    cleaned = raw.strip().removesuffix("%").strip()
    if not _DECIMAL.match(cleaned):
        return None
    value = float(cleaned.replace(",", "."))
    return value if 0 < value <= 100 else None


def _year(raw: str | None, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    cleaned = raw.strip()
    if not cleaned.isdigit() or len(cleaned) != 4 or not 2000 <= int(cleaned) <= 2100:
        raise web.HTTPBadRequest()
    return int(cleaned)


def _indicator(raw: str | None) -> str:
    if raw is None or raw == "":
        return UNIQUE_INDICATORS[0]
    if raw not in UNIQUE_INDICATORS:
        raise web.HTTPBadRequest()
    return raw


@dataclass(frozen=True)
class TargetRow:
    commune: Commune
    estimate: str  # as shown in the field
    target: str
    estimate_error: bool = False
    target_error: bool = False


def _shown_percent(value: float) -> str:
    return f"{value:g}"


async def _page(
    request: web.Request,
    viewer: Viewer,
    *,
    province: int | None,
    year: int,
    indicator: str,
    typed: dict[int, tuple[str, str]] | None = None,
    errors: list[str] | None = None,
    bad: set[tuple[int, str]] | None = None,
    policy_errors: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    services = request.app[SERVICES]
    communes = services.context.communes
    locale = locale_of(request)
    async with services.db.transaction() as db:
        policy = await load_policy(db)
        stored = await targets_for(db, year=year, province=province) if province is not None else {}
    rows = []
    if province is not None:
        for commune in communes_of(communes, province):
            target = stored.get((commune.code, indicator))
            if typed is not None and commune.code in typed:
                estimate, percent = typed[commune.code]
            else:
                estimate = "" if target is None or target.estimate is None else str(target.estimate)
                percent = _shown_percent(target.target_percent if target else DEFAULT_TARGET_PERCENT)
            rows.append(
                TargetRow(
                    commune, estimate, percent,
                    (commune.code, "estimate") in (bad or set()), (commune.code, "target") in (bad or set()),
                )
            )
    this_year = today(services.clock).year
    done = request.query.get("done")
    context = {
        "province": province,
        "province_name": communes.provinces.get(province, "") if province is not None else "",
        "provinces": province_choices(viewer, communes) if viewer.scope.everywhere else [],
        "year": year,
        "years": sorted({this_year - 1, this_year, this_year + 1, year}),
        "indicator": indicator,
        "indicators": UNIQUE_INDICATORS,
        "rows": rows,
        "errors": errors or [],
        "national": viewer.scope.everywhere,
        "policy": policy,
        "engagements": ENGAGEMENTS,
        "policy_errors": policy_errors or [],
        "max_threshold": MAX_THRESHOLD,
        "max_estimate": number(MAX_ESTIMATE, locale),
        "done": done if done in DONE else None,
    }
    return await render(request, "targets.html", context, status=status)


async def targets_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    province = chosen_province(viewer, services.context.communes, request.query.get("province"))
    year = _year(request.query.get("year"), today(services.clock).year)
    return await _page(request, viewer, province=province, year=year, indicator=_indicator(request.query.get("indicator")))


async def targets_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    form = await form_of(request)
    section = text(form, "section", limit=10)
    if section == "policy":
        return await _save_policy(request, viewer, form)
    if section != "targets":
        raise web.HTTPBadRequest()
    return await _save_targets(request, viewer, form)


async def _save_targets(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    services = request.app[SERVICES]
    communes = services.context.communes
    catalogs, locale = services.renderer.catalogs, locale_of(request)
    province_raw = text(form, "province", limit=10)
    if not province_raw:
        raise web.HTTPBadRequest()
    province = chosen_province(viewer, communes, province_raw)
    if province is None:  # pragma: no cover - chosen_province returns the code it was given
        raise web.HTTPBadRequest()
    year = _year(text(form, "year", limit=4), today(services.clock).year)
    indicator = _indicator(text(form, "indicator", limit=12))
    in_province = {c.code: c for c in communes_of(communes, province)}
    # A field naming a commune outside the province is outside the viewer's scope here.
    for name in form:
        kind, _, named = name.partition("-")
        if kind in ("estimate", "target") and named and code_of(named) not in in_province:
            raise web.HTTPNotFound()
    typed: dict[int, tuple[str, str]] = {}
    wanted: dict[int, tuple[int | None, float]] = {}
    errors: list[str] = []
    bad: set[tuple[int, str]] = set()
    for code, commune in in_province.items():
        estimate_raw = text(form, f"estimate-{code}", limit=20)
        target_raw = text(form, f"target-{code}", limit=20)
        if f"estimate-{code}" not in form and f"target-{code}" not in form:
            continue
        typed[code] = (estimate_raw, target_raw)
        estimate = parse_estimate(estimate_raw) if estimate_raw else None
        target = parse_percent(target_raw)
        if estimate_raw and estimate is None:
            errors.append(catalogs.text(locale, "staff.targets.error.estimate", {"commune": commune.name}))
            bad.add((code, "estimate"))
        if target is None:
            errors.append(catalogs.text(locale, "staff.targets.error.target", {"commune": commune.name}))
            bad.add((code, "target"))
        if (code, "estimate") not in bad and target is not None:
            wanted[code] = (estimate, target)
    if errors:
        return await _page(
            request, viewer, province=province, year=year, indicator=indicator, typed=typed, errors=errors, bad=bad,
            status=400,
        )
    now = services.clock.now()
    changed = 0
    async with services.db.transaction() as db:
        stored = await targets_for(db, year=year, province=province)
        for code, (estimate, target) in wanted.items():
            current = stored.get((code, indicator)) or Target(None, DEFAULT_TARGET_PERCENT)
            if (estimate is None or estimate == current.estimate) and target == current.target_percent:
                continue
            try:
                await set_target(
                    db, year=year, commune=code, province=province, indicator=indicator, estimate=estimate,
                    target_percent=target, now=now,
                )
            except IndicatorError as exc:  # pragma: no cover - the values were checked above
                raise web.HTTPBadRequest() from exc
            changed += 1
        if changed:
            await add_audit(
                db, now=now, actor=viewer.username, action=AUDIT_ACTION,
                detail=f"set {indicator} estimates and targets {year} for {changed} commune(s) in province {province}",
                province=province,
            )
    return see_other(f"/staff/targets?province={province}&year={year}&indicator={indicator}&done=saved")


async def _save_policy(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    """The minimum package and the threshold apply everywhere: national admins only."""
    if not viewer.scope.everywhere:
        raise web.HTTPForbidden()
    services = request.app[SERVICES]
    package = [value for value in form.getall("package", []) if isinstance(value, str)]
    threshold_raw = text(form, "threshold", limit=4)
    errors = []
    if not package or any(kind not in ENGAGEMENTS for kind in package):
        errors.append("staff.targets.error.package")
    threshold = int(threshold_raw) if threshold_raw.isdigit() and len(threshold_raw) <= 3 else None
    if threshold is None or not 2 <= threshold <= MAX_THRESHOLD:
        errors.append("staff.targets.error.threshold")
    year = today(services.clock).year
    if errors or threshold is None:
        return await _page(
            request, viewer, province=None, year=year, indicator=UNIQUE_INDICATORS[0], policy_errors=errors, status=400
        )
    now = services.clock.now()
    async with services.db.transaction() as db:
        before = await load_policy(db)
        try:
            chosen = await set_package(db, package, now=now)
            await set_threshold(db, threshold, now=now)
        except IndicatorError as exc:  # pragma: no cover - the values were checked above
            raise web.HTTPBadRequest() from exc
        if chosen != before.package or threshold != before.threshold:
            await add_audit(
                db, now=now, actor=viewer.username, action=AUDIT_ACTION,
                detail=f"set minimum package to {','.join(sorted(chosen))} and small-cell threshold to {threshold}",
            )
    return see_other("/staff/targets?done=policy")
