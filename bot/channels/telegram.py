"""The Telegram channel on python-telegram-bot 22: Update → Inbound, rendered replies → messages.

Only translation and transport live here: what to answer is the engine's business. Long
polling when no public URL is configured; otherwise a webhook served by An Tâm's own aiohttp
server (PTB's Application built with ``updater(None)``), with the secret token checked in
constant time before the body is read.

Quick exit first sends its one neutral line, then deletes, newest first and 100 at a time,
every id of the private chat below it, down to BEFORE_CONSENT ids below the oldest id noted for
the person (consenting people: the ids of their messages and pressed buttons, sealed with the
update's own write, kept 48 h), and at least the last RECENT_IDS, so that the welcome and the
notice, sent before anything could be stored, go too. A private chat numbers both sides'
messages in one sequence, so the bot's replies in between are covered without noting them.
Telegram skips ids that do not exist or are older than 48 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from telegram import BotCommand, CallbackQuery, Chat, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.channels.base import Channel, ChannelBase, Delivery, Sent
from bot.channels.bounded_json import loads
from bot.channels.common import Pacer, coordinate
from bot.channels.registry import TELEGRAM, ServerOptions
from bot.config import Settings
from bot.runtime import Runtime
from handlers.render import RenderedReply
from handlers.types import Inbound, Location, ReplyKind

CHANNEL = TELEGRAM.name
WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
MAX_BODY = 256 * 1024  # the server's own request limit
DELETE_BATCH = 100
RECENT_IDS = 200  # how far back quick exit reaches for someone with no ids noted
BEFORE_CONSENT = 50  # ids below the oldest noted one: what was said before the notice was accepted
REPLY_MARGIN = 20  # ids beyond the newest known one that quick exit deletes when its line fails
MAX_DELETED = 3000  # at most this many ids (30 calls): 48 hours of even a busy chat
SEND_ATTEMPTS = 4
MEDIA_KINDS = ("sticker", "photo", "voice", "audio", "video", "video_note", "document", "animation", "contact")
COMMANDS = ("start", "menu", "thoat", "xoa", "trogiup")

log = logging.getLogger("antam.telegram")
# Opt in to PTB's coming behaviour (read at call time): RetryAfter.retry_after is a timedelta.
os.environ.setdefault("PTB_TIMEDELTA", "1")
T = TypeVar("T")


# About one message a second per chat, after a short burst (Telegram's private-chat limit).
ChatPacer = Pacer

def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def _well_formed_message(message: object) -> bool:
    if message is None:
        return True
    if not isinstance(message, Message) or not _integer(message.message_id) or not _optional_text(message.text):
        return False
    place = message.location
    return place is None or (coordinate(place.latitude, 90) is not None and coordinate(place.longitude, 180) is not None)


def well_formed(update: Update) -> bool:
    """Whether every field the adapter reads has the type the Bot API documents.

    PTB's de_json takes values as they come (a text that is a number, an id that is a string),
    so an update whose secret was right can still carry what the engine must never see.
    """
    try:
        user, chat, query = update.effective_user, update.effective_chat, update.callback_query
        if not _integer(update.update_id):
            return False
        if user is not None and not (
            isinstance(user, User) and _integer(user.id) and _optional_text(user.language_code)
        ):
            return False
        if chat is not None and not (isinstance(chat, Chat) and _integer(chat.id) and isinstance(chat.type, str)):
            return False
        if query is not None:
            pressed = query.message
            if not (isinstance(query, CallbackQuery) and isinstance(query.id, str) and _optional_text(query.data)):
                return False
            if pressed is not None and not _integer(pressed.message_id):
                return False
        return _well_formed_message(update.message) and _well_formed_message(update.edited_message)
    except Exception:  # an attribute that is not what PTB expects: not well formed either
        return False


def to_inbound(update: Update, bot_username: str | None) -> Inbound | None:
    """Translate an update; None for what is ignored on purpose (edits, service messages…)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or update.edited_message is not None:
        return None
    common: dict[str, Any] = {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "update_id": str(update.update_id),
        "locale_hint": user.language_code,
        "private": chat.type == chat.PRIVATE,
    }
    if update.callback_query is not None:
        pressed = update.callback_query.message
        return Inbound(
            payload=update.callback_query.data or "",
            message_id=pressed.message_id if pressed is not None else None,
            **common,
        )
    message = update.message
    if message is None:
        return None
    common["message_id"] = message.message_id
    if not common["private"]:
        # In groups only a command or a mention gets the "private chats only" answer.
        text = message.text or ""
        addressed = text.startswith("/") or (bot_username is not None and f"@{bot_username}" in text)
        return Inbound(text=text, **common) if addressed else None
    if message.location is not None:
        location = Location(message.location.latitude, message.location.longitude)
        return Inbound(location=location, **common)
    if message.text is not None:
        return Inbound(text=message.text, **common)
    kind = next((k for k in MEDIA_KINDS if getattr(message, k, None)), "other")
    return Inbound(media=kind, **common)


def keyboard(reply: RenderedReply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.payload)] for b in reply.buttons])


class TelegramChannel(ChannelBase):
    """The Telegram adapter: one PTB Application, fed by polling or by the webhook route."""

    name = CHANNEL
    capabilities = TELEGRAM.capabilities

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        super().__init__(runtime)
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
        self.secret = self._webhook_secret()

    def _webhook_secret(self) -> str:
        if self.settings.telegram_webhook_secret is not None:
            return self.settings.telegram_webhook_secret.get_secret_value()
        # Same for every worker sharing the master key, and never stored anywhere.
        pepper = self.runtime.services.secrets.pepper
        return hmac.new(pepper, b"telegram-webhook-secret", hashlib.sha256).hexdigest()

    def add_routes(self, app: web.Application) -> None:
        if self.webhook_mode:
            app.router.add_post(WEBHOOK_PATH, self.webhook)

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
        return await self.receive(await request.read())

    async def receive(self, body: bytes) -> web.Response:
        """Handle one webhook body whose secret was checked; the response for Telegram.

        A button press is answered with answerCallbackQuery in the response body.
        """
        try:
            data = loads(body, max_bytes=MAX_BODY)
            if not isinstance(data, dict) or not _integer(data.get("update_id")):
                raise ValueError("not an update")
        except ValueError:
            return web.Response(status=400, text="malformed update")
        try:
            update = Update.de_json(data, self.application.bot)
            usable = well_formed(update)
        except Exception:  # PTB's parser raises TypeError, AttributeError… on odd nested shapes
            usable = False
        if not usable:
            # An authenticated update: 200, or Telegram would deliver it again and again.
            log.warning("telegram: an update with fields of the wrong type was dropped")
            return web.Response(text="ok")
        await self.application.process_update(update)
        if update.callback_query is not None:
            # Telegram carries out one Bot API call given in the webhook's answer: the button's
            # spinner stops with no request of our own (in polling mode _on_update calls it).
            return web.json_response({"method": "answerCallbackQuery", "callback_query_id": update.callback_query.id})
        return web.Response(text="ok")

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not well_formed(update):  # polling: the webhook route has checked already
            log.warning("telegram: an update with fields of the wrong type was dropped")
            return
        query = update.callback_query
        # Polling: stop the button's spinner while the answer is worked out, not before. (With a
        # webhook the route's own answer does it.)
        answering = None
        if query is not None and not self.webhook_mode:
            answering = asyncio.ensure_future(self._answer_query(query))
        try:
            inbound = to_inbound(update, self.application.bot.username)
            chat = update.effective_chat
            if inbound is None or chat is None:
                return
            async with self.locks.hold(str(chat.id)):
                for reply in self.fit(await self.runtime.answer(inbound)):
                    if reply.kind is ReplyKind.QUICK_EXIT:
                        await self._quick_exit(chat.id, inbound, reply)
                        return
                    await self._send(chat.id, reply)
        finally:
            if answering is not None:
                await answering

    @staticmethod
    async def _answer_query(query: CallbackQuery) -> None:
        with contextlib.suppress(TelegramError):
            await query.answer()

    async def _quick_exit(self, chat_id: int, inbound: Inbound, reply: RenderedReply) -> None:
        """Leave one neutral line, then delete everything above it, newest first.

        A private chat numbers the person's and the bot's messages in one sequence, so the
        chat since the oldest id noted for the person (or the last RECENT_IDS ids, for someone
        with nothing stored) is the range below the neutral line's own id.
        """
        tracked = await self.runtime.take_messages(inbound) or []
        sent = await self._send(chat_id, reply)
        if sent is not None:
            newest = sent - 1
        else:  # the line could not be sent: reach past the replies we know of
            newest = max([*tracked, inbound.message_id or 0]) + REPLY_MARGIN
        below = min(tracked) - BEFORE_CONSENT if tracked else newest
        oldest = max(1, min(below, newest - RECENT_IDS), newest - MAX_DELETED + 1)
        ids = list(range(newest, oldest - 1, -1))
        for start in range(0, len(ids), DELETE_BATCH):
            batch = sorted(ids[start : start + DELETE_BATCH])
            await self._call(partial(self.application.bot.delete_messages, chat_id, batch))

    async def _send(self, chat_id: int, reply: RenderedReply, *, attempts: int = SEND_ATTEMPTS) -> int | None:
        """Send one fitted reply; its message id, or None when it could not be sent."""
        return (await self._message(chat_id, reply, attempts))[0]

    async def deliver(self, address: str, reply: RenderedReply) -> Sent:
        if not address.lstrip("-").isdigit():
            return Sent(Delivery.REFUSED)
        return (await self._message(int(address), reply, attempts=1))[1]

    async def _message(self, chat_id: int, reply: RenderedReply, attempts: int) -> tuple[int | None, Sent]:
        await self.pacer.wait(str(chat_id))
        make = partial(
            self.application.bot.send_message,
            chat_id,
            reply.text,
            reply_markup=keyboard(reply),
            protect_content=reply.protect,
        )
        message, sent = await self._call(make, attempts)
        return (message.message_id if message is not None else None), sent

    async def _call(self, make: Callable[[], Awaitable[T]], attempts: int = SEND_ATTEMPTS) -> tuple[T | None, Sent]:
        """Call the Bot API with retries; transport trouble is logged and reported, never raised."""
        delay, sent = 0.5, Sent(Delivery.RETRY)
        for attempt in range(1, attempts + 1):
            try:
                return await make(), Sent(Delivery.SENT)
            except RetryAfter as exc:
                wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else float(exc.retry_after)
                log.warning("telegram asked to slow down for %.0f s", wait)
                sent = Sent(Delivery.RETRY, retry_after=wait)
                if attempt < attempts:
                    await asyncio.sleep(min(wait, 30.0))
            except Forbidden:
                log.info("telegram: the person blocked the bot or left; message not sent")
                return None, Sent(Delivery.UNREACHABLE)
            except BadRequest as exc:
                log.warning("telegram rejected a request: %s", type(exc).__name__)
                return None, Sent(Delivery.REFUSED)
            except NetworkError as exc:  # timeouts and 5xx answers
                sent = Sent(Delivery.RETRY)
                if attempt == attempts:
                    log.error("telegram unreachable after %d attempts: %s", attempt, type(exc).__name__)
                    break
                await asyncio.sleep(delay)
                delay *= 2
        return None, sent

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # The update and the error text may carry personal data: log only the error's type.
        log.error("telegram handler failed: %s", type(context.error).__name__)



def build(runtime: Runtime, options: ServerOptions) -> Channel:
    """The registry's factory."""
    return TelegramChannel(runtime, runtime.services.settings)
