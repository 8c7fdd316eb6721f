"""The counsellor chat end to end (issue #18): a person on Telegram (the real python-telegram-bot
client against the fake Bot API, webhook mode) and counsellors in real headless Chromium at
phone size, all on one An Tâm server on 127.0.0.1 (webhook, staff app, outbox worker).

- the whole case: menu → notice → start; on duty, the queue live, claim; both ways (live on the
  page over the WebSocket, protected on Telegram); a safety message marks it urgent; hand-over
  to a second counsellor (who then sees the transcript, the first no longer); close with an
  outcome, the person told; a counsellor of another commune sees nothing of it at any point;
  HTML typed by the person stays text; nothing loaded from outside; then the privacy scan (no
  typed word and no Telegram user id in any data file, table row or log line; during the case
  the transcript is in the database only sealed);
- the same page with WebSockets blocked falls back to polling and still works both ways.

Screenshots of each step are saved under the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect
from sqlalchemy import inspect, text

from bot.app import channel_of, make_app
from bot.bootstrap import Services, open_services
from bot.channels.telegram import ChatPacer, TelegramChannel
from bot.clock import FixedClock
from bot.config import Settings
from bot.logs import quiet_libraries
from bot.staff.passwords import new_one_time_password
from storage.staff import Role
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.staff_fixtures import PASSWORD, WARD_A, WARD_B, add_account
from tests.support.telegram import TOKEN, USER, bot_messages, post, telegram_settings

# On SQLite always, and on PostgreSQL too when ANTAM_TEST_DATABASE_URL is set (tests/conftest.py).
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
PHONE: ViewportSize = {"width": 390, "height": 844}
WAIT = 10.0  # seconds: the longest any single step may take
T = TypeVar("T")


# --- the server, the person and the counsellors' phones ---------------------------------------


@dataclass
class Stack:
    services: Services
    client: TestClient[Any, Any]
    fake: FakeTelegramAPI

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.client.port}"


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """Every expect() waits up to WAIT (Playwright's default is 5 s; the machine may be busy)."""
    expect.set_options(timeout=WAIT * 1000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, seed=18) as api:
        yield api


@pytest.fixture
async def stack(settings: Settings, fake: FakeTelegramAPI, clock: FixedClock) -> AsyncIterator[Stack]:
    """One An Tâm server on 127.0.0.1: the Telegram webhook, the staff app and the outbox worker."""
    services = await open_services(telegram_settings(settings, fake, webhook=True), clock=clock, warn=lambda _m: None)
    client = TestClient(TestServer(make_app(services, maintenance=False), host="127.0.0.1"))
    await client.start_server()
    # Telegram's pace of about one message a second per chat would make each step wait seconds.
    channel_of(client.app, TelegramChannel).pacer = ChatPacer(burst=10_000)
    try:
        yield Stack(services, client, fake)
    finally:
        await client.close()
        await services.close()


async def until(check: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """``check()`` once it is truthy; fails after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


class Person:
    """Someone on Telegram: types into the chat, presses buttons, reads what the bot sent."""

    def __init__(self, stack: Stack, user: int = USER) -> None:
        self.stack, self.user = stack, user

    async def _post(self, update: dict[str, Any]) -> str:
        """Post ``update`` to the webhook; the bot's answers to it, joined."""
        before = len(self.sent())
        assert await post(self.stack.client, update, fake=self.stack.fake) == 200
        return "\n".join(str(call["text"]) for call in self.sent()[before:])

    async def say(self, words: str) -> str:
        return await self._post(self.stack.fake.user_text(self.user, words, enqueue=False))

    async def command(self, command: str) -> str:
        return await self._post(self.stack.fake.user_command(self.user, command, enqueue=False))

    async def press(self, label: str) -> str:
        """Press the button labelled ``label`` on the newest bot message that has one."""
        for message in reversed(bot_messages(self.stack.fake, self.user)):
            rows = message.get("reply_markup", {}).get("inline_keyboard", [])
            data = [b["callback_data"] for row in rows for b in row if b["text"] == label]
            if data:
                return await self._post(self.stack.fake.user_callback(self.user, data[0], message["message_id"], enqueue=False))
        raise AssertionError(f"no button {label!r} in the chat")

    def sent(self) -> list[dict[str, Any]]:
        """Every sendMessage the bot made to this person, oldest first."""
        return [call for call in self.stack.fake.calls_to("sendMessage") if str(call.get("chat_id")) == str(self.user)]

    async def receives(self, starting: str, timeout: float = WAIT) -> dict[str, Any]:
        """The bot's sendMessage whose text starts with ``starting`` (waiting for the outbox)."""
        return await until(
            lambda: next((c for c in self.sent() if str(c["text"]).startswith(starting)), None),
            f"a message to the person starting {starting!r}", timeout,
        )


@dataclass
class Phone:
    """A counsellor's phone-sized browser page, and what it did that the tests check."""

    name: str
    context: BrowserContext
    page: Page
    folder: Path
    outside: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    shots: int = 0

    async def shot(self, what: str) -> None:
        self.shots += 1
        await self.page.screenshot(path=str(self.folder / f"{self.name}-{self.shots:02d}-{what}.png"), full_page=True)

    async def diagnosis(self) -> str:
        """What the page went through, for a failure's message."""
        box = await self.page.locator("#live-error").text_content() if await self.page.locator("#live-error").count() else None
        return f"{self.name}: failed={self.failed} console={self.console_errors} live-error={box!r}"

    def clean(self) -> None:
        assert self.outside == [], f"{self.name}: the page loads nothing from elsewhere"
        assert self.failed == [], f"{self.name}: every request succeeds"
        assert self.console_errors == [], f"{self.name}: no CSP violations or script errors"


async def phone(browser: Browser, base: str, name: str, folder: Path, *, init_script: str | None = None) -> Phone:
    context = await browser.new_context(
        viewport=PHONE, locale="vi-VN", device_scale_factor=2, is_mobile=True, has_touch=True
    )
    if init_script is not None:
        await context.add_init_script(init_script)
    watched = Phone(name, context, await context.new_page(), folder)
    context.on("request", lambda r: None if r.url.startswith(base) else watched.outside.append(r.url))
    watched.page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    watched.page.on("response", lambda r: watched.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    watched.page.on("websocket", lambda ws: watched.sockets.append(ws.url))
    watched.page.set_default_timeout(WAIT * 1000)
    return watched


async def log_in(me: Phone, base: str, username: str, password: str = PASSWORD, *, one_time: bool = False) -> None:
    page = me.page
    await page.goto(base + "/staff/login")
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(password)
    await page.get_by_role("button", name="Đăng nhập").click()
    if one_time:
        await expect(page).to_have_url(base + "/staff/password")
        await page.get_by_label("Mật khẩu dùng một lần").fill(password)
        await page.get_by_label("Mật khẩu mới", exact=True).fill("ca trực sáng thứ hai 2026")
        await page.get_by_label("Nhập lại mật khẩu mới").fill("ca trực sáng thứ hai 2026")
        await page.get_by_role("button", name="Lưu mật khẩu mới").click()
        await page.goto(base + "/staff/")
    await expect(page, "a counsellor's home is the counselling page").to_have_url(base + "/staff/counselling")
    await expect(page.get_by_role("heading", name="Tư vấn trực tuyến", exact=True)).to_be_visible()


async def go_on_duty(me: Phone) -> None:
    await me.page.get_by_role("button", name="Vào trực").click()
    await expect(me.page.locator("#duty-state")).to_have_text("Bạn đang trực. Người trong hàng chờ có thể được bạn nhận.")


async def fits_a_phone(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for button in await page.locator("main button").all():
        if await button.is_visible():
            box = await button.bounding_box()
            assert box is not None and box["height"] >= 44, await button.inner_text()


async def sees_nothing_of(me: Phone, handle: str, words: list[str]) -> None:
    """The page, and what its poll endpoint returns, show nothing of the case ``handle``."""
    shown = await me.page.locator("#desk").inner_text()
    assert f"#{handle}" not in shown and not any(w in shown for w in words), f"{me.name} sees the case"
    polled = await me.page.evaluate(
        "handle => fetch('/staff/counselling/poll?seen=' + handle + ':0').then(r => r.text())", handle
    )
    assert handle not in polled and not any(w in polled for w in words), f"{me.name}'s poll shows the case"


async def cannot_act_on(me: Phone, handle: str) -> None:
    """Claiming, answering or closing the case by its name gets 404, the same as no such case."""
    token = await me.page.locator("#desk").get_attribute("data-token")
    assert token
    for action in ({"type": "claim"}, {"type": "send", "text": "xin chào"}, {"type": "close", "outcome": "other"}):
        response = await me.context.request.post(
            me.page.url.split("/staff/")[0] + "/staff/counselling/act",
            form={"csrf": token, "case": handle, **action}, headers={"Accept": "application/json"},
        )
        assert response.status == 404, (action, response.status)


async def choose_binh_lu(person: Person) -> None:
    await person.press("Dịch vụ HIV/STI và sức khỏe gần bạn")
    assert "Trạm Y tế xã Bình Lư" in await person.say("binh lu")


# --- the tests --------------------------------------------------------------------------------

# Distinctive words the person and the counsellors type; none may be left anywhere at rest.
P_HELLO = "chào chị, em tên Hoa Vexlund, số em 0912345678"
P_HTML = '<img src="/staff/static/x.png" onerror="window.pwned=1"><b>Quorvath</b><script>window.pwned=2</script>'
P_SAFETY = "bị rách bao cao su tối qua ở nhà nghỉ Zimbrel"
P_AFTER = "em sợ lắm, Plokaster"
C_FIRST = "Chào bạn, mình là tư vấn viên. Bạn cứ kể, Trellisk."
C_SECOND = "Mình nhận tiếp từ đồng nghiệp nhé, Gravento."
TYPED = ["Vexlund", "0912345678", "Quorvath", "Zimbrel", "Plokaster", "Trellisk", "Gravento", "rách bao cao su"]


async def test_a_whole_case_between_telegram_and_two_counsellors_on_phones(
    browser: Browser, stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()  # as `antam run` configures logging
    services, fake, base = stack.services, stack.fake, stack.base
    one_time = new_one_time_password()
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A, password=one_time, one_time=True)
    await add_account(services, "tv-hoa", Role.COUNSELLOR, ward=WARD_A)
    await add_account(services, "tv-mai", Role.COUNSELLOR, ward=WARD_B)
    person = Person(stack)

    # The counsellor of another commune is on duty all along.
    mai = await phone(browser, base, "mai", tmp_path)
    await log_in(mai, base, "tv-mai")
    await go_on_duty(mai)

    # Lan: first login with a one-time password, then on duty, the queue empty.
    lan = await phone(browser, base, "lan", tmp_path)
    await log_in(lan, base, "tv-lan", one_time, one_time=True)
    await go_on_duty(lan)
    await expect(lan.page.locator("#queue")).to_contain_text("Không có ai đang chờ.")
    await fits_a_phone(lan.page)
    await lan.shot("on-duty")
    await lan.page.evaluate("window.stillHere = true")  # gone if the page reloads

    # The person opens the chat from the menu; it appears in Lan's queue without a reload.
    await person.command("/start")
    await person.press("Đồng ý")
    await choose_binh_lu(person)
    await person.say("menu")
    notice = await person.press("Nói chuyện với tư vấn viên")
    assert "Tư vấn viên chỉ thấy" in notice and "113" in notice
    opened = await person.press("Bắt đầu trò chuyện")
    assert "Đã mở cuộc trò chuyện" in opened and "Một tư vấn viên đang trực sẽ trả lời bạn sớm" in opened
    waiting = lan.page.locator("#queue li[data-case]")
    await expect(waiting).to_have_count(1)
    handle = await waiting.get_attribute("data-case")
    assert handle is not None and re.fullmatch(r"[A-Z0-9]{4}", handle)
    await expect(waiting).to_contain_text(f"Người #{handle}")
    await expect(waiting).to_contain_text("Xã Bình Lư")
    assert await lan.page.evaluate("window.stillHere") is True, "the queue changed live"
    assert "đã được ẩn" in await person.say(P_HELLO), "told once why the number was hidden (nobody has claimed it yet)"
    await fits_a_phone(lan.page)
    await lan.shot("queue")
    await sees_nothing_of(mai, handle, TYPED)

    # Claim: the person is told; the first message is there, the number masked.
    await waiting.get_by_role("button", name="Nhận").click()
    await expect(lan.page).to_have_url(f"{base}/staff/counselling?case={handle}")
    await expect(lan.page.locator("#chat-title")).to_contain_text(f"Người #{handle}")
    lines = lan.page.locator("#lines li")
    await expect(lines.first).to_have_text(re.compile(r"chào chị, em tên Hoa Vexlund, số em \[đã ẩn số\]"))
    assert "0912345678" not in await lan.page.content()
    await person.receives("Một tư vấn viên đã nhận trò chuyện với bạn")
    told = len(person.sent())
    await cannot_act_on(mai, handle)

    # The person's text appears live (no reload), as text: no element made from it, no script run.
    await lan.page.evaluate("window.stillHere = true")
    await person.say(P_HTML)
    await expect(lines.last).to_have_text(re.compile(re.escape("<b>Quorvath</b>")))
    await expect(lines.last.locator(".text")).to_have_text(P_HTML)
    assert await lan.page.locator("#lines img, #lines b, #lines script").count() == 0
    assert await lan.page.evaluate("window.pwned === undefined && window.stillHere === true")
    assert any("/staff/counselling/ws?csrf=" in url for url in lan.sockets), "live over the WebSocket"

    # The counsellor answers: a protected sendMessage to the person.
    await lan.page.get_by_label("Trả lời").fill(C_FIRST)
    await lan.page.get_by_role("button", name="Gửi").click()
    answer = await person.receives(f"Tư vấn viên: {C_FIRST}")
    assert answer["protect_content"] is True
    assert [call["text"] for call in person.sent()[told:]] == [answer["text"]], "nothing from the other commune"
    await expect(lines.last).to_have_text(re.compile(re.escape(C_FIRST)))
    await expect(lines.last).to_have_class("from-counsellor")
    who = lines.last.locator(".who")
    assert await who.evaluate("e => getComputedStyle(e).textAlign") in ("left", "start"), "not the header's .who"

    # A safety message: the bot answers at once (the 72 hours), the case turns urgent on the page.
    before = len(person.sent())
    assert "72" in await person.say(P_SAFETY)
    assert all(call["protect_content"] is True for call in person.sent()[before:])
    mine = lan.page.locator(f'#mine li[data-case="{handle}"]')
    await expect(mine.locator(".urgent")).to_have_text("Khẩn")
    await expect(lan.page.locator("#chat-title .urgent"), "the open chat's heading too").to_have_text("Khẩn")
    await expect(lan.page.locator("#lines li.from-person").last).to_contain_text("Zimbrel")
    await expect(lan.page.locator("#lines li.from-bot").last).to_be_visible()
    assert await lan.page.evaluate("window.stillHere === true")
    await fits_a_phone(lan.page)
    await lan.shot("chat-urgent")
    await sees_nothing_of(mai, handle, TYPED)

    # During the case, the transcript is in the database only sealed.
    async with services.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM counselling_messages"))).all()
    assert len(rows) >= 5
    dumped = repr(rows)
    raw = b"".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for row in rows for v in row)
    for word in TYPED:
        assert word not in dumped and word.encode() not in raw, word

    # Hand-over to Hoa (same commune, on duty): she sees the transcript, Lan no longer does.
    hoa = await phone(browser, base, "hoa", tmp_path)
    await log_in(hoa, base, "tv-hoa")
    await go_on_duty(hoa)
    await expect(hoa.page.locator("#queue"), "a claimed case is not queued").to_contain_text("Không có ai đang chờ.")
    assert f"#{handle}" not in await hoa.page.locator("#desk").inner_text()
    await lan.page.reload()  # the list of colleagues on duty is made with the page
    await lan.page.get_by_text("Chuyển hoặc kết thúc").click()
    await lan.page.get_by_label("Chuyển cho tư vấn viên đang trực").select_option(label="tv-hoa")
    await lan.shot("hand-over")
    await lan.page.get_by_role("button", name="Chuyển", exact=True).click()
    await expect(lan.page).to_have_url(f"{base}/staff/counselling")
    await expect(lan.page.locator("#chat")).to_have_count(0)
    await expect(lan.page.locator("#mine li")).to_have_count(0)
    await lan.page.goto(f"{base}/staff/counselling?case={handle}")
    await expect(lan.page.locator("#chat")).to_have_count(0)
    await sees_nothing_of(lan, handle, TYPED)
    await lan.shot("after-hand-over")

    mine = hoa.page.locator(f'#mine li[data-case="{handle}"]')
    await expect(mine).to_contain_text(f"Người #{handle}")  # live, over her socket
    await expect(mine.locator(".urgent")).to_be_visible()
    await mine.get_by_role("link", name=f"Người #{handle}").click()
    await expect(hoa.page).to_have_url(f"{base}/staff/counselling?case={handle}")
    shown = hoa.page.locator("#lines")
    for words in ("Vexlund", "<b>Quorvath</b>", C_FIRST, "Zimbrel"):
        await expect(shown).to_contain_text(words)
    assert await hoa.page.locator("#lines img, #lines b, #lines script").count() == 0
    await person.say(P_AFTER)
    await expect(hoa.page.locator("#lines li.from-person").last).to_have_text(re.compile("Plokaster"))
    await hoa.page.get_by_label("Trả lời").fill(C_SECOND)
    await hoa.page.get_by_role("button", name="Gửi").click()
    assert (await person.receives(f"Tư vấn viên: {C_SECOND}"))["protect_content"] is True
    await fits_a_phone(hoa.page)
    await hoa.shot("chat")
    await sees_nothing_of(lan, handle, TYPED)
    await sees_nothing_of(mai, handle, TYPED)

    # Close with an outcome: the person is told, the case leaves every page.
    await hoa.page.get_by_text("Chuyển hoặc kết thúc").click()
    await hoa.page.get_by_label("Kết quả").select_option(label="Hỗ trợ tinh thần")
    await hoa.shot("close")
    await hoa.page.get_by_role("button", name="Kết thúc trò chuyện").click()
    await expect(hoa.page).to_have_url(f"{base}/staff/counselling")
    await expect(hoa.page.locator("#chat")).to_have_count(0)
    await expect(hoa.page.locator("#mine li")).to_have_count(0)
    closed = await person.receives("Tư vấn viên đã kết thúc trò chuyện")
    assert closed["protect_content"] is True
    after = await person.say("cảm ơn chị")
    assert after and "chưa được chuyển" not in after, "the bot answers as usual again"
    await hoa.shot("closed")
    await mai.shot("other-commune")
    for me in (lan, hoa, mai):
        await sees_nothing_of(me, handle, TYPED)
        me.clean()
        await me.context.close()
    assert sorted(tmp_path.glob("*.png")), "screenshots saved"

    # The privacy scan: no typed word, no Telegram user id, in any file, table or log line.
    needles = [str(USER), *TYPED]
    async with services.db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "counselling_cases" in tables and "counselling_messages" in tables
        dump = []
        for table in tables:
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                dump.append(f"{table}: {row!r}")
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        blob = bytes(value)
                        assert not any(n.encode() in blob for n in needles), table
        assert (await conn.execute(text("SELECT count(*) FROM counselling_messages"))).scalar() == 0
    dumped = "\n".join(dump)
    for needle in needles:
        assert needle not in dumped, needle
    data_dir = services.settings.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    if services.db.dialect == "sqlite":
        names = {p.name for p in files}
        assert "antam.db" in names and "antam.db-wal" in names, names
    for path in files:  # the SQLite file, its WAL and anything else
        content = path.read_bytes()
        assert not any(n.encode() in content for n in needles), path.name
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records
    for needle in needles:
        assert needle not in logged, needle


async def test_the_page_falls_back_to_polling_when_websockets_are_blocked(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    """A network that blocks WebSockets: the page polls, shows the person's message within
    seconds, and can claim and send."""
    services, base = stack.services, stack.base
    await add_account(services, "tv-lan", Role.COUNSELLOR, ward=WARD_A)
    person = Person(stack)
    blocked = "window.WebSocket = function () { throw new DOMException('blocked by the network', 'SecurityError'); };"
    lan = await phone(browser, base, "lan-polling", tmp_path, init_script=blocked)
    await log_in(lan, base, "tv-lan")
    await go_on_duty(lan)
    await lan.page.evaluate("window.stillHere = true")

    await person.command("/start")
    await person.press("Đồng ý")
    await choose_binh_lu(person)
    await person.say("menu")
    await person.press("Nói chuyện với tư vấn viên")
    await person.press("Bắt đầu trò chuyện")
    waiting = lan.page.locator("#queue li[data-case]")
    await expect(waiting).to_have_count(1)  # by polling
    handle = await waiting.get_attribute("data-case")
    assert await lan.page.evaluate("window.stillHere") is True
    await waiting.get_by_role("button", name="Nhận").click()
    await expect(lan.page).to_have_url(f"{base}/staff/counselling?case={handle}")
    await person.receives("Một tư vấn viên đã nhận trò chuyện với bạn")

    await lan.page.evaluate("window.stillHere = true")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await person.say("em muốn hỏi về PrEP, Wombeck")
    await expect(lan.page.locator("#lines li.from-person").last).to_have_text(re.compile("Wombeck"), timeout=8_000)
    assert loop.time() - started < 8
    assert await lan.page.evaluate("window.stillHere") is True, "shown without a reload"
    await lan.page.get_by_label("Trả lời").fill("Mình nghe đây, Tarquil.")
    await lan.page.get_by_role("button", name="Gửi").click()
    answer = await person.receives("Tư vấn viên: Mình nghe đây, Tarquil.")
    assert answer["protect_content"] is True
    await expect(lan.page.locator("#lines li.from-counsellor").last).to_have_text(re.compile("Tarquil"), timeout=8_000)
    await lan.shot("polling")

    # The person ends the chat: the polling page leaves it within a few seconds, as a live one does.
    assert "Đã kết thúc trò chuyện" in await person.press("Kết thúc trò chuyện")
    try:
        await expect(lan.page).to_have_url(f"{base}/staff/counselling", timeout=8_000)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{await lan.diagnosis()}") from None
    await expect(lan.page.locator("#chat")).to_have_count(0)
    await expect(lan.page.locator(".cases li[data-case]")).to_have_count(0)
    await lan.shot("ended-by-the-person")
    assert lan.sockets == [], "no WebSocket was opened"
    lan.clean()
    await lan.context.close()
