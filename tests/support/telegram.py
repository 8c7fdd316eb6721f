"""The Telegram side of tests: the test bot's token and people, settings pointing at a fake
Bot API, posting an update to the webhook and reading the chat back (tests/test_telegram.py and
the fault tests use them)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.app import channel_of
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel
from bot.config import Settings
from tests.fakes.telegram_api import FakeTelegramAPI

TOKEN = "123456:TEST-token_abc"
PUBLIC_URL = "https://antam.example.org"
USER = 7_700_123_456
OTHER = 7_700_654_321


def telegram_settings(settings: Settings, fake: FakeTelegramAPI, *, webhook: bool) -> Settings:
    return settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_base_url": fake.base_url,
            "public_url": PUBLIC_URL if webhook else None,
        }
    )


async def post(
    client: TestClient[Any, Any], update: dict[str, Any], secret: str | None = None, *, fake: FakeTelegramAPI | None = None
) -> int:
    """POST an update to the webhook; with ``fake``, what the answer asks for is carried out."""
    channel: TelegramChannel = channel_of(client.app, TelegramChannel)
    headers = {SECRET_HEADER: channel.secret if secret is None else secret}
    response = await client.post(WEBHOOK_PATH, json=update, headers=headers)
    if fake is not None:
        await fake.webhook_answer(response.status, response.content_type, await response.read())
    return response.status


def bot_messages(fake: FakeTelegramAPI, chat: int) -> list[dict[str, Any]]:
    """The bot's messages still present in the chat, oldest first."""
    found = [fake.message(chat, i) for i in range(1000, 1600)]
    return [m for m in found if m is not None and m["from"]["is_bot"]]


def all_messages(fake: FakeTelegramAPI, chat: int) -> list[dict[str, Any]]:
    return [m for m in (fake.message(chat, i) for i in range(1000, 1600)) if m is not None]


def buttons(message: dict[str, Any]) -> list[str]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]
