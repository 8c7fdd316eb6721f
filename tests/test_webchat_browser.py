"""The web chat page in real headless Chromium (Playwright driving Debian's browser)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from bot.app import make_app
from bot.bootstrap import Services

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
