"""Logging in (password, then a code when the account has a second factor), out, and language.

Every way a login can fail — unknown name, wrong password, inactive or locked account, too
many tries from one address — shows the same message, and an unknown name costs the same
password hashing as a known one, so the answer does not tell whether a username exists.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from aiohttp import web

from bot.staff import totp
from bot.staff.auth import Viewer
from bot.staff.forms import form_of, secret, text
from bot.staff.passwords import one_time_form
from bot.staff.render import LOCALES, render, see_other
from bot.staff.sessions import (
    COOKIE_PATH,
    LANG_COOKIE,
    end_session,
    pending_account,
    secure_cookies,
    start_pending,
    start_session,
)
from bot.staff.state import PASSWORDS, SERVICES, THROTTLE
from storage.staff import (
    AuditAction,
    StaffAccount,
    add_audit,
    end_sessions,
    get_account,
    get_by_username,
    masked_username,
    open_totp,
    record_failed_login,
    record_login,
)

HOME = "/staff/"


async def login_form(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    if viewer is not None:
        return see_other(HOME)
    notice = None
    if request.query.get("expired") == "1":
        notice = "staff.login.expired"
    elif request.query.get("out") == "1":
        notice = "staff.login.signed_out"
    return await render(request, "login.html", {"notice": notice, "error": None, "username": ""})


async def _failed(request: web.Request, username: str, *, status: int = 401) -> web.Response:
    return await render(
        request, "login.html", {"notice": None, "error": "staff.login.failed", "username": username}, status=status
    )


async def login_submit(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    services = request.app[SERVICES]
    passwords = request.app[PASSWORDS]
    form = await form_of(request)
    typed_name = text(form, "username", limit=64)
    password = secret(form, "password")
    shown_name = typed_name[:32]
    if not request.app[THROTTLE].allow(request):
        return await _failed(request, shown_name, status=429)
    async with services.db.transaction() as db:
        account = await get_by_username(db, typed_name)
    stored = account.password_hash if account is not None else None
    # A one-time password may come back in lower case or with spaces from a phone keyboard.
    candidate = one_time_form(password) if account is not None and account.must_change_password else password
    matched = await passwords.verify(candidate, stored)
    now = services.clock.now()
    if account is None or not account.active or account.locked(now):
        await _audit_refused(request, typed_name, account, now)
        return await _failed(request, shown_name)
    if not matched:
        await count_failure(request, account, "wrong password")
        return await _failed(request, shown_name)
    if account.has_totp:
        await start_pending(request, account, now)
        return see_other(str(request.app.router["login_code"].url_for()))
    if passwords.needs_rehash(account.password_hash) and not account.must_change_password:
        new_hash = await passwords.hash(password)
    else:
        new_hash = None
    return await _signed_in(request, account.id, rehash=new_hash)


async def _audit_refused(request: web.Request, typed_name: str, account: StaffAccount | None, now: dt.datetime) -> None:
    """A login refused before its password counted: unknown name, inactive or locked account."""
    if account is None:
        actor, detail, province = masked_username(typed_name), "unknown username", None
    else:
        actor, province = account.username, account.province
        detail = "attempt on a locked account" if account.active else "attempt on an inactive account"
    async with request.app[SERVICES].db.transaction() as db:
        await add_audit(db, now=now, actor=actor, action=AuditAction.LOGIN_FAILED, detail=detail, province=province)


async def count_failure(request: web.Request, account: StaffAccount, reason: str) -> bool:
    """Count a wrong password or code towards the lockout, in the audit log too; True when locked now."""
    services = request.app[SERVICES]
    now = services.clock.now()
    async with services.db.transaction() as db:
        locked = await record_failed_login(db, account.id, now=now)
        await add_audit(
            db, now=now, actor=account.username, action=AuditAction.LOGIN_FAILED, detail=reason,
            province=account.province,
        )
        if locked:
            await add_audit(
                db, now=now, actor=account.username, action=AuditAction.LOCKED,
                detail="locked for 15 minutes after repeated failures", province=account.province,
            )
    return locked


async def _signed_in(request: web.Request, account_id: int, *, rehash: str | None = None) -> web.StreamResponse:
    """Finish a login: record it, start a new session, go where the account must go first."""
    services = request.app[SERVICES]
    now = services.clock.now()
    async with services.db.transaction() as db:
        account = await get_account(db, account_id, lock=True)
        if account is None or not account.active or account.locked(now):
            return await _failed(request, "")
        record_login(account, now=now)
        if rehash is not None:
            account.password_hash = rehash
        await add_audit(db, now=now, actor=account.username, action=AuditAction.LOGIN, province=account.province)
    await start_session(request, account, now)
    return see_other(_first_page(account))


def _first_page(account: StaffAccount) -> str:
    if account.must_change_password:
        return "/staff/password"
    if account.totp_required and not account.has_totp:
        return "/staff/totp"
    return HOME


async def code_form(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    if viewer is not None:
        return see_other(HOME)
    if await pending_account(request, request.app[SERVICES].clock.now()) is None:
        return see_other("/staff/login?expired=1")
    return await render(request, "login_code.html", {"error": None})


async def code_submit(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    services = request.app[SERVICES]
    now = services.clock.now()
    account_id = await pending_account(request, now)
    if account_id is None:
        return see_other("/staff/login?expired=1")
    form = await form_of(request)
    code = text(form, "code", limit=20)
    async with services.db.transaction() as db:
        account = await get_account(db, account_id, lock=True)
        if account is None or not account.active or account.locked(now):
            await end_session(request)
            return await _failed(request, "")
        ring = await services.keys.get(db)
        secret_ = open_totp(ring, account)
        step = None if secret_ is None else totp.accepted_step(secret_, code, now=now, last_step=account.totp_last_step)
        if step is not None:
            account.totp_last_step = step
    if step is None:
        if await count_failure(request, account, "wrong code"):
            await end_session(request)
            return await _failed(request, "")
        return await render(request, "login_code.html", {"error": "staff.code.wrong"}, status=401)
    return await _signed_in(request, account_id)


async def logout(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Sign out everywhere: this account's other sessions end too (a shared phone, a lost one)."""
    services = request.app[SERVICES]
    now = services.clock.now()
    async with services.db.transaction() as db:
        account = await get_account(db, viewer.account_id, lock=True)
        if account is not None:
            end_sessions(account)
            await add_audit(db, now=now, actor=viewer.username, action=AuditAction.LOGOUT, province=account.province)
    await end_session(request)
    return see_other("/staff/login?out=1")


def _local_path(candidate: str) -> str:
    """Where to go back to after switching language: only a path inside the staff app."""
    if any(ord(ch) < 32 or ch == "\\" for ch in candidate):
        return HOME
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not parts.path.startswith("/staff/") or "//" in parts.path:
        return HOME
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def set_language(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    form = await form_of(request)
    chosen = text(form, "lang", limit=5)
    if chosen not in LOCALES:
        raise web.HTTPBadRequest()
    response = see_other(_local_path(text(form, "next", limit=500)))
    response.set_cookie(
        LANG_COOKIE,
        chosen,
        path=COOKIE_PATH,
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request.app[SERVICES].settings) or None,
    )
    return response
