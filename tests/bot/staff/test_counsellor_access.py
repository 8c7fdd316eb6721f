"""A counsellor account only counsels: none of the staff pages' figures, lists or forms are
theirs; their home is the counselling page, and they keep their own password and second factor."""

from __future__ import annotations

from typing import Any

import pytest

from bot.bootstrap import Services
from bot.staff.auth import Access
from bot.staff.routes import ROUTES
from storage.staff import Role
from tests.staff_fixtures import WARD_A, StaffClient, add_account

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def test_a_counsellor_sees_no_figures(services: Services, browser_factory: Any) -> None:
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    me: StaffClient = browser_factory()
    assert (await me.login("tv-lan")).status == 303
    staff_pages = [
        "/staff" + route.path for route in ROUTES if route.access in (Access.STAFF, Access.ADMIN) and route.method == "GET"
    ]
    assert "/staff/" in staff_pages and len(staff_pages) > 5
    for path in staff_pages:
        if "{" in path:
            continue
        response, _ = await me.get(path)
        if path == "/staff/":
            assert response.status == 303 and response.headers["Location"] == "/staff/counselling"
        else:
            assert response.status == 403, path
    for path in ("/staff/password", "/staff/totp", "/staff/counselling"):
        response, page = await me.get(path)
        assert response.status == 200, path
    assert "/staff/redeem" not in page and "/staff/export" not in page, "the menu offers only what they may open"
