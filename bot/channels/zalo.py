"""The Zalo Official Account channel (Open API v3, OAuth v4): webhook events → Inbound, replies → messages.

Only translation and transport live here: what to answer is the engine's business. Zalo posts
every event to ``POST /webhooks/zalo``; the ``X-ZEvent-Signature: mac=<hex>`` header is checked
before anything else is done with the body (hex = SHA-256 of app_id + raw body + timestamp +
OA secret key, app_id and timestamp read from the body), then the event is answered with 200
at once (Zalo wants an answer within about 2 s and retries otherwise) and handled in the
background, one person's events in order.

Buttons are ``oa.query.hide`` buttons: pressing one makes Zalo post a ``user_send_text`` whose
text is the button's payload, hidden from the chat. Every payload An Tâm sends starts with
``#``, so a button press is told from typed text without remembering anything per person; a
person typing such a text by hand only presses a button of their own.

Zalo cannot delete messages from a person's device, so quick exit sends the engine's neutral
line together with how to delete the conversation by hand, and message ids are never tracked.
The OA access token expires after about 25 hours; each refresh also replaces the refresh
token, which works once, so the pair is kept sealed in the database (storage.channel_secrets)
and refreshed under a row lock: two workers never spend the same refresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web

from bot.bootstrap import Services
from bot.channels.bounded_json import JsonError, loads, read_body, top_level_fields
from bot.channels.common import KeyedLocks
from bot.channels.common import split_text as split_paragraphs
from bot.config import Settings
from bot.runtime import Runtime
from handlers.render import RenderedButton, RenderedReply
from handlers.state import DEFAULT_LOCALE, LOCALES
from handlers.types import Inbound, Location, ReplyKind
from storage.channel_secrets import Tokens, claim_tokens, seed_of, store_tokens
from storage.crypto import DecryptionError, UnknownKeyError

CHANNEL = "zalo"
WEBHOOK_PATH = "/webhooks/zalo"
SIGNATURE_HEADER = "X-ZEvent-Signature"
SEND_PATH = "/v3.0/oa/message/cs"
OAUTH_PATH = "/v4/oa/access_token"
DEFAULT_OAUTH_BASE_URL = "https://oauth.zaloapp.com"
PAYLOAD_PREFIX = "#"
# Limits. Text: 2,000 characters (partners' documentation of the consultation message; counted
# here in code points). Buttons: 5 per message (Zalo's own PHP SDK refuses a sixth). Titles:
# 100 characters (third-party SDKs; not in Zalo's own documentation we could read).
MAX_TEXT = 2000
MAX_BUTTONS = 5
MAX_TITLE = 100
MORE_TEXT = "…"  # the text of a message that only carries the buttons that did not fit
# Zalo counts free replies per message the person sends (8 within 48 h are reported): one
# event never gets more than that.
MAX_MESSAGES_PER_EVENT = 8
MAX_BODY = 64 * 1024  # an event with a 2,000-character text and its attachments is a few KB
MAX_ID = 128  # user ids are about 19 digits, msg_ids 32 hex digits: anything longer is not Zalo's
MAX_IN_FLIGHT = 1000  # events being handled at once; beyond that Zalo is asked to retry later
SEND_ATTEMPTS = 3
REFRESH_MARGIN = dt.timedelta(minutes=10)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Shorter: the token row (on SQLite, the whole database's write lock) is held while OAuth answers.
OAUTH_TIMEOUT = aiohttp.ClientTimeout(total=5)
# Zalo error codes (in a 200 body). Token: invalid / expired or removed. Unreachable: not
# following, banned or inactive, outside the reply window, restricted this message type.
TOKEN_ERRORS = frozenset({-216, -220, -124})
UNREACHABLE_ERRORS = frozenset({-213, -227, -230, -232, -244})
QUOTA_ERRORS = frozenset({-32, -211, -218})
MEDIA_KINDS = {
    "user_send_image": "photo",
    "user_send_sticker": "sticker",
    "user_send_gif": "animation",
    "user_send_audio": "voice",
    "user_send_video": "video",
    "user_send_file": "document",
    "user_send_link": "link",
    "user_send_business_card": "contact",
}
QUICK_EXIT_NEUTRAL_KEY = "quickexit.neutral"
QUICK_EXIT_MANUAL_KEY = "quickexit.zalo_manual"

log = logging.getLogger("antam.zalo")


def _user(party: object) -> str | None:
    value = party.get("id") if isinstance(party, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID and value.isprintable() else None


def _coordinate(value: object, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)  # Zalo sends strings
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and -bound <= number <= bound else None


def _location(message: Mapping[str, Any]) -> Location | None:
    """Coordinates from ``attachments[].payload.coordinates`` (or a bare ``location``)."""
    places: list[object] = [message.get("location")]
    attachments = message.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        if isinstance(attachment, dict) and attachment.get("type") == "location":
            payload = attachment.get("payload")
            places.insert(0, payload.get("coordinates", payload) if isinstance(payload, dict) else None)
    for place in places:
        if isinstance(place, dict):
            lat, lon = _coordinate(place.get("latitude"), 90), _coordinate(place.get("longitude"), 180)
            if lat is not None and lon is not None:
                return Location(lat, lon)
    return None


def button_payload(text: str) -> str | None:
    """The payload of a button An Tâm sent, when ``text`` is one ("#" and one word)."""
    if text.startswith(PAYLOAD_PREFIX) and 1 < len(text) <= 65 and not any(ch.isspace() for ch in text):
        return text[len(PAYLOAD_PREFIX) :]
    return None


def to_inbound(event: Mapping[str, Any]) -> Inbound | None:
    """Translate a webhook event; None for what gets no answer (unfollow, the OA's own events…)."""
    name = event.get("event_name")
    if name == "follow":
        user = _user(event.get("follower")) or _user(event.get("sender"))
    elif isinstance(name, str) and name.startswith("user_send_"):
        user = _user(event.get("sender"))
    else:
        # unfollow; oa_send_* (the OA's own messages); user_received_message and
        # user_seen_message (receipts of the OA's messages); anonymous_*; anything new.
        return None
    if user is None:
        return None
    found = event.get("message")
    message: Mapping[str, Any] = found if isinstance(found, dict) else {}
    msg_id = message.get("msg_id")
    valid_id = isinstance(msg_id, str) and 0 < len(msg_id) <= MAX_ID and msg_id.isprintable()
    update_id = msg_id if valid_id else f"{name}:{str(event.get('timestamp'))[:20]}:{user}"
    if name == "follow":
        return Inbound(CHANNEL, user, text="/start", update_id=update_id)
    if name == "user_send_text":
        typed = message.get("text")
        text = typed if isinstance(typed, str) else ""
        payload = button_payload(text)
        if payload is not None:
            return Inbound(CHANNEL, user, payload=payload, update_id=update_id)
        return Inbound(CHANNEL, user, text=text, update_id=update_id)
    if name == "user_send_location":
        location = _location(message)
        if location is not None:
            return Inbound(CHANNEL, user, location=location, update_id=update_id)
        return Inbound(CHANNEL, user, media="location", update_id=update_id)
    return Inbound(CHANNEL, user, media=MEDIA_KINDS.get(name, name.removeprefix("user_send_")), update_id=update_id)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long text into pieces Zalo accepts."""
    return split_paragraphs(text, limit)


def _button(button: RenderedButton) -> dict[str, str]:
    title = button.label if len(button.label) <= MAX_TITLE else button.label[: MAX_TITLE - 1] + "…"
    return {"title": title, "type": "oa.query.hide", "payload": PAYLOAD_PREFIX + button.payload}


def outgoing(reply: RenderedReply) -> list[dict[str, Any]]:
    """The ``message`` objects for one reply: text pieces, buttons in groups of at most five.

    The shape is the one of Zalo's own SDK: ``{"text": …, "attachment": {"type": "template",
    "payload": {"buttons": […]}}}``. Buttons are spread evenly (7 → 4 + 3), the first group on
    the last piece of text, the others each on a message of their own.
    """
    messages: list[dict[str, Any]] = [{"text": piece} for piece in split_text(reply.text)]
    buttons = list(reply.buttons)
    if buttons:
        groups = math.ceil(len(buttons) / MAX_BUTTONS)
        size = math.ceil(len(buttons) / groups)
        for index in range(0, len(buttons), size):
            group = [_button(b) for b in buttons[index : index + size]]
            attachment = {"type": "template", "payload": {"buttons": group}}
            if index == 0:
                messages[-1]["attachment"] = attachment
            else:
                messages.append({"text": MORE_TEXT, "attachment": attachment})
    return messages


class ZaloTokens:
    """The OA access token: cached in memory, sealed in the database, refreshed once for all workers."""

    def __init__(
        self, services: Services, configured: Tokens | None, oauth: Callable[[str], Awaitable[Tokens | None]]
    ) -> None:
        self.services = services
        self.configured = configured
        self.oauth = oauth
        self.cached: Tokens | None = None
        self._lock = asyncio.Lock()
        self._syncing: asyncio.Future[Tokens | None] | None = None

    def _expiring(self, tokens: Tokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at - self.services.clock.now() < REFRESH_MARGIN

    async def get(self) -> str | None:
        """A token to send with: the cached one, or a fresh one when it expires within 10 minutes."""
        cached = self.cached
        if cached is not None and not self._expiring(cached):
            return cached.access_token
        return await self.renew(stale=None)

    async def renew(self, *, stale: str | None) -> str | None:
        """Load or refresh the token; ``stale`` (refused by Zalo) is never handed out again."""
        async with self._lock:
            cached = self.cached
            if cached is not None and cached.access_token != stale and not self._expiring(cached):
                return cached.access_token  # another task of this worker renewed it meanwhile
            try:
                tokens = await self._sync_in_time(stale)
            except Exception as exc:  # the database or Zalo failed: the token at hand, if any
                log.error("zalo: could not load or refresh the access token: %s", type(exc).__name__)
                return self._at_hand(stale)
            self.cached = tokens
            if tokens is None or not tokens.access_token or tokens.access_token == stale:
                return None
            return tokens.access_token

    async def _sync_in_time(self, stale: str | None) -> Tokens | None:
        """``_sync``, waited for at most the database timeout plus OAuth's.

        A stalled database must not hold every send behind this lock. The sync itself is not
        cut short (shielded): once Zalo has issued a new pair it must still be stored, or the
        spent refresh token would be all that is left; it finishes when the database answers.
        """
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.ensure_future(self._sync(stale))
            # Read a late failure here, so that it is not reported with a traceback at exit.
            self._syncing.add_done_callback(lambda done: done.cancelled() or done.exception())
        limit = self.services.db.timeout + (OAUTH_TIMEOUT.total or 0.0)
        return await asyncio.wait_for(asyncio.shield(self._syncing), timeout=limit)

    def _at_hand(self, stale: str | None) -> str | None:
        """The cached access token while it has not expired (the refresh can wait), else None."""
        cached = self.cached
        if cached is None or not cached.access_token or cached.access_token == stale:
            return None
        if cached.expires_at is not None and cached.expires_at <= self.services.clock.now():
            return None
        return cached.access_token

    async def _sync(self, stale: str | None) -> Tokens | None:
        services = self.services
        for attempt in range(2):
            try:
                async with services.db.transaction() as session:
                    ring = await services.keys.get(session, refresh=attempt > 0)
                    now = services.clock.now()
                    try:
                        tokens = await claim_tokens(session, ring, CHANNEL, self.configured, now=now)
                    except UnknownKeyError:
                        if attempt == 0:
                            raise  # the key ring may be older than a rotation: reload it once
                        tokens = None
                    except DecryptionError:
                        tokens = None
                    if tokens is None and self.configured is not None:
                        # Unreadable (its data key was deleted?) or absent: start again from the configuration.
                        log.error("zalo: stored tokens cannot be opened; starting again from ZALO_REFRESH_TOKEN")
                        tokens = replace(self.configured, seeds=(seed_of(ring, CHANNEL, self.configured),))
                        await store_tokens(session, ring, CHANNEL, tokens, now=now)
                    if tokens is None:
                        return None
                    if not (self._expiring(tokens) or tokens.access_token == stale):
                        return tokens  # fresh, or already refreshed by another worker
                    if tokens.refresh_token is None:
                        log.error("zalo: the access token expired or was refused, and there is no refresh token")
                        return tokens
                    # The row stays locked while Zalo answers: nobody else can spend this refresh token.
                    fresh = await self.oauth(tokens.refresh_token)
                    if fresh is None:
                        return tokens
                    fresh = replace(fresh, seeds=tokens.seeds)
                    await store_tokens(session, ring, CHANNEL, fresh, now=now)
                log.info("zalo: access token refreshed")
                return fresh
            except UnknownKeyError:
                continue
        return None


class ZaloChannel:
    """The Zalo OA adapter: the webhook route, background handling, and the Open API client."""

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings,
        *,
        oauth_base_url: str | None = None,
        app_secret: str | None = None,
    ) -> None:
        if not settings.zalo_app_id or settings.zalo_oa_secret_key is None:
            raise ValueError("ZALO_APP_ID and ZALO_OA_SECRET_KEY must be set")
        self.runtime = runtime
        self.settings = settings
        self.app_id = settings.zalo_app_id
        self._oa_secret = settings.zalo_oa_secret_key.get_secret_value().encode()
        # The OAuth header takes the app's secret key. Settings has one Zalo secret; a deployment
        # whose app secret differs from the OA secret key sets ZALO_APP_SECRET_KEY (unverified
        # whether Zalo ever gives both the same value).
        configured_secret = settings.zalo_app_secret_key.get_secret_value() if settings.zalo_app_secret_key else None
        self._app_secret = app_secret or configured_secret or self._oa_secret.decode()
        oauth_base = oauth_base_url or settings.zalo_oauth_base_url
        self.oauth_url = oauth_base.rstrip("/") + OAUTH_PATH
        self.send_url = settings.zalo_api_base_url.rstrip("/") + SEND_PATH
        self.tokens = ZaloTokens(runtime.services, self._configured_tokens(settings), self._refresh)
        self.locks: KeyedLocks[str] = KeyedLocks()
        self.retry_delay = 0.5
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closing = False

    @staticmethod
    def _configured_tokens(settings: Settings) -> Tokens | None:
        access = settings.zalo_access_token.get_secret_value() if settings.zalo_access_token else ""
        refresh = settings.zalo_refresh_token.get_secret_value() if settings.zalo_refresh_token else None
        if not access and not refresh:
            return None
        # An access token's age is unknown: it is used until Zalo refuses it. Without one, refresh at once.
        expires = None if access else dt.datetime.fromtimestamp(0, dt.UTC)
        return Tokens(access, refresh or None, expires)

    async def start(self) -> None:
        self._closing = False
        self._client()
        log.info("zalo channel started")

    async def stop(self) -> None:
        """Stop taking events, finish those in flight, then release the HTTP client."""
        self._closing = True
        await self.drain()
        if self._http is not None:
            await self._http.close()
            self._http = None
        log.info("zalo channel stopped")

    async def drain(self) -> None:
        """Wait until every event received so far has been handled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self._http

    async def webhook(self, request: web.Request) -> web.Response:
        """POST /webhooks/zalo: the signature first; 200 at once, the event handled in the background.

        The signature covers app_id + body + timestamp, two values inside the body: they are read
        by a one-pass scan of the top level (bot.channels.bounded_json.top_level_fields), so no
        request without the secret reaches the JSON parser, and every body whose signature does
        not match, whatever its shape, gets 401. Only then is the body parsed, within bounds.
        """
        mac = request.headers.get(SIGNATURE_HEADER, "").strip()
        mac = mac[4:] if mac[:4].lower() == "mac=" else mac
        if not mac:
            return web.Response(status=401, text="unauthorized")
        raw = await read_body(request, MAX_BODY)
        if raw is None:
            return web.Response(status=413, text="too large")
        fields = top_level_fields(raw, ("app_id", "timestamp"))
        app_id, timestamp = (fields.get("app_id"), fields.get("timestamp")) if fields is not None else (None, None)
        if isinstance(timestamp, int):
            timestamp = str(timestamp)
        if not isinstance(app_id, str) or not isinstance(timestamp, str):
            return web.Response(status=401, text="unauthorized")
        expected = hashlib.sha256(app_id.encode() + raw + timestamp.encode() + self._oa_secret).hexdigest()
        if not hmac.compare_digest(mac.lower().encode("utf-8", "replace"), expected.encode()):
            return web.Response(status=401, text="unauthorized")
        if not hmac.compare_digest(app_id.encode(), self.app_id.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            data = loads(raw, max_bytes=MAX_BODY)
        except JsonError:
            return web.Response(status=400, text="malformed event")
        if not isinstance(data, dict) or data.get("app_id") != app_id or str(data.get("timestamp")) != timestamp:
            return web.Response(status=400, text="malformed event")
        if not self._fresh(timestamp):
            # Answered 200 on purpose: Zalo retries anything else, and retrying cannot make an
            # old event fresh. Not handled: its dedupe key may have expired (a replay).
            log.warning("zalo: a signed event outside the freshness window was ignored")
            return web.Response(text="ok")
        if self._closing or len(self._tasks) >= MAX_IN_FLIGHT:
            return web.Response(status=503, text="busy")  # Zalo retries a webhook that did not get 200
        inbound = to_inbound(data)
        if inbound is not None:
            task = asyncio.create_task(self._handle(inbound))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(text="ok")

    def _fresh(self, timestamp: str) -> bool:
        """Whether an event's ``timestamp`` (ms) is within ZALO_EVENT_MAX_AGE of now, either way."""
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 16:
            return False
        sent = int(timestamp) / 1000
        return abs(self.runtime.services.clock.now().timestamp() - sent) <= self.settings.zalo_event_max_age

    async def _handle(self, inbound: Inbound) -> None:
        try:
            async with self.locks.hold(inbound.user_id):
                replies = await self.runtime.answer(inbound)  # empty for a redelivered event
                sent = 0
                for reply in replies:
                    if reply.kind is ReplyKind.QUICK_EXIT:
                        reply = replace(reply, text=self._quick_exit_text(reply))
                    for message in outgoing(reply):
                        if sent == MAX_MESSAGES_PER_EVENT:
                            log.warning("zalo: reply cut after %d messages", sent)
                            return
                        if not await self._send(inbound.user_id, message):
                            return
                        sent += 1
        except Exception as exc:  # the event and the error text may carry personal data: type only
            log.error("zalo: handling an event failed: %s", type(exc).__name__)

    def _quick_exit_text(self, reply: RenderedReply) -> str:
        """The neutral line, then how to delete the chat by hand (Zalo lets no bot delete it)."""
        catalogs = self.runtime.services.renderer.catalogs
        locale = next(
            (loc for loc in LOCALES if catalogs.messages.get(loc, {}).get(QUICK_EXIT_NEUTRAL_KEY) == reply.text),
            DEFAULT_LOCALE,
        )
        try:
            manual = catalogs.text(locale, QUICK_EXIT_MANUAL_KEY)
        except KeyError:  # not in the catalogs yet: the neutral line alone
            return reply.text
        return f"{reply.text}\n\n{manual}"

    async def _send(self, user_id: str, message: dict[str, Any]) -> bool:
        """Send one message; every failure is logged by its code only and reported as False."""
        token = await self.tokens.get()
        if token is None:
            log.error("zalo: no usable access token; message not sent")
            return False
        body = json.dumps({"recipient": {"user_id": user_id}, "message": message}, ensure_ascii=False).encode()
        renewed = False
        delay = self.retry_delay
        attempt = 0
        while True:
            attempt += 1
            status, error = await self._post_message(token, body)
            if status is None or status >= 500:
                if attempt < SEND_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                log.error("zalo unreachable after %d attempts (%s)", attempt, status or "no answer")
                return False
            if status >= 400:
                log.warning("zalo rejected a message: HTTP %d", status)
                return False
            if error == 0:
                return True
            if error in TOKEN_ERRORS and not renewed:
                renewed = True
                renewed_token = await self.tokens.renew(stale=token)
                if renewed_token is None:
                    log.error("zalo refused the access token (error %d) and no new one could be had", error)
                    return False
                token = renewed_token
                continue
            if error in UNREACHABLE_ERRORS:
                log.info("zalo: the person cannot be reached now (error %d: outside the reply window?)", error)
            elif error in QUOTA_ERRORS:
                log.warning("zalo: message quota or rate limit reached (error %d)", error)
            else:
                log.warning("zalo refused a message: error %s", "?" if error is None else error)
            return False

    async def _post_message(self, token: str, body: bytes) -> tuple[int | None, int | None]:
        headers = {"access_token": token, "Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._client().post(self.send_url, data=body, headers=headers) as response:
                status = response.status
                if status >= 400:
                    return status, None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("zalo send failed: %s", type(exc).__name__)
            return None, None
        error = data.get("error") if isinstance(data, dict) else None
        # An answer without a numeric error code counts as a refusal ("error ?" in the log).
        return status, error if isinstance(error, int) and not isinstance(error, bool) else None

    async def _refresh(self, refresh_token: str) -> Tokens | None:
        """Trade a refresh token for a new pair; tried once, since a refresh token works only once."""
        form = {"refresh_token": refresh_token, "app_id": self.app_id, "grant_type": "refresh_token"}
        try:
            request = self._client().post(
                self.oauth_url, data=form, headers={"secret_key": self._app_secret}, timeout=OAUTH_TIMEOUT
            )
            async with request as response:
                status = response.status
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.error("zalo oauth failed: %s", type(exc).__name__)
            return None
        access = data.get("access_token") if isinstance(data, dict) else None
        refresh = data.get("refresh_token") if isinstance(data, dict) else None
        if status >= 400 or not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            code = data.get("error") if isinstance(data, dict) else None
            shown = code if isinstance(code, int) else "?"
            log.error("zalo refused to refresh the access token (HTTP %d, error %s)", status, shown)
            return None
        try:
            seconds = float(data.get("expires_in", 0))  # a string, e.g. "90000"
        except (TypeError, ValueError):
            seconds = 0.0
        expires = self.runtime.services.clock.now() + dt.timedelta(seconds=seconds) if seconds > 0 else None
        return Tokens(access, refresh, expires)
