"""On-duty hours of the counsellor chat, set by admins: per province, and per commune where a
commune keeps hours of its own (they replace the province's for its people). Also the province's
setting whether commune counsellors see cases of people who chose no commune.

One weekday a row: a start and an end time, or nothing (no counselling that day). Everything is
checked before anything is saved; a mistake is named by its weekday, in the page's language.
Each save is one "counselling.hours" audit entry (which area; no times, no person).
"""

from __future__ import annotations

import re

from aiohttp import web

from bot.staff.auth import Viewer
from bot.staff.places import chosen_province, code_of, communes_of, province_choices
from bot.staff.render import render, see_other
from bot.staff.state import SERVICES
from counselling.hours import DAY_MINUTES, Span
from storage import counselling as store
from storage.staff import add_audit

PAGE = "/staff/counselling/hours"
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
WEEKDAYS = range(7)


def _minutes(raw: str) -> int | None:
    match = _TIME.match(raw.strip())
    if match is None:
        return None
    value = int(match.group(1)) * 60 + int(match.group(2))
    return value if value <= DAY_MINUTES else None


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def read_spans(form: dict[str, str]) -> tuple[list[Span], list[int]]:
    """The spans of the form (``start0``/``end0`` … for Monday …), and the weekdays with mistakes."""
    spans, wrong = [], []
    for day in WEEKDAYS:
        start, end = form.get(f"start{day}", "").strip(), form.get(f"end{day}", "").strip()
        if not start and not end:
            continue
        begins, ends = _minutes(start), _minutes(end)
        if begins is None or ends is None or begins >= ends:
            wrong.append(day)
            continue
        spans.append(Span(day, begins, ends))
    return spans, wrong


async def _page(
    request: web.Request, viewer: Viewer, province: int | None, commune: int, *,
    values: dict[str, str] | None = None, wrong: list[int] | None = None, done: bool = False, status: int = 200,
) -> web.Response:
    services = request.app[SERVICES]
    communes = services.context.communes
    rows, unassigned = [], False
    if province is not None:
        async with services.db.transaction() as session:
            rows = [row for row in await store.hours(session, province) if row.commune == commune]
            unassigned = await store.shows_unassigned(session, province)
    if values is None:
        values = {}
        for row in rows:
            values[f"start{row.weekday}"], values[f"end{row.weekday}"] = _clock(row.starts), _clock(row.ends)
    context = {
        "provinces": province_choices(viewer, communes) if viewer.scope.everywhere else [],
        "province": province,
        "province_name": communes.provinces.get(province, "") if province is not None else "",
        "communes": [(c.code, c.name) for c in communes_of(communes, province)] if province is not None else [],
        "commune": commune,
        "days": [(day, values.get(f"start{day}", ""), values.get(f"end{day}", ""), day in (wrong or [])) for day in WEEKDAYS],
        "unassigned": unassigned,
        "done": done,
        "wrong": bool(wrong),
    }
    return await render(request, "counselling_hours.html", context, status=status)


def _commune_in(request: web.Request, province: int | None, raw: str) -> int:
    if not raw.strip() or raw.strip() == "0":
        return 0
    code = code_of(raw)
    found = request.app[SERVICES].context.communes.get(code) if code is not None else None
    if found is None or province is None or found.province_code != province:
        raise web.HTTPNotFound()
    return found.code


async def hours_form(request: web.Request, viewer: Viewer) -> web.Response:
    communes = request.app[SERVICES].context.communes
    province = chosen_province(viewer, communes, request.query.get("province"))
    commune = _commune_in(request, province, request.query.get("commune", ""))
    return await _page(request, viewer, province, commune, done=request.query.get("done") == "1")


async def hours_submit(request: web.Request, viewer: Viewer) -> web.Response:
    services = request.app[SERVICES]
    form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
    province = chosen_province(viewer, services.context.communes, form.get("province"))
    if province is None:
        raise web.HTTPBadRequest()
    commune = _commune_in(request, province, form.get("commune", ""))
    spans, wrong = read_spans(form)
    if wrong:
        return await _page(request, viewer, province, commune, values=form, wrong=wrong, status=400)
    async with services.db.transaction() as session:
        await store.set_hours(session, province, commune, [(s.weekday, s.starts, s.ends) for s in spans])
        if commune == 0:
            await store.set_show_unassigned(session, province, form.get("unassigned") == "on")
        area = f"commune {commune}" if commune else f"province {province}"
        await add_audit(session, now=services.clock.now(), actor=viewer.username, action="counselling.hours",
                        detail=area, province=province)
    query = f"?province={province}&done=1" + (f"&commune={commune}" if commune else "")
    return see_other(PAGE + query)

