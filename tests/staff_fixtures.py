"""Shared pieces of the staff web app's tests: accounts, a server, and a browser-like client.

Every persona has its own cookie jar, like a person with their own phone. Passwords are
hashed once per test session (a real scrypt hash takes ~0.1 s on purpose).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import make_app
from bot.bootstrap import Services
from bot.staff import STAFF_APP
from bot.staff.passwords import hash_password, one_time_form
from storage.staff import Role, create_account, get_by_username

PASSWORD = "mật khẩu thử nghiệm 42"
WARD_A, WARD_B, PROVINCE_A = 3390, 3637, 12  # Xã Bình Lư and Xã Mường Kim, Lai Châu
WARD_OTHER, PROVINCE_OTHER = 11284, 31  # Xã Nam Thanh Miện, Hải Phòng
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@functools.cache
def password_hash(password: str) -> str:
    return hash_password(password)


async def add_account(
    services: Services,
    username: str,
    role: Role = Role.STAFF,
    *,
    ward: int | None = None,
    province: int | None = None,
    password: str = PASSWORD,
    one_time: bool = False,
    totp_required: bool = False,
) -> int:
    """Add an account directly in the database; ``one_time`` makes ``password`` a one-time one."""
    if ward is not None and province is None:
        commune = services.context.communes.get(ward)
        assert commune is not None
        province = commune.province_code
    async with services.db.transaction() as db:
        account = await create_account(
            db,
            username=username,
            role=role,
            commune=ward,
            province=province,
            password_hash=password_hash(one_time_form(password) if one_time else password),
            now=services.clock.now(),
            must_change_password=one_time,
        )
        account.totp_required = totp_required
        return account.id


async def account_row(services: Services, username: str) -> Any:
    async with services.db.transaction() as db:
        return await get_by_username(db, username)


async def personas(services: Services) -> dict[str, int]:
    """The people of the authorisation matrix, and the accounts they act on."""
    return {
        "admin": await add_account(services, "admin", Role.ADMIN),
        "padmin": await add_account(services, "padmin", Role.ADMIN, province=PROVINCE_OTHER),
        "staff_a": await add_account(services, "staff-a", ward=WARD_A),
        "staff_b": await add_account(services, "staff-b", ward=WARD_B),
        # Accounts acted upon: one in commune A (Lai Châu), one in the other province (Hải Phòng).
        "victim": await add_account(services, "victim-a", ward=WARD_A),
        "victim_other": await add_account(services, "victim-hp", ward=WARD_OTHER),
    }


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


class StaffClient:
    """One person's browser: its own cookies; redirects are not followed unless asked."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.token: str | None = None

    async def close(self) -> None:
        await self.session.close()

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def get(self, path: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, str]:
        kwargs.setdefault("allow_redirects", False)
        async with self.session.get(self.url(path), **kwargs) as response:
            body = await response.text(errors="replace")  # images too (a QR code's PNG)
        match = _CSRF.search(body)
        if match:
            self.token = match.group(1)
        return response, body

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> tuple[aiohttp.ClientResponse, str]:
        kwargs.setdefault("allow_redirects", False)
        form = dict(data or {})
        if csrf:
            if self.token is None:
                await self.get("/staff/login")
            assert self.token is not None
            form.setdefault("csrf", self.token)
        async with self.session.post(self.url(path), data=form, **kwargs) as response:
            body = await response.text(errors="replace")  # downloads too (an XLSX export)
        match = _CSRF.search(body)
        if match:
            self.token = match.group(1)
        return response, body

    async def login(self, username: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        await self.get("/staff/login")
        response, _ = await self.post("/staff/login", {"username": username, "password": password})
        if response.status == 303:
            # Pick up the new session's token from the page the login leads to.
            location = response.headers["Location"]
            await self.get(location if location.startswith("/staff/") else "/staff/password")
        return response

    def cookie(self, name: str = "antam_staff") -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None


@pytest.fixture
async def server(services: Services) -> AsyncIterator[TestServer]:
    app = make_app(services, maintenance=False, channels=("web",), exit_url="/healthz")
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@pytest.fixture
async def browser_factory(server: TestServer) -> AsyncIterator[Any]:
    """Make as many independent StaffClients as a test needs; all are closed afterwards."""
    made: list[StaffClient] = []

    def make() -> StaffClient:
        client = StaffClient(server)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def staff_app(app: web.Application) -> web.Application:
    return app[STAFF_APP]
