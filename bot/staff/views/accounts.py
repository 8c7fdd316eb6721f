"""Staff accounts, for admins: list, create, deactivate, reactivate, reset, second factor.

A province admin sees and manages only accounts inside their province (staff of its communes
and its other admins); a national admin manages all. Nobody deactivates themselves or the
last active admin. One-time passwords appear once, in the answer to the form that made them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from bot.staff.auth import StaffView, Viewer, may_manage, require_manageable
from bot.staff.forms import form_of, path_id, text
from bot.staff.passwords import new_one_time_password, one_time_form
from bot.staff.render import render, see_other
from bot.staff.state import PASSWORDS, SERVICES
from content.geo import CommuneIndex
from storage.accounts import (
    AccountChange,
    AreaProblem,
    AreaRefused,
    Changed,
    NoSuchAccount,
    NotPermitted,
    account_area,
    change_account,
    open_account,
    reset_password,
)
from storage.staff import InvalidUsername, Role, UsernameTaken, get_account, list_accounts, normalise_username

DONE = {"deactivated", "reactivated", "totp_required", "totp_not_required", "totp_reset"}


async def accounts_list(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    now = services.clock.now()
    async with services.db.transaction() as db:
        accounts = await list_accounts(db, province=viewer.scope.province_filter)
    rows = [{"account": a, "locked": a.locked(now)} for a in accounts if may_manage(viewer, a)]
    return await render(request, "accounts.html", {"rows": rows})


async def account_detail(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    async with services.db.transaction() as db:
        account = require_manageable(viewer, await get_account(db, path_id(request)))
    done = request.query.get("done")
    return await render(
        request,
        "account.html",
        {
            "account": account,
            "locked": account.locked(services.clock.now()),
            "is_self": account.id == viewer.account_id,
            "done": done if done in DONE else None,
            "error": None,
        },
    )


# --- creating --------------------------------------------------------------------------------


@dataclass
class NewAccount:
    username: str = ""
    role: str = "staff"
    commune: str = ""  # the form field is named "ward"
    province: str = ""


def _province_choices(viewer: Viewer, communes: CommuneIndex) -> list[tuple[int, str]]:
    if viewer.scope.everywhere:
        return sorted(communes.provinces.items(), key=lambda item: item[1])
    province = viewer.scope.province
    return [(province, communes.provinces.get(province, str(province)))] if province is not None else []


def _commune_choices(viewer: Viewer, communes: CommuneIndex) -> list[tuple[int, str]]:
    """A province admin picks from the communes of their province; a national admin types a code."""
    if viewer.scope.everywhere or viewer.scope.province is None:
        return []
    found = [c for c in communes.by_code.values() if c.province_code == viewer.scope.province]
    return [(c.code, c.name) for c in sorted(found, key=lambda c: c.name)]


async def _new_form(
    request: web.Request, viewer: Viewer, values: NewAccount, errors: list[str], *, status: int = 200
) -> web.Response:
    communes = request.app[SERVICES].context.communes
    context = {
        "values": values,
        "errors": errors,
        "provinces": _province_choices(viewer, communes),
        "commune_choices": _commune_choices(viewer, communes),
    }
    return await render(request, "account_new.html", context, status=status)


async def account_new(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _new_form(request, viewer, NewAccount(), [])


# The page's words for each reason storage/accounts.py's account_area refuses an area (the
# catalog keys keep their first name, "ward").
_AREA_ERRORS = {
    AreaProblem.NO_COMMUNE: "staff.accounts.error.ward",
    AreaProblem.COMMUNE: "staff.accounts.error.ward",
    AreaProblem.PROVINCE: "staff.accounts.error.province",
    AreaProblem.ADMIN_COMMUNE: "staff.accounts.error.admin_ward",
    AreaProblem.OUTSIDE: "staff.accounts.error.outside",
    AreaProblem.NO_AREA: "staff.accounts.error.province",  # not met here: this form makes no counsellors
}


def check_new_account(
    viewer: Viewer, communes: CommuneIndex, values: NewAccount
) -> tuple[list[str], str, Role | None, int | None, int | None]:
    """Validate a new account against the admin's own scope: (errors, username, role, commune, province)."""
    errors: list[str] = []
    username = ""
    try:
        username = normalise_username(values.username)
    except InvalidUsername:
        errors.append("staff.accounts.error.username")
    role = Role(values.role) if values.role in (Role.STAFF, Role.ADMIN) else None
    commune = province = None
    if role is None:
        errors.append("staff.accounts.error.role")
        return errors, username, role, commune, province
    scope = viewer.scope
    try:
        commune, province = account_area(
            role, commune=values.commune.strip() or None, province=values.province.strip() or None,
            communes=communes.by_code, provinces=communes.provinces,
            may_cover=lambda code: scope.everywhere if code is None else scope.covers_province(code),
        )
    except AreaRefused as refused:
        errors += [_AREA_ERRORS[problem] for problem in refused.problems]
    return errors, username, role, commune, province


async def account_create(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await form_of(request)
    values = NewAccount(
        username=text(form, "username", limit=64),
        role=text(form, "role", limit=10),
        commune=text(form, "ward", limit=10),
        province=text(form, "province", limit=10),
    )
    errors, username, role, commune, province = check_new_account(viewer, services.context.communes, values)
    if errors or role is None:
        return await _new_form(request, viewer, values, errors, status=400)
    one_time = new_one_time_password()
    password_hash = await request.app[PASSWORDS].hash(one_time_form(one_time))
    try:
        async with services.db.transaction() as db:
            account = await open_account(
                db, username=username, role=role, commune=commune, province=province, password_hash=password_hash,
                now=services.clock.now(), actor=viewer.username,
            )
    except UsernameTaken:
        return await _new_form(request, viewer, values, ["staff.accounts.error.taken"], status=400)
    return await render(request, "one_time_password.html", {"account": account, "password": one_time, "created": True})


# --- actions on one account -------------------------------------------------------------------


async def _act(request: web.Request, viewer: Viewer, action: str) -> Changed:
    """Run one change on a manageable account (storage/accounts.py); 403, 404 or 400 as HTTP."""
    services = request.app[SERVICES]
    form = await form_of(request)
    if action == "totp":
        wanted = text(form, "required", limit=3)
        if wanted not in ("on", "off"):
            raise web.HTTPBadRequest()
        change = AccountChange.REQUIRE_TOTP if wanted == "on" else AccountChange.WAIVE_TOTP
    elif action == "counsels":
        wanted = text(form, "counsels", limit=3)
        if wanted not in ("on", "off"):
            raise web.HTTPBadRequest()
        change = AccountChange.COUNSELS if wanted == "on" else AccountChange.STOPS_COUNSELLING
    else:
        change = AccountChange(action)
    try:
        async with services.db.transaction() as db:
            return await change_account(
                db, actor_id=viewer.account_id, actor=viewer.username, target_id=path_id(request), change=change,
                may_manage=lambda account: may_manage(viewer, account), now=services.clock.now(),
            )
    except NotPermitted:
        raise web.HTTPForbidden() from None
    except NoSuchAccount:
        raise web.HTTPNotFound() from None


def _action_view(action: str, done: str | None = None) -> StaffView:
    async def view(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        changed = await _act(request, viewer, action)
        account, error = changed.account, changed.refused
        if error is not None:
            services = request.app[SERVICES]
            context = {
                "account": account,
                "locked": account.locked(services.clock.now()),
                "is_self": account.id == viewer.account_id,
                "done": None,
                "error": error,
            }
            return await render(request, "account.html", context, status=400)
        result = done or (
            ("totp_required" if account.totp_required else "totp_not_required") if action == "totp"
            else ("counsels" if account.counsels else "stops_counselling") if action == "counsels"
            else action
        )
        return see_other(f"/staff/accounts/{account.id}?done={result}")

    view.__name__ = f"account_{action}"
    return view


account_deactivate = _action_view("deactivate", "deactivated")
account_reactivate = _action_view("reactivate", "reactivated")
account_totp = _action_view("totp")
account_totp_reset = _action_view("totp_reset", "totp_reset")
account_counsels = _action_view("counsels")


async def account_reset_password(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """A new one-time password; the account's sessions end and any lockout is lifted."""
    services = request.app[SERVICES]
    target_id = path_id(request)
    async with services.db.transaction() as db:
        require_manageable(viewer, await get_account(db, target_id))
    one_time = new_one_time_password()
    password_hash = await request.app[PASSWORDS].hash(one_time_form(one_time))
    async with services.db.transaction() as db:
        account = require_manageable(viewer, await get_account(db, target_id, lock=True))
        await reset_password(db, account, password_hash=password_hash, now=services.clock.now(), actor=viewer.username)
    return await render(request, "one_time_password.html", {"account": account, "password": one_time, "created": False})
