"""The web chat page in real headless Chromium (Playwright driving Debian's browser)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Locator, Page, expect

from bot.app import make_app
from bot.bootstrap import Services
from tests.support.contrast import contrasts, low_contrast

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def server(services: Services) -> AsyncIterator[str]:
    app = make_app(services, maintenance=False, channels=("web",), exit_url="/healthz")
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield f"http://127.0.0.1:{test_server.port}"
    finally:
        await test_server.close()


async def open_chat(browser: Browser, url: str, **options: Any) -> Page:
    context = await browser.new_context(locale="vi-VN", **options)
    page = await context.new_page()
    await page.goto(url)
    await expect(page.locator(".msg.bot").first).to_contain_text("quyền riêng tư")
    return page


async def test_conversation_in_the_browser(browser: Browser, server: str, tmp_path: Path) -> None:
    """A person reads the notice, accepts with a button, asks a question and gets an answer."""
    page = await open_chat(browser, server + "/", viewport={"width": 390, "height": 780})
    await page.get_by_role("button", name="Đồng ý").click()
    await expect(page.locator(".msg.bot").last).to_contain_text("Bạn cần gì?")
    await page.get_by_placeholder("Nhập tin nhắn…").fill("xn hiv o dau")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.bot").last).to_contain_text("Xét nghiệm HIV")
    await expect(page.locator(".msg.me").last).to_have_text("xn hiv o dau")
    await page.screenshot(path=str(tmp_path / "webchat.png"))


async def test_quick_exit_clears_page_and_history(browser: Browser, server: str) -> None:
    """"Thoát nhanh" empties the page, forgets the session id and leaves no way back."""
    page = await open_chat(browser, server + "/")
    await page.get_by_role("button", name="Đồng ý").click()
    await expect(page.locator(".msg.bot")).to_have_count(2)
    assert await page.evaluate("sessionStorage.getItem('antam.session')")
    entries = await page.evaluate("history.length")
    await page.locator("#exit").click()
    await page.wait_for_url(server + "/healthz")
    assert await page.evaluate("sessionStorage.getItem('antam.session')") is None
    assert await page.evaluate("history.length") == entries, "the chat's entry was replaced, not added to"
    await page.go_back()
    assert page.url != server + "/", "Back does not return to the chat"


async def test_escape_key_and_remember_me(browser: Browser, server: str) -> None:
    """Escape leaves at once; "remember me" moves the id to localStorage, which quick exit clears."""
    page = await open_chat(browser, server + "/")
    await page.locator("#remember").check()
    assert await page.evaluate("localStorage.getItem('antam.session')")
    await page.keyboard.press("Escape")
    await page.wait_for_url(server + "/healthz")
    assert await page.evaluate("localStorage.getItem('antam.session')") is None


async def test_peer_link_leaves_no_trace_in_the_address_bar(browser: Browser, server: str) -> None:
    """/?p=CODE starts with the peer code and the address bar shows only /."""
    page = await open_chat(browser, server + "/?p=peer_Lan01")
    assert page.url == server + "/"


async def test_works_without_websockets(browser: Browser, server: str) -> None:
    """When WebSockets are blocked the page falls back to plain HTTP."""
    context = await browser.new_context(locale="vi-VN")
    await context.route("**/chat/ws", lambda route: route.abort())
    page = await context.new_page()
    await page.add_init_script("window.WebSocket = function () { throw new Error('blocked'); };")
    await page.goto(server + "/")
    await expect(page.locator(".msg.bot").first).to_contain_text("quyền riêng tư")
    await page.get_by_role("button", name="Đồng ý").click()
    await expect(page.locator(".msg.bot").last).to_contain_text("Bạn cần gì?")


@pytest.mark.parametrize(("locale", "heading"), [("vi-VN", "Nếu bạn cần giúp ngay"), ("en-US", "If you need help now")])
async def test_hotlines_shown_when_no_reply_comes(browser: Browser, server: str, locale: str, heading: str) -> None:
    """The server never answers: a few seconds after sending, the page shows the hotlines itself,
    in its own language, with numbers to call; a reply that comes later hides them again."""
    context = await browser.new_context(locale=locale)
    held: list[Any] = []
    # No WebSocket, and every POST /chat/send left hanging: a server that stalls.
    await context.route("**/chat/ws", lambda route: route.abort())
    await context.route("**/chat/send", lambda route: held.append(route))
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.add_init_script("window.WebSocket = function () { throw new Error('blocked'); };")
    await page.goto(server + "/")
    stalled = page.locator("#stalled")
    await expect(stalled).to_be_hidden()
    await expect(stalled).to_be_visible(timeout=15_000)
    await expect(stalled).to_contain_text(heading)
    for number in ("113", "115", "111", "114"):
        await expect(stalled.locator(f'a[href="tel:{number}"]')).to_have_text(number)
    assert held, "the page's first message was sent and is still waiting"
    # The stalled request finally gets its answer (the server's own apology, say).
    await held[0].fulfill(status=200, content_type="application/json", body='{"replies": [{"text": "ok", "buttons": []}]}')
    await expect(stalled).to_be_hidden()
    assert errors == [], errors


# The phones these people have, a phone at 200 % zoom (360×640 seen at twice the size), a desktop.
PHONE = {"width": 360, "height": 640}
VIEWPORTS = [PHONE, {"width": 390, "height": 844}, {"width": 1280, "height": 800}]
ZOOMED = {"width": 180, "height": 320}


def size(viewport: dict[str, int]) -> str:
    return f"{viewport['width']}x{viewport['height']}"


async def accept(page: Page) -> None:
    await page.locator(".msg.bot").last.get_by_role("button", name="Đồng ý").click()
    await expect(page.locator(".msg.bot").last).to_contain_text("Bạn cần gì?")


async def ask(page: Page, text: str) -> Locator:
    """Type a message and wait for the answer; the answer's bubble (the last one)."""
    count = await page.locator(".msg.bot").count()
    await page.get_by_placeholder("Nhập tin nhắn…").fill(text)
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.bot")).to_have_count(count + 1)
    return page.locator(".msg.bot").last


async def press(page: Page, name: str) -> Locator:
    """Press a button of the last reply (opening "Xem thêm" if it is behind it); the answer."""
    count = await page.locator(".msg.bot").count()
    last = page.locator(".msg.bot").last
    button = last.get_by_role("button", name=name, exact=True)
    if not await button.is_visible():
        await last.get_by_role("button", name="Xem thêm").click()
    await button.click()
    await expect(page.locator(".msg.bot")).to_have_count(count + 1)
    return page.locator(".msg.bot").last


async def no_horizontal_scroll(page: Page) -> None:
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.getElementById('log').scrollWidth, document.getElementById('log').clientWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[3], f"horizontal scroll: {widths}"


async def top_in_view(page: Page, bubble: Locator) -> None:
    """The bubble's first line is inside the part of the conversation on screen: within the
    log's box, below the header, above the bottom of the window."""
    seen = await bubble.evaluate(
        """bubble => {
             const log = document.getElementById("log").getBoundingClientRect();
             const header = document.querySelector("header").getBoundingClientRect();
             return [bubble.getBoundingClientRect().top, Math.max(log.top, header.bottom),
                     Math.min(log.bottom, window.innerHeight)];
           }"""
    )
    top, shown_from, shown_to = seen
    assert shown_from - 1 <= top <= shown_to - 40, f"the reply starts at {top}; the screen shows {shown_from}–{shown_to}"


async def test_first_screen_is_short_with_the_full_notice_one_tap_away(browser: Browser, server: str, tmp_path: Path) -> None:
    """Who An Tâm is and the choice, in about 40 words; the full notice behind "Đọc thêm"; the
    quick exit in the header only."""
    page = await open_chat(browser, server + "/", viewport=PHONE)
    first = page.locator(".msg.bot").first
    words = len(" ".join(await first.locator("p").all_inner_texts()).split())
    assert words <= 45, f"{words} words before any help"
    await expect(first.get_by_role("button")).to_have_text(["Đồng ý", "Không lưu gì", "Đọc thêm"])
    await expect(page.get_by_role("button", name="Thoát nhanh")).to_have_count(1)
    await expect(page.locator("header").get_by_role("button", name="Thoát nhanh")).to_be_visible()
    # New replies are announced: they go into the polite live region of the conversation.
    assert await page.locator("#log").get_attribute("aria-live") == "polite"
    assert await first.evaluate("e => e.parentElement.id") == "log"
    await page.screenshot(path=str(tmp_path / "first-screen.png"))
    details = await press(page, "Đọc thêm")
    await expect(details).to_contain_text("180 ngày")
    await expect(details).to_contain_text("An Tâm lưu gì và không lưu gì")
    await expect(details.get_by_role("button", name="Đồng ý")).to_be_visible()
    await accept(page)


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=size)
async def test_a_long_answer_starts_in_view_with_its_urgent_line_marked(
    browser: Browser, server: str, tmp_path: Path, viewport: dict[str, int]
) -> None:
    """PEP: after the answer arrives its beginning is on screen, the 72-hour line marked, the
    title a heading; no horizontal scroll; every text readable (contrast ≥ 4.5:1)."""
    page = await open_chat(browser, server + "/", viewport=viewport)
    await accept(page)
    await ask(page, "xin chao")  # some conversation above, so the page has to scroll
    answer = await ask(page, "bao cao su bi rach")
    urgent = answer.locator(".urgent")
    await expect(urgent).to_have_count(1)
    await expect(urgent).to_contain_text("72 giờ")
    assert await urgent.evaluate("e => Number(getComputedStyle(e.querySelector('strong')).fontWeight) >= 700")
    await expect(answer.get_by_role("heading", level=2)).to_have_count(1)
    await top_in_view(page, answer)
    await expect(urgent).to_be_in_viewport()
    height = await answer.evaluate("e => e.getBoundingClientRect().height")
    log_height = await page.locator("#log").evaluate("e => e.clientHeight")
    if height > log_height:  # a reply longer than the screen: its end is below, not its start
        assert await page.locator("#log").evaluate("e => e.scrollTop + e.clientHeight < e.scrollHeight - 1")
    await expect(answer.get_by_role("button", name="Thoát nhanh")).to_have_count(0)
    await no_horizontal_scroll(page)
    assert await low_contrast(page) == []
    await page.screenshot(path=str(tmp_path / f"pep-{size(viewport)}.png"))


async def test_emergency_numbers_dial_on_tap(browser: Browser, server: str, tmp_path: Path) -> None:
    """The emergency numbers are tel: links, in a list, under the urgent line."""
    page = await open_chat(browser, server + "/", viewport=PHONE)
    await accept(page)
    answer = await press(page, "Hỗ trợ khẩn cấp")
    await expect(answer.locator(".urgent")).to_contain_text("gọi ngay")
    for number in ("113", "115", "111", "114"):
        await expect(answer.locator(f'.phones a[href="tel:{number}"]')).to_have_text(number)
    await top_in_view(page, answer)
    assert await low_contrast(page) == []
    await page.screenshot(path=str(tmp_path / "emergency.png"))


async def test_buttons_beyond_five_are_behind_more(browser: Browser, server: str) -> None:
    """The menu's seven choices: four and "Xem thêm", which shows the others and moves focus there."""
    page = await open_chat(browser, server + "/", viewport=PHONE)
    await accept(page)
    menu = page.locator(".msg.bot").last
    await expect(menu.locator(".choices button:visible")).to_have_count(5)
    await expect(menu.locator(".choices button:visible").last).to_have_text("Xem thêm")
    await expect(menu.get_by_role("button", name="English")).to_be_hidden()
    await menu.get_by_role("button", name="Xem thêm").click()
    await expect(menu.get_by_role("button", name="English")).to_be_visible()
    await expect(menu.get_by_role("button", name="Xem thêm")).to_have_count(0)
    await expect(menu.get_by_role("button", name="Nói chuyện với tư vấn viên")).to_be_focused()
    await expect(menu.locator(".choices button:visible")).to_have_count(7)


async def test_places_as_cards_and_a_code_to_copy(browser: Browser, server: str, tmp_path: Path) -> None:
    """Services are cards whose lines keep their indent, "not verified" said once; a referral
    code is large, monospaced, and copied with one tap."""
    page = await open_chat(browser, server + "/", viewport=PHONE, permissions=["clipboard-read", "clipboard-write"])
    await accept(page)
    places = await ask(page, "binh lu")
    cards = places.locator(".card")
    assert await cards.count() >= 2
    await expect(places.locator(".note")).to_have_count(1)
    assert "chưa xác minh" in await places.locator(".note").inner_text()
    assert (await places.inner_text()).count("chưa xác minh") == 1
    # Every line of a detail, wrapped or not, starts indented under the place's name.
    lefts = await cards.evaluate_all(
        """cards => cards.map(card => Array.from(card.children).map(line => {
             const range = document.createRange();
             range.selectNodeContents(line);
             return Array.from(range.getClientRects()).map(rect => Math.round(rect.left));
           }))"""
    )
    wrapped = False
    for card in lefts:
        name, *details = card
        for rows in details:
            assert rows and min(rows) >= min(name) + 8, f"a detail line is not indented: {card}"
            wrapped = wrapped or rows.count(min(rows)) > 1
    assert wrapped, f"no detail line wraps at 360 px, so the indent of a wrapped line was not seen: {lefts}"
    await page.screenshot(path=str(tmp_path / "places.png"))
    answer = await press(page, "Lấy mã giới thiệu")
    while not await answer.locator(".code").count():
        # Kinds of help, then places: the first choice each time, until a code comes.
        answer = await press(page, (await answer.locator(".choices button").first.inner_text()).strip())
    code = answer.locator(".code")
    value = (await code.inner_text()).strip()
    assert len(value) == 9 and value[4] == "-", value
    style = await code.evaluate("e => [getComputedStyle(e).fontFamily, parseFloat(getComputedStyle(e).fontSize)]")
    assert "mono" in style[0].lower() and style[1] >= 24, style
    await top_in_view(page, answer)
    await answer.get_by_role("button", name="Chép mã").click()
    await expect(answer.get_by_role("button", name="Đã chép mã")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == value
    assert await low_contrast(page) == []
    await no_horizontal_scroll(page)
    await page.screenshot(path=str(tmp_path / "code.png"))


async def focused(page: Page) -> str:
    return str(await page.evaluate("document.activeElement ? document.activeElement.textContent.trim() : ''"))


async def tab_to(page: Page, name: str, *, limit: int = 30) -> None:
    """Press Tab until the control named ``name`` has the focus, and check it shows it."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await focused(page) == name:
            outline = await page.evaluate(
                "(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()"
            )
            assert outline[0] != "none" and outline[1] != "0px", f"{name!r} has the focus but does not show it: {outline}"
            return
    raise AssertionError(f"Tab never reached {name!r} (last: {await focused(page)!r})")


async def test_keyboard_only(browser: Browser, server: str, tmp_path: Path) -> None:
    """Tab and Enter alone: consent, a group of topics, a topic, and the quick exit; focus is
    always visible and moves on to each answer."""
    page = await open_chat(browser, server + "/", viewport=PHONE)
    await tab_to(page, "Đồng ý")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.bot").last).to_contain_text("Bạn cần gì?")
    await tab_to(page, "Thông tin tư vấn")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.bot").last).to_contain_text("HIV và bệnh lây qua đường tình dục")
    await tab_to(page, "HIV và bệnh lây qua đường tình dục")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.bot").last.get_by_role("heading")).to_have_count(1)
    first_topic = (await page.locator(".msg.bot").last.locator(".choices button").first.inner_text()).strip()
    await tab_to(page, first_topic)
    await page.keyboard.press("Enter")
    topic = page.locator(".msg.bot").last
    await expect(topic.get_by_role("heading", level=2)).to_have_text(first_topic)
    await top_in_view(page, topic)
    # The text box and its button are reachable too, and a typed question is answered.
    await tab_to(page, "Gửi", limit=40)
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.type("xn hiv o dau")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.me").last).to_have_text("xn hiv o dau")
    await page.screenshot(path=str(tmp_path / "keyboard.png"))
    # The header's quick exit by keyboard: Shift+Tab from the first control reaches it.
    await page.evaluate("document.activeElement.blur()")
    await tab_to(page, "Thoát nhanh")
    await page.keyboard.press("Enter")
    await page.wait_for_url(server + "/healthz")


async def test_usable_at_200_percent_zoom(browser: Browser, server: str, tmp_path: Path) -> None:
    """A 360 px phone at 200 %: 180×320 CSS pixels; nothing scrolls sideways, every control fits."""
    page = await open_chat(browser, server + "/", viewport=ZOOMED)
    await no_horizontal_scroll(page)
    await accept(page)
    answer = await ask(page, "bao cao su bi rach")
    await top_in_view(page, answer)
    await no_horizontal_scroll(page)
    for control in ("#exit", "#text", "form button"):
        box = await page.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= ZOOMED["width"] + 0.5, (control, box)
    assert await low_contrast(page) == []
    await page.screenshot(path=str(tmp_path / "zoom-200.png"))
    await page.screenshot(path=str(tmp_path / "zoom-200-full.png"), full_page=True)


async def test_the_contrast_script_measures_wcag_ratios(browser: Browser, database_url: str) -> None:
    """Known pairs: #767676 on white is 4.54:1 (passes), #777777 4.48:1 (fails); black on white
    21:1; half-transparent backgrounds are composited over what is under them; hidden text is
    not measured."""
    page = await browser.new_page()
    await page.set_content(
        '<body style="background:#ffffff;margin:0">'
        '<p id="a" style="color:#767676">pass</p><p id="b" style="color:#777777">fail</p>'
        '<p id="c" style="color:#000">black</p>'
        '<div style="background:rgba(0,0,0,0.5)"><p id="d" style="color:#808080">grey on grey</p></div>'
        '<p hidden style="color:#fff">hidden</p><p style="visibility:hidden;color:#fff">invisible</p>'
        "</body>"
    )
    found = {item["text"]: item["ratio"] for item in await contrasts(page)}
    assert set(found) == {"pass", "fail", "black", "grey on grey"}
    assert round(found["pass"], 2) == 4.54 and round(found["fail"], 2) == 4.48 and round(found["black"]) == 21
    assert found["grey on grey"] < 2
    low = await low_contrast(page)
    assert len(low) == 2 and any("'fail'" in line for line in low) and any("'grey on grey'" in line for line in low)
    await page.close()
