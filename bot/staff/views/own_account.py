"""A signed-in person's own account: change the password, set up the second factor."""

from __future__ import annotations

from aiohttp import web

from bot.staff import totp
from bot.staff.auth import Viewer
from bot.staff.forms import form_of, secret, text
from bot.staff.passwords import MAX_LENGTH, one_time_form, password_problems
from bot.staff.render import locale_of, render, see_other
from bot.staff.sessions import end_session, start_session
from bot.staff.state import PASSWORDS, SERVICES
from bot.staff.views.login import count_failure
from storage.staff import (
    AuditAction,
    add_audit,
    confirm_totp,
    end_sessions,
    get_account,
    open_totp,
    set_password,
    set_pending_totp,
)


async def password_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await render(request, "password.html", {"errors": [], "forced": viewer.must_change_password})


async def password_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    passwords = request.app[PASSWORDS]
    form = await form_of(request)
    current = secret(form, "current")
    new = secret(form, "new")
    confirm = secret(form, "confirm")
    now = services.clock.now()
    async with services.db.transaction() as db:
        account = await get_account(db, viewer.account_id)
    assert account is not None  # the guard has just read it
    one_time = account.must_change_password
    matched = await passwords.verify(one_time_form(current) if one_time else current, account.password_hash)
    if not matched:
        if await count_failure(request, account, "wrong current password"):
            # Someone is guessing from inside a session: end it, like the login form would.
            async with services.db.transaction() as db:
                locked_account = await get_account(db, account.id, lock=True)
                if locked_account is not None:
                    end_sessions(locked_account)
            await end_session(request)
            return see_other("/staff/login")
        return await render(
            request, "password.html", {"errors": ["staff.password.error.current"], "forced": one_time}, status=400
        )
    problems = password_problems(new, confirm, username=account.username, current=current, one_time=one_time)
    if problems:
        return await render(request, "password.html", {"errors": problems, "forced": one_time}, status=400)
    new_hash = await passwords.hash(new[:MAX_LENGTH])
    async with services.db.transaction() as db:
        fresh = await get_account(db, account.id, lock=True)
        if fresh is None or not fresh.active:
            raise web.HTTPForbidden()
        set_password(fresh, new_hash, must_change=False)
        await add_audit(db, now=now, actor=fresh.username, action=AuditAction.PASSWORD_CHANGED, province=fresh.province)
    # set_password ended every session, this one included: carry on in a new one.
    await start_session(request, fresh, now)
    if fresh.totp_required and not fresh.has_totp:
        return see_other("/staff/totp")
    return see_other("/staff/?done=password")


async def totp_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    if viewer.must_change_password:
        return see_other("/staff/password")
    return await _enrolment(request, viewer, error=None)


async def _enrolment(request: web.Request, viewer: Viewer, *, error: str | None, status: int = 200) -> web.Response:
    services = request.app[SERVICES]
    if viewer.has_totp:
        return await render(request, "totp.html", {"enabled": True, "error": None})
    async with services.db.transaction() as db:
        account = await get_account(db, viewer.account_id, lock=True)
        assert account is not None
        ring = await services.keys.get(db)
        # The same secret until it is confirmed, so reloading the page does not change the code.
        pending = open_totp(ring, account, pending=True)
        if pending is None:
            pending = totp.new_secret()
            set_pending_totp(ring, account, pending)
    uri = totp.provisioning_uri(pending, viewer.username)
    title = services.renderer.catalogs.text(locale_of(request), "staff.totp.qr_title")
    context = {
        "enabled": False,
        "qr": totp.qr_svg(uri, title=title),
        "manual": totp.readable_secret(pending),
        "error": error,
        "required": viewer.totp_required,
    }
    return await render(request, "totp.html", context, status=status)


async def totp_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    if viewer.must_change_password:
        return see_other("/staff/password")
    if viewer.has_totp:
        return see_other("/staff/totp")
    services = request.app[SERVICES]
    form = await form_of(request)
    code = text(form, "code", limit=20)
    now = services.clock.now()
    async with services.db.transaction() as db:
        account = await get_account(db, viewer.account_id, lock=True)
        assert account is not None
        ring = await services.keys.get(db)
        pending = open_totp(ring, account, pending=True)
        step = None if pending is None else totp.accepted_step(pending, code, now=now, last_step=None)
        if step is not None:
            confirm_totp(ring, account, step=step)
            await add_audit(
                db, now=now, actor=account.username, action=AuditAction.TOTP_ENABLED, province=account.province
            )
    if step is None:
        return await _enrolment(request, viewer, error="staff.totp.wrong", status=400)
    return see_other("/staff/?done=totp")
