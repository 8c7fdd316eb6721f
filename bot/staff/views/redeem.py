"""Redeeming a referral code in a form: the same check, outcomes and wording as the command line.

Staff redeem at their own commune. A province admin chooses one of the province's communes or
"provincial service"; a national admin chooses the province first. Every attempt goes through
bot.redemption.redeem (throttled per place and per account); a code used is audited as "a code
for commune N" — never the code itself.
"""

from __future__ import annotations

from aiohttp import web

from bot.clock import today
from bot.redemption import redeem
from referrals.redeeming import Place, Redemption, Result
from bot.staff.auth import Viewer
from bot.staff.figures import day_text
from bot.staff.forms import form_of, text
from bot.staff.places import (
    PROVINCE_PLACE,
    PlaceMissing,
    RedeemPlace,
    chosen_province,
    communes_of,
    not_asking_names,
    province_choices,
    redeem_place,
)
from bot.staff.render import locale_of, render, see_other
from bot.staff.state import SERVICES
from content.pack import SERVICE_TYPES
from storage.staff import add_audit

AUDIT_ACTION = "redemption"
STATUS = {Redemption.REDEEMED: 200, Redemption.THROTTLED: 429}


def _message(request: web.Request, result: Result) -> str:
    """The outcome in the page's language, as `antam referral redeem` says it."""
    services = request.app[SERVICES]
    catalogs, locale = services.renderer.catalogs, locale_of(request)
    commune = services.context.communes.get(result.commune) if result.commune is not None else None
    minutes = int(result.retry_after.total_seconds() // 60) + 1 if result.retry_after else 0
    return catalogs.text(
        locale,
        f"staff.redeem.outcome.{result.outcome.value}",
        {"day": day_text(result.day), "commune": commune.label if commune else "?", "minutes": minutes},
    )


async def _page(
    request: web.Request,
    viewer: Viewer,
    *,
    province_raw: str,
    place_raw: str,
    code: str = "",
    where: RedeemPlace | None = None,
    error: str | None = None,
    done: str | None = None,
    status: int = 200,
) -> web.Response:
    services = request.app[SERVICES]
    communes = services.context.communes
    own = communes.get(viewer.scope.commune) if viewer.scope.commune is not None else None
    if own is not None:
        where = RedeemPlace(Place(commune=own.code), own.province_code, own)
    locale = locale_of(request)
    # Only what the directory entry says: "no need to ask a name" where a verified entry agreed to
    # it, nothing for the others (PrEP, ARV or methadone intake may need papers).
    no_name = [] if where is None else [s.texts(locale).name for s in not_asking_names(services.context.pack, where)]
    province = None if own is not None else chosen_province(viewer, communes, province_raw)
    needs_province = own is None and province is None
    choices = [] if province is None else [(c.code, c.name) for c in communes_of(communes, province)]
    context = {
        "own": own,
        "needs_province": needs_province,
        "provinces": province_choices(viewer, communes) if viewer.scope.everywhere else [],
        "province": province,
        "province_name": communes.provinces.get(province, "") if province is not None else "",
        "choices": choices,
        "place": place_raw,
        "province_place": PROVINCE_PLACE,
        "code": code,
        "no_name": no_name,
        "error": error,
        "done": done,
    }
    return await render(request, "redeem.html", context, status=status)


async def redeem_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    place_raw = request.query.get("place", "")
    province_raw = request.query.get("province", "")
    where = None
    if place_raw or province_raw:
        try:  # a remembered choice must still be inside the viewer's scope
            where = redeem_place(viewer, services.context.communes, province_raw, place_raw)
        except PlaceMissing:
            place_raw = ""
    kind = request.query.get("done")
    done = None
    if kind in SERVICE_TYPES:
        locale = locale_of(request)
        done = services.renderer.catalogs.text(
            locale,
            "staff.redeem.outcome.redeemed",
            {"service": services.renderer.catalogs.text(locale, f"service_type.{kind}"), "day": day_text(today(services.clock))},
        )
    return await _page(request, viewer, province_raw=province_raw, place_raw=place_raw, where=where, done=done)


async def redeem_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await form_of(request)
    code = text(form, "code", limit=40)
    province_raw = text(form, "province", limit=10)
    place_raw = text(form, "place", limit=10)
    try:
        where: RedeemPlace = redeem_place(viewer, services.context.communes, province_raw, place_raw)
    except PlaceMissing:
        return await _page(
            request, viewer, province_raw=province_raw, place_raw="", code=code,
            error=services.renderer.catalogs.text(locale_of(request), "staff.redeem.choose_place"), status=400,
        )
    result = await redeem(services, code, where.place, actor=viewer.username)
    if result.ok:
        async with services.db.transaction() as db:
            await add_audit(
                db, now=services.clock.now(), actor=viewer.username, action=AUDIT_ACTION,
                detail=f"redeemed a code for {where.audit_words}", province=where.province,
            )
        query = f"?done={result.service_type}"
        if viewer.scope.commune is None:
            query += f"&province={where.province}&place={where.form_value}"
        return see_other("/staff/redeem" + query)
    response = await _page(
        request, viewer, province_raw=str(where.province) if viewer.scope.commune is None else "",
        place_raw=where.form_value if viewer.scope.commune is None else "",
        code=code if result.outcome is not Redemption.ALREADY_USED else "", where=where,
        error=_message(request, result), status=STATUS.get(result.outcome, 400),
    )
    if result.outcome is Redemption.THROTTLED and result.retry_after is not None:
        response.headers["Retry-After"] = str(int(result.retry_after.total_seconds()) + 1)
    return response
