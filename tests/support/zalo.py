"""The Zalo side of tests: the test OA's keys and people, settings pointing at a fake Zalo
API, and one An Tâm worker serving the Zalo webhook (tests/test_zalo.py and the fault tests use
them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.bootstrap import Services, open_services
from bot.channels.zalo import WEBHOOK_PATH, ZaloChannel
from bot.clock import FixedClock
from bot.config import Settings
from bot.runtime import Runtime
from tests.fakes.zalo_api import FakeZaloAPI

APP_ID = "1835482915736150291"
OA_SECRET = "oa-secret-Kq2vT9xWm4"
APP_SECRET = "app-secret-Vb7nR2sLq5"
ACCESS = "zalo-access-0-INITIALqQ7hV3"
REFRESH = "zalo-refresh-0-INITIALpZ4kL8"
USER = "8412345678901234567"
OTHER = "8419876543210987654"


def zalo_settings(settings: Settings, fake: FakeZaloAPI) -> Settings:
    return settings.model_copy(
        update={
            "zalo_app_id": APP_ID,
            "zalo_oa_secret_key": SecretStr(OA_SECRET),
            "zalo_access_token": SecretStr(ACCESS),
            "zalo_refresh_token": SecretStr(REFRESH),
            "zalo_app_secret_key": SecretStr(APP_SECRET),
            "zalo_api_base_url": fake.base_url,
        }
    )


def zalo_app(channel: ZaloChannel) -> web.Application:
    """The route and lifecycle as bot/app.py wires them."""
    app = web.Application(client_max_size=256 * 1024)
    app.router.add_post(WEBHOOK_PATH, channel.webhook)

    async def run(_app: web.Application) -> AsyncIterator[None]:
        await channel.start()
        yield
        await channel.stop()

    app.cleanup_ctx.append(run)
    return app


@dataclass
class Worker:
    """One An Tâm process: its server, its Zalo channel and its services."""

    client: TestClient[Any, Any]
    channel: ZaloChannel
    services: Services
    fake: FakeZaloAPI

    async def post(self, event: dict[str, Any], *, secret: str | None = None) -> int:
        """POST a signed event and wait until the bot has handled it."""
        body, headers = self.fake.signed(event, secret=secret)
        response = await self.client.post(WEBHOOK_PATH, data=body, headers=headers)
        await self.channel.drain()
        return response.status

    async def say(self, user: str, text: str) -> list[dict[str, Any]]:
        """Type a text; return the messages the bot sent in answer."""
        before = len(self.fake.sent_to(user))
        assert await self.post(self.fake.text(user, text)) == 200
        return self.fake.sent_to(user)[before:]

    async def press(self, user: str, payload: str) -> list[dict[str, Any]]:
        """Press the button with ``payload`` on the newest message that has it."""
        wanted = "#" + payload
        assert any(wanted in FakeZaloAPI.buttons(m) for m in self.fake.sent_to(user)), f"no button {payload}"
        before = len(self.fake.sent_to(user))
        assert await self.post(self.fake.press(user, wanted)) == 200
        return self.fake.sent_to(user)[before:]


async def start_worker(settings: Settings, fake: FakeZaloAPI, clock: FixedClock) -> Worker:
    services = await open_services(zalo_settings(settings, fake), clock=clock, warn=lambda _m: None)
    channel = ZaloChannel(Runtime(services), services.settings, oauth_base_url=fake.base_url)
    channel.api.retry_delay = 0.01
    client = TestClient(TestServer(zalo_app(channel), host="127.0.0.1"))
    await client.start_server()
    return Worker(client, channel, services, fake)


async def stop_worker(worker: Worker) -> None:
    await worker.client.close()
    await worker.services.close()


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages)


def all_buttons(messages: list[dict[str, Any]]) -> list[str]:
    return [payload for m in messages for payload in FakeZaloAPI.buttons(m)]
