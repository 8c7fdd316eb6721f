"""The staff app on a phone-sized screen in real headless Chromium (Debian's, through Playwright).

Screenshots of every page visited are saved under the test's tmp_path (pytest keeps the last
runs under its basetemp, e.g. /tmp/pytest-of-$USER/pytest-current/test_first_login_on_a_phone_sqcurrent/
and …/test_daily_work_on_a_phone_sqlcurrent/).
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from bot.bootstrap import Services
from bot.runtime import Runtime
from bot.staff.passwords import new_one_time_password
from handlers.types import Inbound
from referrals.indicators import set_target
from referrals.peers import create_peer_link
from storage.staff import Role
from tests.support.contrast import low_contrast
from tests.staff_fixtures import PASSWORD, PROVINCE_A, PROVINCE_OTHER, WARD_A, WARD_B, WARD_OTHER, add_account

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]
PHONE: ViewportSize = {"width": 390, "height": 844}


async def shot(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@dataclass
class PhonePage:
    """A phone-sized page, and what it did that the tests check at the end."""

    context: BrowserContext
    page: Page
    outside: list[str] = field(default_factory=list)  # requests to anything but the server
    failed: list[str] = field(default_factory=list)  # responses of 400 and above
    console_errors: list[str] = field(default_factory=list)


async def phone_page(browser: Browser, base: str, **options: Any) -> PhonePage:
    context = await browser.new_context(
        viewport=PHONE, locale="vi-VN", device_scale_factor=2, is_mobile=True, has_touch=True, **options
    )
    watched = PhonePage(context, await context.new_page())
    context.on("request", lambda request: None if request.url.startswith(base) else watched.outside.append(request.url))
    watched.page.on(
        "console", lambda message: watched.console_errors.append(message.text) if message.type == "error" else None
    )
    watched.page.on("response", lambda response: watched.failed.append(response.url) if response.status >= 400 else None)
    return watched


async def test_first_login_on_a_phone(browser: Browser, server: TestServer, services: Services, tmp_path: Path) -> None:
    """One-time password → new password → home → English → log out, on a 390×844 screen."""
    one_time = new_one_time_password()
    await add_account(services, "lan.nguyen", ward=WARD_A, password=one_time, one_time=True)
    base = f"http://127.0.0.1:{server.port}"
    watched = await phone_page(browser, base)
    context, page = watched.context, watched.page
    outside, failed, console_errors = watched.outside, watched.failed, watched.console_errors

    await page.goto(base + "/staff/")
    await expect(page).to_have_url(base + "/staff/login")
    await expect(page.get_by_role("heading", name="Đăng nhập")).to_be_visible()
    await shot(page, tmp_path, "1-login")
    await page.get_by_label("Tên đăng nhập").fill("lan.nguyen")
    await page.get_by_label("Mật khẩu").fill(one_time.lower())  # as a phone keyboard might type it
    await page.get_by_role("button", name="Đăng nhập").click()

    await expect(page).to_have_url(base + "/staff/password")
    await expect(page.get_by_text("Anh/chị đang dùng mật khẩu dùng một lần")).to_be_visible()
    await shot(page, tmp_path, "2-change-password")
    await page.get_by_label("Mật khẩu dùng một lần").fill(one_time)
    await page.get_by_label("Mật khẩu mới", exact=True).fill("một câu dễ nhớ 2026")
    await page.get_by_label("Nhập lại mật khẩu mới").fill("một câu dễ nhớ 2026")
    await page.get_by_role("button", name="Lưu mật khẩu mới").click()

    await expect(page).to_have_url(base + "/staff/?done=password")
    await expect(page.get_by_role("heading", name="Trang chủ")).to_be_visible()
    await expect(page.get_by_text("Đã lưu mật khẩu mới.")).to_be_visible()
    await expect(page.get_by_text("Xã Bình Lư (Lai Châu)")).to_be_visible()
    await expect(page.get_by_role("link", name="Tài khoản", exact=True)).to_have_count(0)  # not for staff
    # Readable on a phone: nothing wider than the screen, tap targets at least 44 px high.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for button in await page.locator("button, .cards a, .menu a, .menu summary").all():
        if not await button.is_visible():  # the menu's links stay folded until the menu is opened
            continue
        box = await button.bounding_box()
        assert box is not None and box["height"] >= 44, await button.inner_text()
    await shot(page, tmp_path, "3-home")

    await page.get_by_role("link", name="Dịch vụ chưa xác minh").first.click()
    await expect(page.get_by_role("heading", name="Dịch vụ chưa xác minh")).to_be_visible()
    await expect(page.get_by_text("Trạm Y tế xã Bình Lư")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await shot(page, tmp_path, "4-services")

    await page.get_by_role("button", name="English").click()
    await expect(page).to_have_url(base + "/staff/services")
    await expect(page.get_by_role("heading", name="Unverified services")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "en"
    await _from_the_menu(page, "Home")
    await expect(page.get_by_role("heading", name="Home")).to_be_visible()
    await expect(page.get_by_text("Hello, lan.nguyen.")).to_be_visible()
    await shot(page, tmp_path, "5-home-english")

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(base + "/staff/login?out=1")
    await expect(page.get_by_text("You have logged out.")).to_be_visible()
    await shot(page, tmp_path, "6-logged-out")
    await page.goto(base + "/staff/")
    await expect(page).to_have_url(base + "/staff/login")

    assert outside == [], "the pages load nothing from elsewhere"
    assert failed == [], "every resource loads (style sheet, icon)"
    assert console_errors == [], "no CSP violations or script errors"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "1-login.png", "2-change-password.png", "3-home.png", "4-services.png", "5-home-english.png", "6-logged-out.png",
    ]
    await context.close()


async def _code_for(runtime: Runtime, user: str) -> str:
    """A person accepts the notice, chooses Bình Lư and asks for an HIV-test referral code."""
    shown = ""
    for payload in ("c:accept", f"w:{WARD_A}", "ri:tyt_binh_lu:1"):
        for reply in await runtime.handle(Inbound("telegram", user, payload=payload)):
            shown = reply.text
    return next(line for line in shown.splitlines() if "Mã giới thiệu của bạn" in line).split(": ")[1]


async def _from_the_menu(page: Page, name: str) -> None:
    """Open a page from the menu as a person on a phone does: the menu button first, then the link."""
    menu = page.locator("nav.menu")
    await menu.locator("details.menu-button > summary").click()
    await menu.get_by_role("link", name=name, exact=True).click()


async def _fits_a_phone(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for button in await page.locator("main button, .menu a, .menu summary").all():
        if await button.is_visible():
            box = await button.bounding_box()
            assert box is not None and box["height"] >= 44, await button.inner_text()


async def test_daily_work_on_a_phone(
    browser: Browser, server: TestServer, services: Services, runtime: Runtime, tmp_path: Path
) -> None:
    """Overview with its progress bar → redeem a code issued by the bot → a peer link → download an export."""
    await add_account(services, "lan.nguyen", ward=WARD_A)
    for n in range(9):  # people reached in Bình Lư through the bot itself
        for payload in ("c:accept", f"w:{WARD_A}", "t:pep"):
            await runtime.handle(Inbound("zalo" if n % 3 else "telegram", f"person-{n}", payload=payload))
    code = await _code_for(runtime, "holder")
    async with services.db.transaction() as db:
        await set_target(db, year=2026, commune=WARD_A, province=12, indicator="reached", estimate=40,
                         target_percent=70, now=services.clock.now())
    base = f"http://127.0.0.1:{server.port}"
    watched = await phone_page(browser, base, accept_downloads=True)
    context, page = watched.context, watched.page
    outside, failed, console_errors = watched.outside, watched.failed, watched.console_errors

    await page.goto(base + "/staff/login")
    await page.get_by_label("Tên đăng nhập").fill("lan.nguyen")
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page).to_have_url(base + "/staff/")
    bar = page.locator("progress.bar")
    await expect(bar).to_be_visible()
    assert await bar.get_attribute("value") == "25.0"  # 10 people of an estimated 40
    await expect(page.locator(".progress-card .number")).to_have_text("25,0 %")
    await expect(page.get_by_text("Chưa đạt")).to_be_visible()
    await expect(page.locator("svg.chart")).to_be_visible()
    await _fits_a_phone(page)
    await shot(page, tmp_path, "1-overview")

    await _from_the_menu(page, "Xác nhận mã")
    await expect(page.get_by_role("heading", name="Xác nhận mã giới thiệu")).to_be_visible()
    await page.get_by_label("Mã giới thiệu").fill(code.lower())
    await page.get_by_role("button", name="Xác nhận mã").click()
    await expect(page.get_by_text("Đã xác nhận mã: xét nghiệm HIV, ngày 02/03/2026.")).to_be_visible()
    await _fits_a_phone(page)
    await shot(page, tmp_path, "2-redeemed")
    await page.get_by_label("Mã giới thiệu").fill(code)
    await page.get_by_role("button", name="Xác nhận mã").click()
    await expect(page.get_by_text("Mã này đã được dùng ngày 02/03/2026.")).to_be_visible()
    failed.clear()  # that answer is a 400 on purpose (and the browser's console says so)
    console_errors.clear()

    await _from_the_menu(page, "Đường dẫn đồng đẳng")
    await page.get_by_label("Tên gọi của đường dẫn").fill("Nhóm BL 07")
    await page.get_by_role("button", name="Tạo đường dẫn").click()
    await expect(page.get_by_role("heading", name="Đã tạo đường dẫn")).to_be_visible()
    stats_url = await page.locator("code.stats-url").inner_text()
    qr = page.locator(".qr-box img").first
    await expect(qr).to_be_visible()
    # Visible is not loaded: wait for the image to finish (or fail) before looking at it.
    handle = await qr.element_handle()
    await page.wait_for_function("image => image.complete", arg=handle, timeout=10_000)
    assert await qr.evaluate("image => image.naturalWidth") > 0, "the QR code loads under the CSP"
    await _fits_a_phone(page)
    await shot(page, tmp_path, "3-peer-link")
    await page.goto(base + stats_url.removeprefix("http://127.0.0.1:8080"))
    await expect(page.get_by_role("heading", name="Số liệu của đường dẫn")).to_be_visible()
    await _fits_a_phone(page)
    await shot(page, tmp_path, "4-peer-page")

    await page.goto(base + "/staff/")
    await _from_the_menu(page, "Xuất báo cáo")
    await expect(page.get_by_role("heading", name="Xuất báo cáo")).to_be_visible()
    await page.get_by_label("Excel (XLSX)").check()
    await _fits_a_phone(page)
    await shot(page, tmp_path, "5-export")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Tải báo cáo").click()
    download = await info.value
    assert download.suggested_filename == "antam-2026-H1-xa-3390.xlsx"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.read_bytes().startswith(b"PK")

    await page.get_by_role("button", name="English").click()
    await _from_the_menu(page, "Home")
    await expect(page.get_by_role("heading", name="Home")).to_be_visible()
    await expect(page.locator("progress.bar")).to_be_visible()
    await shot(page, tmp_path, "6-overview-english")

    assert outside == [], "the pages load nothing from elsewhere"
    assert failed == [], "every resource loads (style sheet, icon, QR codes)"
    assert console_errors == [], "no CSP violations or script errors"
    await context.close()


VIEWPORTS: dict[str, ViewportSize] = {
    "360x640": {"width": 360, "height": 640},
    "390x844": {"width": 390, "height": 844},
    "1280x800": {"width": 1280, "height": 800},
}
# Every page each account can open from the menu or from a page it links to, and the menu item
# naming it (None: a page of its own, such as the peer educator's, outside the menu).
STAFF_PAGES: tuple[tuple[str, str | None], ...] = (
    ("/staff/", "Trang chủ"),
    ("/staff/redeem", "Xác nhận mã"),
    ("/staff/peers", "Đường dẫn đồng đẳng"),
    ("/staff/export", "Xuất báo cáo"),
    ("/staff/services", "Dịch vụ chưa xác minh"),
    ("/staff/totp", "Xác thực hai bước"),
    ("/staff/password", "Đổi mật khẩu"),
    ("{peer_page}", None),
)
ADMIN_PAGES: tuple[tuple[str, str | None], ...] = (
    ("/staff/", "Trang chủ"),
    ("/staff/?province=12", "Trang chủ"),
    ("/staff/?province=31", "Trang chủ"),
    ("/staff/redeem", "Xác nhận mã"),
    ("/staff/redeem?province=12", "Xác nhận mã"),
    ("/staff/peers", "Đường dẫn đồng đẳng"),
    ("/staff/export", "Xuất báo cáo"),
    ("/staff/targets?province=12", "Ước tính và chỉ tiêu"),
    ("/staff/services", "Dịch vụ chưa xác minh"),
    ("/staff/accounts", "Tài khoản"),
    ("/staff/accounts/new", "Tài khoản"),
    ("/staff/accounts/{account}", "Tài khoản"),
    ("/staff/audit", "Nhật ký"),
    ("/staff/counselling/hours?province=12", "Giờ trực tư vấn"),
    ("/staff/totp", "Xác thực hai bước"),
    ("/staff/password", "Đổi mật khẩu"),
)
NO_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


async def _reach(runtime: Runtime, commune: int, people: int, prefix: str) -> None:
    for n in range(people):
        for payload in ("c:accept", f"w:{commune}", "t:pep"):
            await runtime.handle(Inbound("telegram", f"{prefix}-{n}", payload=payload))


async def _sign_in(page: Page, base: str, username: str) -> None:
    await page.goto(base + "/staff/login")
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page).to_have_url(base + "/staff/")


async def _named_in_the_menu(page: Page, name: str, wide: bool) -> None:
    """The menu names the page: the bar marks its link on a wide screen, the menu button says it on a phone."""
    menu = page.locator("nav.menu")
    if wide:
        await expect(menu.locator(".menu-bar")).to_be_visible()
        await expect(menu.locator("details.menu-button")).to_be_hidden()
        await expect(menu.locator(".menu-bar [aria-current]")).to_have_text(name)
    else:
        await expect(menu.locator(".menu-bar")).to_be_hidden()
        summary = menu.locator("details.menu-button > summary")
        await expect(summary).to_be_visible()
        await expect(summary.locator(".here")).to_have_text(f"Đang xem: {name}")
        box = await summary.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 140, "the menu is one short bar at the top"
        await expect(menu.get_by_role("link", name=name)).to_have_count(0)  # folded away until asked for


async def _judged_figure_first(page: Page, viewport: ViewportSize, verdict: str | None) -> None:
    """The first card (the commune's, or the whole area's) and its met / not met come before any detail."""
    card = page.locator(".progress-card").first
    await expect(card).to_be_visible()
    if verdict is not None:  # the commune has an estimate and a target: the percentage and the verdict
        await expect(card.locator(".number")).to_have_text("22,5 %")
        await expect(card.locator(".tag")).to_have_text(verdict)
        await expect(card.locator("progress.bar")).to_have_attribute("value", "22.5")
        await expect(card.locator(".detail")).to_contain_text("9 trên ước tính 40 người · chỉ tiêu 70,0 %")
    box = await card.bounding_box()
    period = await page.get_by_label("Kỳ báo cáo").bounding_box()
    assert box is not None and period is not None
    assert box["y"] + box["height"] <= viewport["height"], "the judged figure is in the first screen"
    assert period["y"] < box["y"], "the period switch comes first"
    people = await page.locator("#people-title").bounding_box()
    assert people is not None and people["y"] > box["y"] + box["height"], "details come below"


async def _cards_or_tables(page: Page, wide: bool) -> None:
    """A province's communes: one card each on a phone, the table on a wide screen."""
    cards = page.locator(".progress-list.compact")
    table = page.locator("table.progress-table")
    people_cards = page.locator(".figure-cards")
    people_table = page.get_by_role("region", name="Số người theo chỉ số")
    if wide:
        await expect(table).to_be_visible()
        await expect(people_table).to_be_visible()
        await expect(cards).to_be_hidden()
        await expect(people_cards).to_be_hidden()
        return
    await expect(cards).to_be_visible()
    await expect(people_cards).to_be_visible()
    await expect(table).to_be_hidden()
    await expect(people_table).to_be_hidden()
    binh_lu = cards.locator(".progress-card").filter(has_text="Xã Bình Lư")
    await expect(binh_lu.locator(".number")).to_have_text("22,5 %")
    await expect(binh_lu.locator(".tag")).to_have_text("Chưa đạt")
    await expect(binh_lu.locator("progress.bar")).to_have_attribute("value", "22.5")
    muong_kim = cards.locator(".progress-card").filter(has_text="Xã Mường Kim")
    await expect(muong_kim.locator(".number")).to_have_text("30,0 %")  # 6 of 20, target 25 %
    await expect(muong_kim.locator(".tag")).to_have_text("Đạt chỉ tiêu")
    # A commune's name stays on one line (the table wrapped it a word per line).
    name = binh_lu.locator("h3")
    line = await name.evaluate("element => parseFloat(getComputedStyle(element).lineHeight)")
    height = (await name.bounding_box() or {"height": 0})["height"]
    assert height < 1.5 * line, "the name is not wrapped"


async def _small_counts_hidden(page: Page, wide: bool) -> None:
    """Two people in Nam Thanh Miện: "<5" on its card or in its row, and no percentage or bar from which to rebuild it."""
    if wide:
        row = page.locator("table.progress-table tr").filter(has_text="Xã Nam Thanh Miện")
        await expect(row.locator(".hidden-count")).to_have_text("<5")
        await expect(row.locator("progress")).to_have_count(0)
        return
    card = page.locator(".progress-list.compact .progress-card").filter(has_text="Xã Nam Thanh Miện")
    await expect(card.locator(".hidden-count")).to_have_text("<5")
    await expect(card.locator("progress")).to_have_count(0)
    await expect(card).not_to_contain_text("20,0 %")
    people = page.locator(".figure-cards .figure-card").filter(has_text="Xã Nam Thanh Miện")
    await expect(people.locator(".hidden-count").first).to_have_text("<5")
    await expect(people).not_to_contain_text("20,0 %")
    assert "2" not in (await card.inner_text()).replace("2026", ""), "the count itself is never shown"


@pytest.mark.parametrize("size", list(VIEWPORTS))
async def test_every_page_fits_the_screen(
    browser: Browser, server: TestServer, services: Services, runtime: Runtime, tmp_path: Path, size: str
) -> None:
    """Each page an admin and a commune's staff can open: no sideways scroll on a phone, the page named in the menu,
    the judged figure (reached against the target, met or not) in the first screen, cards on a phone and tables
    on a wide screen."""
    viewport = VIEWPORTS[size]
    wide = viewport["width"] >= 1024
    await add_account(services, "lan.nguyen", ward=WARD_A)
    account = await add_account(services, "quan.tri", Role.ADMIN)
    await _reach(runtime, WARD_A, 9, "a")
    await _reach(runtime, WARD_B, 6, "b")
    await _reach(runtime, WARD_OTHER, 2, "o")  # a small count: hidden on cards as in tables
    async with services.db.transaction() as db:
        for commune, province, estimate, target in (
            (WARD_A, PROVINCE_A, 40, 70), (WARD_B, PROVINCE_A, 20, 25), (WARD_OTHER, PROVINCE_OTHER, 10, 10)
        ):
            await set_target(db, year=2026, commune=commune, province=province, indicator="reached",
                             estimate=estimate, target_percent=target, now=services.clock.now())
        peer = await create_peer_link(db, services.secrets.pepper, alias="Nhóm BL 07", commune=WARD_A,
                                      province=PROVINCE_A, now=services.clock.now())
    base = f"http://127.0.0.1:{server.port}"
    values = {"peer_page": f"/staff/peer/{peer.stats_token}", "account": str(account)}

    for username, pages in (("lan.nguyen", STAFF_PAGES), ("quan.tri", ADMIN_PAGES)):
        phone: dict[str, Any] = {} if wide else {"device_scale_factor": 2, "is_mobile": True, "has_touch": True}
        context = await browser.new_context(viewport=viewport, locale="vi-VN", **phone)
        page = await context.new_page()
        console_errors: list[str] = []
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        await _sign_in(page, base, username)
        for n, (path, name) in enumerate(pages):
            response = await page.goto(base + path.format(**values))
            assert response is not None and response.status == 200, path
            label = re.sub(r"[^a-z0-9=]+", "-", path.removeprefix("/staff").format(**values).lower()).strip("-") or "home"
            await shot(page, tmp_path, f"{username}-{n:02}-{label}")
            await page.screenshot(path=str(tmp_path / f"{username}-{n:02}-{label}-first-screen.png"))
            if not wide:
                assert await page.evaluate(NO_SCROLL), f"{path} scrolls sideways at {size}"
            assert await low_contrast(page) == [], f"{path}: text below 4.5:1 contrast"
            if name is not None:
                await _named_in_the_menu(page, name, wide)
            if path == "/staff/":
                await _judged_figure_first(page, viewport, "Chưa đạt" if username == "lan.nguyen" else None)
            if path == "/staff/?province=12":
                await _cards_or_tables(page, wide)
            if path == "/staff/?province=31":
                await _small_counts_hidden(page, wide)
        assert console_errors == [], "no CSP violations or script errors"
        await context.close()


async def test_the_menu_by_keyboard(browser: Browser, server: TestServer, services: Services, tmp_path: Path) -> None:
    """On a phone the menu button opens with the keyboard and its links follow it; on a wide screen the bar's links."""
    await add_account(services, "lan.nguyen", ward=WARD_A)
    base = f"http://127.0.0.1:{server.port}"
    watched = await phone_page(browser, base)
    page = watched.page
    await _sign_in(page, base, "lan.nguyen")

    async def tab_to(selector: str) -> None:
        for _ in range(6):
            await page.keyboard.press("Tab")
            if await page.evaluate("selector => document.activeElement.matches(selector)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    await tab_to("details.menu-button > summary")
    await page.keyboard.press("Enter")
    menu = page.locator("nav.menu")
    await expect(menu.get_by_role("link", name="Xác nhận mã")).to_be_visible()
    await expect(menu.get_by_role("link", name="Trang chủ")).to_have_attribute("aria-current", "page")
    await _fits_a_phone(page)
    await shot(page, tmp_path, "1-menu-open")
    await tab_to("a[href='/staff/redeem']")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(base + "/staff/redeem")
    await expect(menu.locator("details.menu-button > summary .here")).to_have_text("Đang xem: Xác nhận mã")
    await expect(menu.locator("details.menu-button")).not_to_have_attribute("open", "")  # folded again on the new page
    await watched.context.close()

    wide = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    page = await wide.new_page()
    await _sign_in(page, base, "lan.nguyen")
    await tab_to(".menu-bar a[href='/staff/peers']")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(base + "/staff/peers")
    await expect(page.locator(".menu-bar [aria-current='page']")).to_have_text("Đường dẫn đồng đẳng")
    await shot(page, tmp_path, "2-wide-bar")
    await wide.close()
