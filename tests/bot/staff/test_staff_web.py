"""The staff web app through aiohttp's test server: logins, sessions, CSRF, the second factor,
security headers, error pages, language, and managing accounts. Runs on every backend."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from yarl import URL

from bot.bootstrap import Services
from bot.clock import FixedClock
from bot.staff import make_staff_app
from bot.staff import totp as totp_codes
from bot.staff.passwords import new_one_time_password
from bot.staff.state import PASSWORDS
from storage.staff import AuditEntry, Role, add_audit, get_account, set_active
from tests.staff_fixtures import (
    CSP,
    PASSWORD,
    PROVINCE_A,
    PROVINCE_OTHER,
    WARD_A,
    WARD_B,
    StaffClient,
    account_row,
    add_account,
    staff_app,
)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
FAILED = "Tên đăng nhập hoặc mật khẩu không đúng, hoặc tài khoản đang tạm khóa. Vui lòng thử lại sau."


def h1(page: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", page, re.S)
    return match.group(1).strip() if match else ""


async def audit_actions(services: Services) -> list[str]:
    async with services.db.transaction() as db:
        return list((await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


# --- logging in ----------------------------------------------------------------------------


async def test_login_and_logout(services: Services, browser_factory: Any) -> None:
    """A right password opens a session on the home page; logging out ends it."""
    await add_account(services, "lan.nguyen", ward=WARD_A)
    me: StaffClient = browser_factory()
    response, page = await me.get("/staff/")
    assert response.status == 303 and response.headers["Location"] == "/staff/login"
    response, page = await me.get("/staff/login")
    assert response.status == 200 and '<html lang="vi"' in page and "Đăng nhập" in page
    response = await me.login("  Lan.Nguyen ")  # usernames are trimmed and case-insensitive
    assert response.status == 303 and response.headers["Location"] == "/staff/"
    response, page = await me.get("/staff/")
    assert response.status == 200 and "Xin chào, lan.nguyen." in page and "Xã Bình Lư (Lai Châu)" in page
    response, _ = await me.post("/staff/logout")
    assert response.status == 303 and response.headers["Location"] == "/staff/login?out=1"
    response, page = await me.get("/staff/login?out=1")
    assert "Anh/chị đã đăng xuất." in page
    assert (await me.get("/staff/"))[0].status == 303
    assert await audit_actions(services) == ["login", "logout"]
    row = await account_row(services, "lan.nguyen")
    assert row.last_login_at is not None


@pytest.mark.parametrize("who", ["unknown", "wrong", "inactive"])
async def test_failed_logins_look_the_same(
    services: Services, server: TestServer, browser_factory: Any, who: str  # noqa: F811
) -> None:
    """Unknown name, wrong password, inactive account: one message, one status, one hash's cost."""
    account_id = await add_account(services, "mai", ward=WARD_A)
    if who == "inactive":
        async with services.db.transaction() as db:
            account = await get_account(db, account_id)
            assert account is not None
            set_active(account, False)
    passwords = staff_app(server.app)[PASSWORDS]
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    before = passwords.kdf_runs
    name, password = {"unknown": ("khong-co", PASSWORD), "wrong": ("mai", "sai mật khẩu rồi"), "inactive": ("mai", PASSWORD)}[who]
    response, page = await me.post("/staff/login", {"username": name, "password": password})
    assert response.status == 401
    assert FAILED in page
    assert passwords.kdf_runs - before == 1, "every attempt costs exactly one password hash"
    assert me.cookie() is not None and (await me.get("/staff/"))[0].status == 303


async def test_lockout_after_five_failures(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """Five wrong passwords lock the account for 15 minutes, even against the right one."""
    await add_account(services, "hoa", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    for _ in range(5):
        response, page = await me.post("/staff/login", {"username": "hoa", "password": "không đúng đâu"})
        assert response.status == 401 and FAILED in page
    response, page = await me.post("/staff/login", {"username": "hoa", "password": PASSWORD})
    assert response.status == 401 and FAILED in page, "locked: the right password is refused the same way"
    row = await account_row(services, "hoa")
    assert row.locked_until is not None
    clock.advance(minutes=14)
    assert (await me.post("/staff/login", {"username": "hoa", "password": PASSWORD}))[0].status == 401
    clock.advance(minutes=2)
    assert (await me.login("hoa")).status == 303
    actions = await audit_actions(services)
    # Five wrong passwords, then two attempts on the locked account (audited as refused too).
    assert actions.count("login_failed") == 7 and actions.count("locked") == 1 and actions[-1] == "login"


async def test_too_many_attempts_from_one_address(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """Guessing many usernames from one address is slowed down, with the same message."""
    await add_account(services, "tuan", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    for n in range(20):
        response, _ = await me.post("/staff/login", {"username": f"doan-{n}", "password": "abcdefghijk"})
        assert response.status == 401
    response, page = await me.post("/staff/login", {"username": "tuan", "password": PASSWORD})
    assert response.status == 429 and FAILED in page
    clock.advance(seconds=31)
    assert (await me.login("tuan")).status == 303


async def test_session_is_rotated_at_login_and_logout(services: Services, browser_factory: Any) -> None:
    """Login and logout each give a new cookie and CSRF token; old cookies open nothing."""
    await add_account(services, "binh", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    anonymous_cookie, anonymous_token = me.cookie(), me.token
    assert anonymous_cookie and anonymous_token
    await me.login("binh")
    signed_in_cookie, signed_in_token = me.cookie(), me.token
    assert signed_in_cookie != anonymous_cookie and signed_in_token != anonymous_token

    # The cookie from before the login does not carry the login (no session fixation).
    fixated: StaffClient = browser_factory()
    await _set_cookie(fixated, anonymous_cookie)
    assert (await fixated.get("/staff/"))[0].status == 303

    await me.post("/staff/logout")
    assert me.cookie() not in (signed_in_cookie, None)
    # A copy of the signed-in cookie taken before the logout is worthless after it.
    stolen: StaffClient = browser_factory()
    await _set_cookie(stolen, signed_in_cookie)
    response, _ = await stolen.get("/staff/")
    assert response.status == 303 and response.headers["Location"].startswith("/staff/login")


async def _set_cookie(client: StaffClient, value: str | None) -> None:
    assert value is not None
    client.session.cookie_jar.update_cookies({"antam_staff": value}, URL(client.url("/staff/")))


async def test_cookie_flags(services: Services, browser_factory: Any) -> None:
    """The session cookie is HttpOnly, SameSite=Strict, limited to /staff, and no persistent cookie."""
    me: StaffClient = browser_factory()
    async with me.session.get(me.url("/staff/login")) as response:
        header = response.headers["Set-Cookie"]
    assert header.startswith("antam_staff=")
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/staff" in header
    assert "Secure" not in header  # plain http here; see the next test
    assert "Max-Age" not in header and "expires" not in header.lower()


async def test_cookies_are_secure_behind_https(services: Services) -> None:
    """With an https ANTAM_PUBLIC_URL the cookies are Secure and HSTS is sent."""
    services.settings = services.settings.model_copy(update={"public_url": "https://antam.example"})
    app = web.Application()
    app.add_subapp("/staff", make_staff_app(services))
    server_ = TestServer(app, host="127.0.0.1")
    await server_.start_server()
    try:
        async with aiohttp.ClientSession() as session, session.get(server_.make_url("/staff/login")) as response:
            assert "Secure" in response.headers["Set-Cookie"]
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        await server_.close()


async def test_inactivity_and_absolute_expiry(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """30 minutes without a request end a session; so does being signed in for 12 hours."""
    await add_account(services, "cuong", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.login("cuong")
    clock.advance(minutes=29)
    assert (await me.get("/staff/"))[0].status == 200  # and this request counts as activity
    clock.advance(minutes=29)
    assert (await me.get("/staff/"))[0].status == 200
    clock.advance(minutes=31)
    response, _ = await me.get("/staff/")
    assert response.status == 303 and response.headers["Location"] == "/staff/login?expired=1"
    _, page = await me.get("/staff/login?expired=1")
    assert "Phiên làm việc đã hết hạn" in page

    await me.login("cuong")
    for _ in range(12 * 3 + 1):  # active every 20 minutes, for just over 12 hours
        clock.advance(minutes=20)
        response, _ = await me.get("/staff/")
        if response.status != 200:
            break
    assert response.status == 303 and response.headers["Location"] == "/staff/login?expired=1"


async def test_deactivated_account_is_logged_out_at_once(services: Services, browser_factory: Any) -> None:
    """An admin deactivating an account ends its open session on its very next request."""
    await add_account(services, "boss", Role.ADMIN)
    staff_id = await add_account(services, "dung", ward=WARD_A)
    staff: StaffClient = browser_factory()
    await staff.login("dung")
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    await admin.get(f"/staff/accounts/{staff_id}")
    response, _ = await admin.post(f"/staff/accounts/{staff_id}/deactivate")
    assert response.status == 303
    response, _ = await staff.get("/staff/")
    assert response.status == 303 and response.headers["Location"].startswith("/staff/login")
    assert (await staff.login("dung")).status == 401


# --- CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong-token", "other-session"])
async def test_csrf_is_required_on_every_post(services: Services, browser_factory: Any, token: str | None) -> None:
    """A POST without this session's token gets 403 in Vietnamese and changes nothing."""
    await add_account(services, "boss", Role.ADMIN)
    victim = await add_account(services, "giang", ward=WARD_A)
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    other: StaffClient = browser_factory()
    await other.get("/staff/login")
    data: dict[str, str] = {}
    if token == "other-session":
        assert other.token is not None
        data["csrf"] = other.token
    elif token is not None:
        data["csrf"] = token
    before = await audit_actions(services)
    for path, form in (
        (f"/staff/accounts/{victim}/deactivate", {}),
        (f"/staff/accounts/{victim}/password", {}),
        ("/staff/accounts", {"username": "moi", "role": "staff", "ward": str(WARD_A)}),
        ("/staff/logout", {}),
        ("/staff/password", {"current": PASSWORD, "new": "mật khẩu mới rất dài", "confirm": "mật khẩu mới rất dài"}),
        ("/staff/lang", {"lang": "en", "next": "/staff/"}),
    ):
        response, page = await admin.post(path, {**form, **data}, csrf=False)
        assert response.status == 403, path
        assert "Biểu mẫu đã hết hạn" in page and "không có thay đổi nào được lưu" in page
        assert response.headers["Content-Security-Policy"] == CSP
        assert "antam_staff_lang" not in response.headers.get("Set-Cookie", "")
    assert await audit_actions(services) == before
    row = await account_row(services, "giang")
    assert row.active and not row.must_change_password
    assert await account_row(services, "moi") is None
    assert (await admin.get("/staff/"))[0].status == 200, "still signed in: the logout was refused"
    response, _ = await admin.post("/staff/login", {"username": "boss", "password": PASSWORD, **data}, csrf=False)
    assert response.status == 403, "the login form is protected too"


# --- first login and passwords ------------------------------------------------------------


async def test_one_time_password_must_be_changed(services: Services, browser_factory: Any) -> None:
    """With a one-time password every page leads to "change password" until it is changed."""
    one_time = new_one_time_password()
    await add_account(services, "hanh", ward=WARD_A, password=one_time, one_time=True)
    me: StaffClient = browser_factory()
    response = await me.login("hanh", one_time.lower().replace("-", " "))  # as typed on a phone
    assert response.status == 303 and response.headers["Location"] == "/staff/password"
    for path in ("/staff/", "/staff/services", "/staff/totp"):
        response, _ = await me.get(path)
        assert response.status == 303 and response.headers["Location"] == "/staff/password", path
    _, page = await me.get("/staff/password")
    assert "mật khẩu dùng một lần" in page

    cases = [
        ({"current": one_time, "new": "ngắn", "confirm": "ngắn"}, "ít nhất 12 ký tự"),
        ({"current": one_time, "new": "mật khẩu mới 2026", "confirm": "mật khẩu khác"}, "không giống nhau"),
        ({"current": one_time, "new": one_time.lower(), "confirm": one_time.lower()}, "khác mật khẩu hiện tại"),
        ({"current": "sai", "new": "mật khẩu mới 2026", "confirm": "mật khẩu mới 2026"}, "Mật khẩu hiện tại không đúng"),
        ({"current": one_time, "new": "aaaaaaaaaaaa", "confirm": "aaaaaaaaaaaa"}, "quá đơn giản"),
    ]
    for form, message in cases:
        response, page = await me.post("/staff/password", form)
        assert response.status == 400 and message in page, message
    await add_account(services, "ha.tran-2026", ward=WARD_A, password=one_time, one_time=True)
    other: StaffClient = browser_factory()
    await other.login("ha.tran-2026", one_time)
    response, page = await other.post(
        "/staff/password", {"current": one_time, "new": "HA.TRAN-2026", "confirm": "HA.TRAN-2026"}
    )
    assert response.status == 400 and "không được chứa tên đăng nhập" in page

    response, _ = await me.post("/staff/password", {"current": one_time, "new": "một câu dễ nhớ 2026", "confirm": "một câu dễ nhớ 2026"})
    assert response.status == 303 and response.headers["Location"] == "/staff/?done=password"
    response, page = await me.get("/staff/?done=password")
    assert response.status == 200 and "Đã lưu mật khẩu mới." in page
    again: StaffClient = browser_factory()
    assert (await again.login("hanh", one_time)).status == 401
    assert (await again.login("hanh", "một câu dễ nhớ 2026")).status == 303


# --- the second factor --------------------------------------------------------------------


def _secret_from(page: str) -> bytes:
    match = re.search(r'<p class="secret"><code>([A-Z2-7 ]+)</code>', page)
    assert match is not None
    text = match.group(1).replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


async def test_totp_required_enrolment_and_login(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """Required by an admin: enrol at next login with a QR code; later logins ask for a code once."""
    await add_account(services, "boss", Role.ADMIN)
    staff_id = await add_account(services, "khanh", ward=WARD_A)
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    await admin.get(f"/staff/accounts/{staff_id}")
    response, _ = await admin.post(f"/staff/accounts/{staff_id}/totp", {"required": "on"})
    assert response.status == 303
    assert (await account_row(services, "khanh")).totp_required

    me: StaffClient = browser_factory()
    response = await me.login("khanh")
    assert response.headers["Location"] == "/staff/totp"
    assert (await me.get("/staff/"))[0].headers["Location"] == "/staff/totp"
    response, page = await me.get("/staff/totp")
    assert response.status == 200
    assert '<svg' in page and 'class="qr"' in page and "<script" not in page and "data:" not in page
    assert "style=" not in page.split('<div class="qr-box">')[1].split("</div>")[0]
    secret = _secret_from(page)
    assert _secret_from((await me.get("/staff/totp"))[1]) == secret, "a reload shows the same secret"
    response, page = await me.post("/staff/totp", {"code": "000000"})
    assert response.status == 400 and "Mã không đúng" in page
    response, _ = await me.post("/staff/totp", {"code": totp_codes.code_at(secret, clock.now())})
    assert response.status == 303 and response.headers["Location"] == "/staff/?done=totp"
    row = await account_row(services, "khanh")
    assert row.totp_secret is not None and row.totp_pending is None
    assert secret not in row.totp_secret, "the secret is sealed at rest"

    await me.post("/staff/logout")
    response = await me.login("khanh")
    assert response.status == 303 and response.headers["Location"] == "/staff/login/code"
    assert (await me.get("/staff/"))[0].headers["Location"] == "/staff/login", "no session before the code"
    used = totp_codes.code_at(secret, clock.now())
    response, page = await me.post("/staff/login/code", {"code": used})
    assert response.status == 401 and "đã được dùng" in page, "the enrolment code cannot be used again"
    clock.advance(seconds=30)
    code = totp_codes.code_at(secret, clock.now())
    response, _ = await me.post("/staff/login/code", {"code": code[:3] + " " + code[3:]})
    assert response.status == 303 and response.headers["Location"] == "/staff/"
    assert (await me.get("/staff/"))[0].status == 200

    # The same code in another login: refused, it was used.
    thief: StaffClient = browser_factory()
    await thief.login("khanh")
    assert (await thief.post("/staff/login/code", {"code": code}))[0].status == 401
    # A code one step ahead is fine (phone clocks drift); two steps ahead is not.
    clock.advance(seconds=30)
    two_ahead = totp_codes.code_at(secret, clock.now() + dt.timedelta(seconds=60))
    assert (await thief.post("/staff/login/code", {"code": two_ahead}))[0].status == 401
    one_ahead = totp_codes.code_at(secret, clock.now() + dt.timedelta(seconds=30))
    assert (await thief.post("/staff/login/code", {"code": one_ahead}))[0].status == 303


async def test_wrong_codes_lock_the_account(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """Guessing codes counts like guessing passwords; the pending step expires after 5 minutes."""
    await add_account(services, "linh", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.login("linh")
    _, page = await me.get("/staff/totp")
    secret = _secret_from(page)
    await me.post("/staff/totp", {"code": totp_codes.code_at(secret, clock.now())})
    await me.post("/staff/logout")

    await me.login("linh")
    clock.advance(minutes=6)
    response, _ = await me.get("/staff/login/code")
    assert response.status == 303 and response.headers["Location"] == "/staff/login?expired=1"

    await me.login("linh")
    for _ in range(4):
        response, _ = await me.post("/staff/login/code", {"code": "111111"})
        assert response.status == 401
    response, page = await me.post("/staff/login/code", {"code": "111111"})
    assert response.status == 401 and FAILED in page
    assert (await account_row(services, "linh")).locked_until is not None


async def test_admin_resets_a_lost_second_factor(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """After a reset the person logs in with the password alone and, if required, enrols again."""
    await add_account(services, "boss", Role.ADMIN)
    staff_id = await add_account(services, "minh", ward=WARD_A, totp_required=True)
    me: StaffClient = browser_factory()
    await me.login("minh")
    secret = _secret_from((await me.get("/staff/totp"))[1])
    await me.post("/staff/totp", {"code": totp_codes.code_at(secret, clock.now())})
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    await admin.get(f"/staff/accounts/{staff_id}")
    assert (await admin.post(f"/staff/accounts/{staff_id}/totp/reset"))[0].status == 303
    assert (await me.get("/staff/"))[0].status == 303, "the reset ended the account's sessions"
    response = await me.login("minh")
    assert response.headers["Location"] == "/staff/totp"
    assert _secret_from((await me.get("/staff/totp"))[1]) != secret


# --- headers and errors -------------------------------------------------------------------


async def test_security_headers_on_every_page(services: Services, browser_factory: Any) -> None:
    """Every /staff response — pages, redirects, errors, the style sheet — has the strict headers."""
    await add_account(services, "boss", Role.ADMIN)
    admin: StaffClient = browser_factory()
    anonymous: StaffClient = browser_factory()
    await admin.login("boss")
    checks = [
        (anonymous, "GET", "/staff/login"),
        (anonymous, "GET", "/staff/"),
        (anonymous, "GET", "/staff/nothing-here"),
        (anonymous, "DELETE", "/staff/login"),
        (anonymous, "GET", "/staff"),
    ] + [
        (admin, "GET", path)
        for path in (
            "/staff/", "/staff/accounts", "/staff/accounts/new", "/staff/accounts/1", "/staff/audit",
            "/staff/services", "/staff/totp", "/staff/password", "/staff/static/staff.css", "/staff/audit?page=x",
        )
    ]
    for client, method, path in checks:
        async with client.session.request(method, client.url(path), allow_redirects=False) as response:
            body = await response.text()
        headers = response.headers
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert "camera=()" in headers["Permissions-Policy"] and "geolocation=()" in headers["Permissions-Policy"]
        expected_cache = "no-cache" if path.endswith(".css") else "no-store"
        assert headers["Cache-Control"] == expected_cache, path
        assert "Traceback" not in body
        if "text/html" in headers.get("Content-Type", ""):
            assert "<script" not in body and "style=" not in body and not re.search(r"""(src|href)=["']https?://""", body)


async def test_error_pages_are_plain_and_translated(services: Services, browser_factory: Any) -> None:
    """404, 405 and 400 are short pages in Vietnamese (English when chosen)."""
    me: StaffClient = browser_factory()
    response, page = await me.get("/staff/nothing-here")
    assert response.status == 404 and h1(page) == "Không tìm thấy trang" and "Mã lỗi: 404" in page
    async with me.session.delete(me.url("/staff/login")) as raw:
        assert raw.status == 405 and "Thao tác không được hỗ trợ" in await raw.text()
        assert "GET" in raw.headers["Allow"]
    await me.get("/staff/login")
    response, _ = await me.post("/staff/lang", {"lang": "en", "next": "/staff/nothing-here"})
    assert response.headers["Location"] == "/staff/nothing-here"
    response, page = await me.get("/staff/nothing-here")
    assert response.status == 404 and h1(page) == "Page not found" and '<html lang="en"' in page
    response, page = await me.post("/staff/lang", {"lang": "xx", "next": "/staff/"})
    assert response.status == 400 and h1(page) == "Invalid request"
    response, page = await me.post("/staff/login", {"username": "a" * 5000, "password": "b"})
    assert response.status == 400


async def test_a_crash_is_a_500_page_without_details(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected exception in a view: a Vietnamese 500 page, the type alone in the log."""
    staff = make_staff_app(services)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail from /staff/accounts/7 and a code 7K3M-9QPX")

    staff.router.add_get("/broken", broken)
    app = web.Application()
    app.add_subapp("/staff", staff)
    server_ = TestServer(app, host="127.0.0.1")
    await server_.start_server()
    try:
        with caplog.at_level(logging.ERROR, logger="antam.staff"):
            async with aiohttp.ClientSession() as session, session.get(server_.make_url("/staff/broken")) as response:
                page = await response.text()
        assert response.status == 500
        assert h1(page) == "Đã có lỗi xảy ra" and "Traceback" not in page and "secret detail" not in page
        assert response.headers["Content-Security-Policy"] == CSP
        logged = " ".join(record.getMessage() for record in caplog.records)
        assert "RuntimeError" in logged and "secret detail" not in logged and "7K3M" not in logged
    finally:
        await server_.close()


@pytest.mark.parametrize(
    "next_path, expected",
    [
        ("/staff/accounts?x=1", "/staff/accounts?x=1"),
        ("https://evil.example/staff/", "/staff/"),
        ("//evil.example/staff/", "/staff/"),
        ("/staff//evil.example", "/staff/"),
        ("/elsewhere", "/staff/"),
        ("/staff/\\evil", "/staff/"),
        ("/staff/\r\nSet-Cookie: x=1", "/staff/"),
    ],
)
async def test_language_switch_stays_in_the_app(services: Services, browser_factory: Any, next_path: str, expected: str) -> None:
    """The language switch goes back only to a page of the staff app (no open redirect)."""
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    response, _ = await me.post("/staff/lang", {"lang": "en", "next": next_path})
    assert response.status == 303 and response.headers["Location"] == expected
    assert me.cookie("antam_staff_lang") == "en"
    _, page = await me.get("/staff/login")
    assert '<html lang="en"' in page and "Log in" in page and "Tiếng Việt" in page


# --- managing accounts --------------------------------------------------------------------


async def test_admin_creates_and_resets_accounts(services: Services, browser_factory: Any) -> None:
    """The one-time password appears once, works once, and a reset replaces it."""
    await add_account(services, "boss", Role.ADMIN)
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    await admin.get("/staff/accounts/new")
    response, page = await admin.post("/staff/accounts", {"username": "nga", "role": "staff", "ward": "03390", "province": ""})
    assert response.status == 200 and "Đã tạo tài khoản nga." in page
    one_time = re.search(r'<p class="otp"><code>([A-Z0-9-]+)</code>', page)
    assert one_time is not None and re.fullmatch(r"([A-HJ-NP-Z2-9]{4}-){3}[A-HJ-NP-Z2-9]{4}", one_time.group(1))
    row = await account_row(services, "nga")
    assert row.commune == WARD_A and row.province == 12 and row.must_change_password
    assert one_time.group(1) not in row.password_hash

    for form, message in (
        ({"username": "nga", "role": "staff", "ward": "3390"}, "đã được dùng"),
        ({"username": "Ng", "role": "staff", "ward": "3390"}, "Tên đăng nhập không hợp lệ"),
        ({"username": "ngoc anh", "role": "staff", "ward": "3390"}, "Tên đăng nhập không hợp lệ"),
        ({"username": "nguyet", "role": "staff", "ward": "99999"}, "đúng mã xã"),
        ({"username": "nguyet", "role": "staff", "ward": ""}, "đúng mã xã"),
        ({"username": "nguyet", "role": "boss", "ward": "3390"}, "chọn vai trò"),
        ({"username": "nguyet", "role": "admin", "ward": "3390"}, "không gắn với một xã"),
        ({"username": "nguyet", "role": "admin", "province": "77"}, "Mã tỉnh"),
    ):
        response, page = await admin.post("/staff/accounts", form)
        assert response.status == 400 and message in page, message

    me: StaffClient = browser_factory()
    assert (await me.login("nga", one_time.group(1))).headers["Location"] == "/staff/password"
    nga_id = row.id
    await admin.get(f"/staff/accounts/{nga_id}")
    response, page = await admin.post(f"/staff/accounts/{nga_id}/password")
    assert response.status == 200 and "Đã cấp mật khẩu mới cho nga." in page
    second = re.search(r'<p class="otp"><code>([A-Z0-9-]+)</code>', page)
    assert second is not None and second.group(1) != one_time.group(1)
    assert (await me.get("/staff/password"))[0].status == 303, "the reset ended the old session"
    assert (await me.login("nga", one_time.group(1))).status == 401
    assert (await me.login("nga", second.group(1))).status == 303
    actions = await audit_actions(services)
    assert "account_created" in actions and "password_reset" in actions


async def test_admin_cannot_deactivate_themselves(services: Services, browser_factory: Any) -> None:
    """An admin cannot lock themselves out (and so the last admin always stays)."""
    boss_id = await add_account(services, "boss", Role.ADMIN)
    other_id = await add_account(services, "boss2", Role.ADMIN)
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    _, page = await admin.get(f"/staff/accounts/{boss_id}")
    assert "/deactivate" not in page, "no such button on one's own account"
    response, page = await admin.post(f"/staff/accounts/{boss_id}/deactivate")
    assert response.status == 400 and "không thể tự khóa" in page
    assert (await admin.post(f"/staff/accounts/{other_id}/deactivate"))[0].status == 303
    assert (await admin.post(f"/staff/accounts/{other_id}/reactivate"))[0].status == 303
    assert (await account_row(services, "boss")).active and (await account_row(services, "boss2")).active


async def test_audit_log_is_paginated_and_filtered(services: Services, clock: FixedClock, browser_factory: Any) -> None:
    """Newest first, 50 a page; a province admin sees their province's entries only."""
    await add_account(services, "boss", Role.ADMIN)
    await add_account(services, "hp-admin", Role.ADMIN, province=PROVINCE_OTHER)
    async with services.db.transaction() as db:
        for n in range(60):
            clock.advance(seconds=1)
            await add_audit(db, now=clock.now(), actor="someone", action="export", detail=f"exported report {n}", province=12)
        await add_audit(db, now=clock.now(), actor="someone", action="export", detail="exported Hai Phong", province=PROVINCE_OTHER)
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    _, page = await admin.get("/staff/audit")
    assert "Trang 1/2" in page and page.index("exported Hai Phong") < page.index("exported report 59")
    assert "exported report 5<" not in page
    _, page = await admin.get("/staff/audit?page=2")
    assert "exported report 0<" in page
    assert (await admin.get("/staff/audit?page=0"))[0].status == 400
    province: StaffClient = browser_factory()
    await province.login("hp-admin")
    _, page = await province.get("/staff/audit")
    assert "exported Hai Phong" in page and "exported report" not in page


async def test_pages_render_in_english(services: Services, browser_factory: Any) -> None:
    """Each page has its English text when English is chosen (no Vietnamese key left over)."""
    await add_account(services, "boss", Role.ADMIN)
    admin: StaffClient = browser_factory()
    await admin.login("boss")
    await admin.post("/staff/lang", {"lang": "en", "next": "/staff/"})
    for path, title in (
        ("/staff/", "Home"),
        ("/staff/accounts", "Staff accounts"),
        ("/staff/accounts/new", "New account"),
        ("/staff/audit", "Audit log"),
        ("/staff/services", "Unverified services"),
        ("/staff/totp", "Two-step verification"),
        ("/staff/password", "Change password"),
    ):
        response, page = await admin.get(path)
        assert response.status == 200 and h1(page) == title, path
        assert "staff." not in re.sub(r'href="[^"]*"|action="[^"]*"|staff\.css', "", page), path



# --- what the redeem page promises ------------------------------------------------------------


async def test_redeem_page_says_no_name_is_asked_only_where_the_entry_says_so(
    services: Services, browser_factory: Any
) -> None:
    """"No need to ask the name" only for a service whose verified entry agreed to it; nothing for the others."""
    await add_account(services, "staff-a", ward=WARD_A)
    await add_account(services, "staff-b", ward=WARD_B)
    await add_account(services, "boss", Role.ADMIN)
    staff_a: StaffClient = browser_factory()
    await staff_a.login("staff-a")
    response, page = await staff_a.get("/staff/redeem")
    # As shipped no entry is verified: the page promises nothing (PrEP, ARV, methadone intake need papers).
    assert response.status == 200 and "không cần hỏi tên" not in page.lower() and "giấy tờ" not in page

    # Lai Châu's entries verified; Bình Lư's health station and the provincial CDC agreed, the methadone
    # site did not; the Women's Union claims it in an entry nobody verified.
    agreed, claimed = {"tyt_binh_lu", "cdc_lai_chau"}, {"hlhpn_binh_lu"}
    pack = services.context.pack
    entries = tuple(
        s.model_copy(update={"verified": s.id not in claimed, "verified_on": dt.date(2026, 2, 1),
                             "no_name_asked": s.id in agreed | claimed})
        if s.province == PROVINCE_A else s
        for s in pack.services
    )
    services.context = replace(services.context, pack=replace(pack, services=entries))

    _, page = await staff_a.get("/staff/redeem")
    assert page.count("không cần hỏi tên") == 1
    assert "Trạm Y tế xã Bình Lư: không cần hỏi tên người đưa mã." in page
    assert "Hội Liên hiệp Phụ nữ" not in page and "Trung tâm Kiểm soát bệnh tật" not in page
    staff_b: StaffClient = browser_factory()
    await staff_b.login("staff-b")
    _, page = await staff_b.get("/staff/redeem")  # Mường Kim's services agreed to nothing
    assert "không cần hỏi tên" not in page

    admin: StaffClient = browser_factory()
    await admin.login("boss")
    _, page = await admin.get(f"/staff/redeem?province={PROVINCE_A}")  # no place chosen yet: nothing said
    assert "không cần hỏi tên" not in page
    _, page = await admin.get(f"/staff/redeem?province={PROVINCE_A}&place={WARD_A}")
    assert page.count("không cần hỏi tên") == 1 and "Trạm Y tế xã Bình Lư: không cần hỏi tên" in page
    _, page = await admin.get(f"/staff/redeem?province={PROVINCE_A}&place=province")
    assert page.count("không cần hỏi tên") == 1 and "Trung tâm Kiểm soát bệnh tật tỉnh Lai Châu: không cần hỏi tên" in page
    assert "Methadone" not in page
    # A failed attempt keeps the place, and what its services agreed to.
    response, page = await admin.post("/staff/redeem", {"code": "xx", "province": str(PROVINCE_A), "place": "province"})
    assert response.status == 400 and "Trung tâm Kiểm soát bệnh tật tỉnh Lai Châu: không cần hỏi tên" in page

    await staff_a.post("/staff/lang", {"lang": "en", "next": "/staff/redeem"})
    _, page = await staff_a.get("/staff/redeem")
    assert "Bình Lư commune health station: no need to ask the name of the person showing the code." in page
