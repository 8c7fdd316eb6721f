"""Drivers for the channel contract suite: a person talking to An Tâm through one channel.

Each driver runs the real adapter over its existing fake or socket — the fake Bot API, the
fake Zalo Open API on 127.0.0.1, the web chat's WebSocket, the console's own parsing — and
reports what the person sees as ``Seen`` messages. A new channel passes the contract by adding
a driver here (and its name to ``DRIVERS``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.app import channel_of, make_app
from bot.bootstrap import Services, open_services
from bot.channels.base import Channel
from bot.channels.console import ConsoleChannel, parse_json_line
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, ChatPacer, TelegramChannel
from bot.channels.webchat import WebChat
from bot.channels.zalo import WEBHOOK_PATH as ZALO_PATH
from bot.channels.zalo import ZaloChannel
from bot.clock import FixedClock
from bot.config import Settings
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.zalo_api import FakeZaloAPI

TELEGRAM_USER = 7_700_123_456
ZALO_USER = "8412345678901234567"
WEB_SESSION = "AbCdEfGhIjKlMnOpQrStUvWx01"
ZALO_APP_ID = "1835482915736150291"
ZALO_OA_SECRET = "oa-secret-Kq2vT9xWm4"
ZALO_APP_SECRET = "app-secret-Vb7nR2sLq5"


@dataclass(frozen=True)
class Seen:
    """One message as the person sees it: its text, its buttons' payloads, and whether it says
    "clear this screen" (the web page and the terminal do it themselves)."""

    text: str
    payloads: tuple[str, ...] = ()
    quick_exit: bool = False


class Driver(Protocol):
    name: str
    user: str  # the platform id, as the channel gives it to the runtime
    services: Services
    channel: Channel
    redelivers: bool  # whether the platform ever delivers one event twice
    clock: FixedClock  # the time of the server and of the fake platform

    async def say(self, text: str) -> list[Seen]: ...
    async def press(self, payload: str) -> list[Seen]: ...
    async def again(self) -> list[Seen]: ...  # the last event, delivered once more
    async def screen(self) -> list[str]: ...  # what is still on the person's device
    async def pushed(self) -> list[Seen]: ...  # messages the bot started, received since last asked
    async def stop(self) -> None: ...  # the server (and its outbox worker) stops; the database stays
    async def start(self) -> None: ...  # a new server process on the same database (a restart)


@dataclass
class TelegramDriver:
    services: Services
    client: TestClient[Any, Any]
    fake: FakeTelegramAPI
    settings: Settings
    clock: FixedClock
    name: str = "telegram"
    user: str = str(TELEGRAM_USER)
    redelivers: bool = True
    last: dict[str, Any] = field(default_factory=dict)
    seen_pushed: int = 0

    @property
    def channel(self) -> TelegramChannel:
        return channel_of(self.client.app, TelegramChannel)

    async def _post(self, update: dict[str, Any]) -> list[Seen]:
        before = len(self.fake.sent_messages(TELEGRAM_USER))
        self.last = update
        headers = {SECRET_HEADER: self.channel.secret}
        response = await self.client.post(WEBHOOK_PATH, json=update, headers=headers)
        await self.fake.webhook_answer(response.status, response.content_type, await response.read())
        assert response.status == 200
        return [self._seen(m) for m in self.fake.sent_messages(TELEGRAM_USER)[before:]]

    @staticmethod
    def _seen(message: dict[str, Any]) -> Seen:
        rows = message.get("reply_markup", {}).get("inline_keyboard", [])
        return Seen(message.get("text", ""), tuple(b["callback_data"] for row in rows for b in row))

    async def say(self, text: str) -> list[Seen]:
        if text.startswith("/"):
            return await self._post(self.fake.user_command(TELEGRAM_USER, text, enqueue=False))
        return await self._post(self.fake.user_text(TELEGRAM_USER, text, enqueue=False))

    async def press(self, payload: str) -> list[Seen]:
        chat = [self.fake.message(TELEGRAM_USER, i) for i in range(1000, 1600)]
        message = next(m for m in reversed(chat) if m is not None and payload in self._seen(m).payloads)
        return await self._post(self.fake.user_callback(TELEGRAM_USER, payload, message["message_id"], enqueue=False))

    async def again(self) -> list[Seen]:
        return await self._post(self.last)

    async def screen(self) -> list[str]:
        chat = [self.fake.message(TELEGRAM_USER, i) for i in range(1000, 1600)]
        return [m.get("text", "") for m in chat if m is not None]

    async def pushed(self) -> list[Seen]:
        sent = self.fake.sent_messages(TELEGRAM_USER)
        new, self.seen_pushed = sent[self.seen_pushed :], len(sent)
        return [self._seen(m) for m in new]

    async def stop(self) -> None:
        await stop_server(self.services, self.client)

    async def start(self) -> None:
        self.services, self.client = await start_server(self.settings, self.clock, (self.name,))
        # Telegram's one-message-a-second pace per chat is tested on its own.
        self.channel.pacer = ChatPacer(burst=10_000)


@dataclass
class ZaloDriver:
    services: Services
    client: TestClient[Any, Any]
    fake: FakeZaloAPI
    settings: Settings
    clock: FixedClock
    name: str = "zalo"
    user: str = ZALO_USER
    redelivers: bool = True
    last: dict[str, Any] = field(default_factory=dict)
    seen_pushed: int = 0

    @property
    def channel(self) -> ZaloChannel:
        return channel_of(self.client.app, ZaloChannel)

    async def _post(self, event: dict[str, Any]) -> list[Seen]:
        before = len(self.fake.sent_to(ZALO_USER))
        self.last = event
        body, headers = self.fake.signed(event)
        response = await self.client.post(ZALO_PATH, data=body, headers=headers)
        await self.channel.drain()
        assert response.status == 200
        return [self._seen(m) for m in self.fake.sent_to(ZALO_USER)[before:]]

    @staticmethod
    def _seen(message: dict[str, Any]) -> Seen:
        return Seen(message["text"], tuple(p.removeprefix("#") for p in FakeZaloAPI.buttons(message)))

    async def say(self, text: str) -> list[Seen]:
        return await self._post(self.fake.follow(ZALO_USER) if text == "/start" else self.fake.text(ZALO_USER, text))

    async def press(self, payload: str) -> list[Seen]:
        return await self._post(self.fake.press(ZALO_USER, "#" + payload))

    async def again(self) -> list[Seen]:
        return await self._post(self.last)

    async def screen(self) -> list[str]:
        return [m["text"] for m in self.fake.sent_to(ZALO_USER)]  # Zalo deletes nothing

    async def pushed(self) -> list[Seen]:
        sent = self.fake.sent_to(ZALO_USER)
        new, self.seen_pushed = sent[self.seen_pushed :], len(sent)
        return [self._seen(m) for m in new]

    async def stop(self) -> None:
        await stop_server(self.services, self.client)

    async def start(self) -> None:
        self.services, self.client = await start_server(self.settings, self.clock, (self.name,))
        self.channel.api.retry_delay = 0.01


@dataclass
class WebDriver:
    services: Services
    client: TestClient[Any, Any]
    ws: Any
    settings: Settings
    clock: FixedClock
    name: str = "web"
    user: str = WEB_SESSION
    redelivers: bool = True  # the page sends a message again when its answer was lost
    last: dict[str, Any] = field(default_factory=dict)
    shown: list[Seen] = field(default_factory=list)
    counter: int = 0
    # Messages the bot started that arrived while an answer was awaited (they carry an "id").
    early: list[Seen] = field(default_factory=list)

    @property
    def channel(self) -> WebChat:
        return channel_of(self.client.app, WebChat)

    async def _send(self, message: dict[str, Any]) -> list[Seen]:
        self.last = message
        await self.ws.send_json(message)
        answer = await self.ws.receive_json(timeout=30)
        while "id" in answer:  # a message the outbox pushed, not the answer
            self.early.extend(self._replies(answer))
            answer = await self.ws.receive_json(timeout=30)
        seen = [
            Seen(r["text"], tuple(b["payload"] for b in r["buttons"]), bool(r.get("quick_exit")))
            for r in answer["replies"]
        ]
        self.shown = seen if any(s.quick_exit for s in seen) else self.shown + seen
        return seen

    def _message(self, **content: Any) -> dict[str, Any]:
        self.counter += 1
        return {"session": WEB_SESSION, "id": f"m{self.counter:07d}", **content}

    async def say(self, text: str) -> list[Seen]:
        return await self._send(self._message(text=text))

    async def press(self, payload: str) -> list[Seen]:
        return await self._send(self._message(payload=payload))

    async def again(self) -> list[Seen]:
        return await self._send(self.last)

    async def screen(self) -> list[str]:
        # The page clears itself on a quick-exit reply (chat.js), keeping only that line.
        return [s.text for s in (self.shown[-1:] if self.shown and self.shown[-1].quick_exit else self.shown)]

    @staticmethod
    def _replies(message: dict[str, Any]) -> list[Seen]:
        return [Seen(r["text"], tuple(b["payload"] for b in r["buttons"])) for r in message["replies"]]

    async def pushed(self) -> list[Seen]:
        found, self.early = self.early, []
        with contextlib.suppress(TimeoutError):
            while True:
                found.extend(self._replies(await self.ws.receive_json(timeout=0.5)))
        return found

    async def stop(self) -> None:
        await self.ws.close()
        await stop_server(self.services, self.client)

    async def start(self) -> None:
        """The server comes back and the page connects again (it speaks only when the person does)."""
        self.services, self.client = await start_server(self.settings, self.clock, (self.name,))
        self.ws = await open_page(self.client)


@dataclass
class ConsoleDriver:
    services: Services
    runtime: Runtime
    settings: Settings
    clock: FixedClock
    name: str = "console"
    user: str = "console-person"
    redelivers: bool = False  # a terminal never sends a line twice
    shown: list[Seen] = field(default_factory=list)

    @property
    def channel(self) -> ConsoleChannel:
        return ConsoleChannel(self.runtime)

    async def _line(self, line: str) -> list[Seen]:
        inbound = parse_json_line(line, self.user, 1)
        assert not isinstance(inbound, str), inbound
        replies = self.channel.fit(await self.runtime.answer(inbound))
        seen = [Seen(r.text, tuple(b.payload for b in r.buttons), bool(r.to_json().get("quick_exit"))) for r in replies]
        self.shown = seen if any(s.quick_exit for s in seen) else self.shown + seen
        return seen

    async def say(self, text: str) -> list[Seen]:
        return await self._line(text)

    async def press(self, payload: str) -> list[Seen]:
        return await self._line(f"#button {payload}")

    async def again(self) -> list[Seen]:
        raise AssertionError("a terminal never redelivers")

    async def screen(self) -> list[str]:
        return [s.text for s in (self.shown[-1:] if self.shown and self.shown[-1].quick_exit else self.shown)]

    async def pushed(self) -> list[Seen]:
        return []

    async def stop(self) -> None:
        await self.services.close()

    async def start(self) -> None:
        self.services = await open_services(self.settings, clock=self.clock, warn=lambda _m: None)
        self.runtime = Runtime(self.services)


DRIVERS = ("telegram", "zalo", "web", "console")


async def start_server(
    settings: Settings, clock: FixedClock, channels: tuple[str, ...]
) -> tuple[Services, TestClient[Any, Any]]:
    """One server process: its own services (pool, key ring) over the database of ``settings``."""
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    client = TestClient(TestServer(make_app(services, maintenance=False, channels=channels), host="127.0.0.1"))
    try:
        await client.start_server()
    except BaseException:
        await services.close()
        raise
    return services, client


async def stop_server(services: Services, client: TestClient[Any, Any]) -> None:
    await client.close()  # the outbox worker stops with the server's cleanup contexts
    await services.close()


async def open_page(client: TestClient[Any, Any]) -> Any:
    url = client.make_url("/")
    return await client.ws_connect("/chat/ws", origin=f"{url.scheme}://{url.host}:{url.port}")


@contextlib.asynccontextmanager
async def open_driver(name: str, settings: Settings, clock: FixedClock) -> AsyncIterator[Driver]:
    """The driver ``name``, its fake platform and server running; all stopped on leaving."""
    driver: TelegramDriver | ZaloDriver | WebDriver | ConsoleDriver
    async with contextlib.AsyncExitStack() as stack:
        if name == "telegram":
            telegram = await stack.enter_async_context(FakeTelegramAPI(token="123456:TEST-token_abc", seed=1))
            configured = settings.model_copy(
                update={
                    "telegram_bot_token": SecretStr("123456:TEST-token_abc"),
                    "telegram_api_base_url": telegram.base_url,
                    "public_url": "https://antam.example.org",
                }
            )
            services, client = await start_server(configured, clock, (name,))
            driver = TelegramDriver(services, client, telegram, configured, clock)
            driver.channel.pacer = ChatPacer(burst=10_000)  # the pace per chat is tested on its own
        elif name == "zalo":
            zalo = FakeZaloAPI(
                app_id=ZALO_APP_ID,
                oa_secret_key=ZALO_OA_SECRET,
                app_secret_key=ZALO_APP_SECRET,
                access_token="zalo-access-0-INITIALqQ7hV3",
                refresh_token="zalo-refresh-0-INITIALpZ4kL8",
                clock=lambda: clock.now().timestamp(),
            )
            await stack.enter_async_context(zalo)
            configured = settings.model_copy(
                update={
                    "zalo_app_id": ZALO_APP_ID,
                    "zalo_oa_secret_key": SecretStr(ZALO_OA_SECRET),
                    "zalo_app_secret_key": SecretStr(ZALO_APP_SECRET),
                    "zalo_access_token": SecretStr("zalo-access-0-INITIALqQ7hV3"),
                    "zalo_refresh_token": SecretStr("zalo-refresh-0-INITIALpZ4kL8"),
                    "zalo_api_base_url": zalo.base_url,
                    "zalo_oauth_base_url": zalo.base_url,
                }
            )
            services, client = await start_server(configured, clock, (name,))
            driver = ZaloDriver(services, client, zalo, configured, clock)
            driver.channel.api.retry_delay = 0.01
        elif name == "web":
            services, client = await start_server(settings, clock, (name,))
            try:
                ws = await open_page(client)
            except BaseException:
                await stop_server(services, client)
                raise
            driver = WebDriver(services, client, ws, settings, clock)
        else:
            services = await open_services(settings, clock=clock, warn=lambda _m: None)
            driver = ConsoleDriver(services, Runtime(services), settings, clock)
        try:
            yield driver
        finally:
            await driver.stop()


def as_json(seen: list[Seen]) -> str:
    return json.dumps([s.text for s in seen], ensure_ascii=False)
