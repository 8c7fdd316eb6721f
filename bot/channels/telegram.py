"""The Telegram channel on python-telegram-bot 22: Update → Inbound, rendered replies → messages.

Only translation and transport live here: what to answer is the engine's business. Long
polling when no public URL is configured; otherwise a webhook served by An Tâm's own aiohttp
server (PTB's Application built with ``updater(None)``), with the secret token checked in
constant time before the body is read.

Quick exit deletes, in batches of 100, every message id of the private chat that An Tâm
tracked for the person (consenting people: ids only, sealed, 48 h) together with the most
recent ids of the chat, so that the welcome and the notice, sent before anything could be
stored, disappear too. Telegram skips ids that do not exist or are older than 48 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TypeVar

from aiohttp import web
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.channels.common import KeyedLocks, TokenBuckets
from bot.channels.common import split_text as split_paragraphs
from bot.config import Settings
from bot.runtime import Runtime
from handlers.render import RenderedReply
from handlers.types import Inbound, Location, ReplyKind

CHANNEL = "telegram"
WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
MAX_TEXT = 4096
DELETE_BATCH = 100
RECENT_IDS = 200  # how far back quick exit reaches beyond the ids it tracked
SEND_ATTEMPTS = 4
MEDIA_KINDS = ("sticker", "photo", "voice", "audio", "video", "video_note", "document", "animation", "contact")
COMMANDS = ("start", "menu", "thoat", "xoa", "trogiup")

log = logging.getLogger("antam.telegram")
# Opt in to PTB's coming behaviour (read at call time): RetryAfter.retry_after is a timedelta.
os.environ.setdefault("PTB_TIMEDELTA", "1")
T = TypeVar("T")


class ChatPacer:
    """About one message a second per chat, after a short burst (Telegram's private-chat limit)."""

    def __init__(
        self,
        *,
        burst: float = 3.0,
        per_second: float = 1.0,
        chats: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.buckets: TokenBuckets[int] = TokenBuckets(burst, per_second, keys=chats, clock=clock)
        self.sleep = sleep

    async def wait(self, chat_id: int) -> None:
        while (delay := self.buckets.take(chat_id)) > 0:
            await self.sleep(delay)


def to_inbound(update: Update, bot_username: str | None) -> Inbound | None:
    """Translate an update; None for what is ignored on purpose (edits, service messages…)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or update.edited_message is not None:
        return None
    common = {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "update_id": str(update.update_id),
        "locale_hint": user.language_code,
        "private": chat.type == chat.PRIVATE,
    }
    if update.callback_query is not None:
        return Inbound(payload=update.callback_query.data or "", **common)  # type: ignore[arg-type]
    message = update.message
    if message is None:
        return None
    if not common["private"]:
        # In groups only a command or a mention gets the "private chats only" answer.
        text = message.text or ""
        addressed = text.startswith("/") or (bot_username is not None and f"@{bot_username}" in text)
        return Inbound(text=text, **common) if addressed else None  # type: ignore[arg-type]
    if message.location is not None:
        location = Location(message.location.latitude, message.location.longitude)
        return Inbound(location=location, **common)  # type: ignore[arg-type]
    if message.text is not None:
        return Inbound(text=message.text, **common)  # type: ignore[arg-type]
    kind = next((k for k in MEDIA_KINDS if getattr(message, k, None)), "other")
    return Inbound(media=kind, **common)  # type: ignore[arg-type]


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long text into pieces Telegram accepts."""
    return split_paragraphs(text, limit)


def keyboard(reply: RenderedReply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.payload)] for b in reply.buttons])


class TelegramChannel:
    """The Telegram adapter: one PTB Application, fed by polling or by the webhook route."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.runtime = runtime
        self.settings = settings
        self.webhook_mode = settings.public_url is not None
        builder = (
            ApplicationBuilder()
            .token(settings.telegram_bot_token.get_secret_value())
            .base_url(settings.telegram_api_base_url)
            .rate_limiter(AIORateLimiter(max_retries=1))
            .concurrent_updates(64)
        )
        if self.webhook_mode:
            builder = builder.updater(None)
        self.application: Application = builder.build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self.pacer = ChatPacer()
        self.locks: KeyedLocks[int] = KeyedLocks()
        self.secret = self._webhook_secret()

    def _webhook_secret(self) -> str:
        if self.settings.telegram_webhook_secret is not None:
            return self.settings.telegram_webhook_secret.get_secret_value()
        # Same for every worker sharing the master key, and never stored anywhere.
        pepper = self.runtime.services.secrets.pepper
        return hmac.new(pepper, b"telegram-webhook-secret", hashlib.sha256).hexdigest()

    async def start(self) -> None:
        await self.application.initialize()
        await self._register_commands()
        if self.webhook_mode:
            assert self.settings.public_url is not None
            await self.application.bot.set_webhook(
                url=self.settings.public_url + WEBHOOK_PATH,
                secret_token=self.secret,
                allowed_updates=ALLOWED_UPDATES,
            )
        await self.application.start()
        if not self.webhook_mode:
            assert self.application.updater is not None
            await self.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        log.info("telegram channel started (%s)", "webhook" if self.webhook_mode else "long polling")

    async def stop(self) -> None:
        """Stop taking updates, finish those in flight, then release the client."""
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        log.info("telegram channel stopped")

    async def _register_commands(self) -> None:
        catalogs = self.runtime.services.renderer.catalogs
        for language in (None, "vi", "en"):
            locale = language or "vi"
            commands = [BotCommand(name, catalogs.text(locale, f"command.{name}")) for name in COMMANDS]
            await self.application.bot.set_my_commands(commands, language_code=language)

    async def webhook(self, request: web.Request) -> web.Response:
        """POST /webhooks/telegram: secret first, then the body; answered once processed."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(data, self.application.bot)
        except Exception:  # PTB's parser raises AttributeError and others on odd nested shapes
            return web.Response(status=400, text="malformed update")
        await self.application.process_update(update)
        return web.Response(text="ok")

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is not None:
            with contextlib.suppress(TelegramError):
                await query.answer()
        inbound = to_inbound(update, self.application.bot.username)
        chat = update.effective_chat
        if inbound is None or chat is None:
            return
        async with self.locks.hold(chat.id):
            replies = await self.runtime.answer(inbound)
            if not replies:
                return  # a redelivered update
            seen = [m.message_id for m in (update.message,) if m is not None]
            if query is not None and query.message is not None:
                seen.append(query.message.message_id)
            sent: list[int] = []
            for reply in replies:
                if reply.kind is ReplyKind.QUICK_EXIT:
                    await self._quick_exit(chat.id, inbound, newest=max(seen + sent, default=0))
                    await self._send(chat.id, reply)
                    return
                sent.extend(await self._send(chat.id, reply))
            if inbound.private:
                await self.runtime.remember_messages(inbound, seen + sent)

    async def _quick_exit(self, chat_id: int, inbound: Inbound, *, newest: int) -> None:
        tracked = await self.runtime.take_messages(inbound) or []
        recent = range(max(1, newest - RECENT_IDS), newest + 1) if newest else range(0)
        ids = sorted(set(tracked) | set(recent))
        for start in range(0, len(ids), DELETE_BATCH):
            await self._call(partial(self.application.bot.delete_messages, chat_id, ids[start : start + DELETE_BATCH]))

    async def _send(self, chat_id: int, reply: RenderedReply) -> list[int]:
        pieces = split_text(reply.text)
        sent: list[int] = []
        for index, piece in enumerate(pieces):
            markup = keyboard(reply) if index == len(pieces) - 1 else None
            await self.pacer.wait(chat_id)
            message = await self._call(
                partial(
                    self.application.bot.send_message,
                    chat_id,
                    piece,
                    reply_markup=markup,
                    protect_content=reply.protect,
                )
            )
            if message is None:
                break
            sent.append(message.message_id)
        return sent

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T | None:
        """Call the Bot API with retries; transport trouble is logged, never raised."""
        delay = 0.5
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                return await make()
            except RetryAfter as exc:
                wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else float(exc.retry_after)
                log.warning("telegram asked to slow down for %.0f s", wait)
                await asyncio.sleep(min(wait, 30.0))
            except Forbidden:
                log.info("telegram: the person blocked the bot or left; message not sent")
                return None
            except BadRequest as exc:
                log.warning("telegram rejected a request: %s", type(exc).__name__)
                return None
            except NetworkError as exc:
                if attempt == SEND_ATTEMPTS:
                    log.error("telegram unreachable after %d attempts: %s", attempt, type(exc).__name__)
                    return None
                await asyncio.sleep(delay)
                delay *= 2
        return None

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # The update and the error text may carry personal data: log only the error's type.
        log.error("telegram handler failed: %s", type(context.error).__name__)

