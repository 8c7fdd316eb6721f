"""The staff app against guessing: the login throttle per address block, the audit of refused
logins, and the password policy. 127.0.0.1 is a trusted proxy here, so X-Forwarded-For stands
for the many addresses a guesser could rotate through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.bootstrap import Services
from bot.clock import FixedClock
from bot.config import Settings
from bot.staff.passwords import password_problems
from tests.support.settings import make_settings
from storage.staff import AuditEntry, masked_username
from tests.staff_fixtures import (
    PASSWORD,
    WARD_A,
    StaffClient,
    add_account,
)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
def settings(tmp_path: Path, database_url: str, master_key: str) -> Settings:
    return make_settings(tmp_path, database_url, master_key, ANTAM_TRUSTED_PROXIES="127.0.0.1")


async def attempt(me: StaffClient, address: str, username: str, password: str = "không phải mật khẩu") -> int:
    response, _ = await me.post(
        "/staff/login", {"username": username, "password": password}, headers={"X-Forwarded-For": address}
    )
    return response.status


async def audit(services: Services) -> list[tuple[str, str, str]]:
    async with services.db.transaction() as db:
        rows = (await db.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(row.actor, row.action, row.detail) for row in rows]


@pytest.mark.parametrize(
    "addresses",
    [
        [f"2001:db8:7:8::{n + 1:x}" for n in range(25)],  # one IPv6 /64
        [f"198.51.100.{n + 1}" for n in range(25)],  # one IPv4 /24
    ],
    ids=["ipv6-64", "ipv4-24"],
)
async def test_rotating_addresses_in_a_block_does_not_get_round_the_throttle(
    services: Services, clock: FixedClock, browser_factory: Any, addresses: list[str]  # noqa: F811
) -> None:
    """Twenty attempts per block, then 429 — whichever address of the block the next comes from."""
    await add_account(services, "tuan", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    statuses = [await attempt(me, address, f"doan-{n}") for n, address in enumerate(addresses)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    assert await attempt(me, "203.0.113.1", "tuan", PASSWORD) == 303, "another block is not slowed down"


async def test_refused_logins_are_audited_with_unknown_names_masked(
    services: Services, clock: FixedClock, browser_factory: Any  # noqa: F811
) -> None:
    """An unknown name is audited masked; attempts on a locked account are audited too."""
    await add_account(services, "hoa", ward=WARD_A)
    me: StaffClient = browser_factory()
    await me.get("/staff/login")
    assert await attempt(me, "192.0.2.1", "nguyenvana-secret") == 401
    for _ in range(5):
        assert await attempt(me, "192.0.2.1", "hoa") == 401
    assert await attempt(me, "192.0.2.1", "hoa", PASSWORD) == 401  # locked now
    entries = await audit(services)
    assert entries[0] == ("ng…", "login_failed", "unknown username")
    assert all("nguyenvana" not in actor + detail for actor, _, detail in entries)
    assert entries[-1] == ("hoa", "login_failed", "attempt on a locked account")
    assert [action for _, action, _ in entries].count("locked") == 1


def test_masked_username() -> None:
    assert masked_username("  Nguyen.Van.A ") == "ng…"
    assert masked_username("") == "…"
    assert masked_username("<b>x") == "…" or masked_username("<b>x") == "b…"


@pytest.mark.parametrize(
    "password",
    [
        "1234567890",
        "password12",
        "qwertyuiop",
        "lan.nguyen2024",
        "LanNguyen123456",
        "123456789012",
        "qwertyuiop12",
        "passwordpassword",
        "matkhau123456",
        "iloveyou2024",
        "Mật Khẩu 123456",
    ],
)
def test_common_and_guessable_passwords_are_refused(password: str) -> None:
    """Short, common, keyboard-run and username-based passwords are refused, with a reason."""
    problems = password_problems(password, password, username="lan.nguyen", current="hiện tại", one_time=False)
    assert problems and set(problems) <= {
        "staff.password.error.short",
        "staff.password.error.common",
        "staff.password.error.username",
    }, problems


@pytest.mark.parametrize("password", ["một câu dễ nhớ 2026", "K7QM-3XTP-9HWD-RC4N", "bàn xanh lá cây ở góc", PASSWORD])
def test_good_passwords_are_accepted(password: str) -> None:
    assert password_problems(password, password, username="lan.nguyen", current="hiện tại", one_time=False) == []


async def test_the_password_page_explains_a_guessable_password(
    services: Services, browser_factory: Any  # noqa: F811
) -> None:
    """The change-password page says in Vietnamese why "qwertyuiop12" is refused."""
    await add_account(services, "hanh", ward=WARD_A)
    me: StaffClient = browser_factory()
    assert (await me.login("hanh")).status == 303
    response, page = await me.post("/staff/password", {"current": PASSWORD, "new": "qwertyuiop12", "confirm": "qwertyuiop12"})
    assert response.status == 400 and "quá dễ đoán" in page
    response, page = await me.post("/staff/password", {"current": PASSWORD, "new": "hanh-2026-hanh", "confirm": "hanh-2026-hanh"})
    assert response.status == 400 and "không được chứa tên đăng nhập" in page
