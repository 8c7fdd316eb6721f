"""The Zalo Official Account channel (Open API v3, OAuth v4): webhook events → Inbound, replies → messages.

Only translation and transport live here: what to answer is the engine's business, how a reply
is cut to Zalo's limits the renderer's (the channel's ``Capabilities`` in the registry). Zalo
posts every event to ``POST /webhooks/zalo``; the ``X-ZEvent-Signature: mac=<hex>`` header is
checked before anything else is done with the body (hex = SHA-256 of app_id + raw body +
timestamp + OA secret key, app_id and timestamp read from the body), then the event is
answered with 200 at once (Zalo wants an answer within about 2 s and retries otherwise) and
handled in the background, one person's events in order.

Buttons are ``oa.query.hide`` buttons: pressing one makes Zalo post a ``user_send_text`` whose
text is the button's payload, hidden from the chat. Every payload An Tâm sends starts with
``#``, so a button press is told from typed text without remembering anything per person; a
person typing such a text by hand only presses a button of their own.

Zalo cannot delete messages from a person's device, so message ids are never tracked; the
capabilities say so, and the renderer adds how to delete the conversation by hand to the
quick exit's line. The access token is ``tokens.ZaloTokens``'s business, the HTTP calls
``api.ZaloAPI``'s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.channels.base import Channel, ChannelBase, Delivery, Sent
from bot.channels.bounded_json import JsonError, loads, read_body, top_level_fields
from bot.channels.common import Background, coordinate
from bot.channels.registry import ZALO, ServerOptions
from bot.channels.zalo.api import OAUTH_PATH, PAYLOAD_PREFIX, SEND_PATH, ZaloAPI, outgoing
from bot.channels.zalo.tokens import app_secret_of, configured_tokens
from bot.config import Settings
from bot.runtime import Runtime
from handlers.render import RenderedReply
from handlers.types import Inbound, Location

CHANNEL = ZALO.name
WEBHOOK_PATH = "/webhooks/zalo"
SIGNATURE_HEADER = "X-ZEvent-Signature"
MAX_BODY = 64 * 1024  # an event with a 2,000-character text and its attachments is a few KB
MAX_ID = 128  # user ids are about 19 digits, msg_ids 32 hex digits: anything longer is not Zalo's
MAX_IN_FLIGHT = 1000  # events being handled at once; beyond that Zalo is asked to retry later
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

log = logging.getLogger("antam.zalo")


def _user(party: object) -> str | None:
    value = party.get("id") if isinstance(party, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID and value.isprintable() else None


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
            lat = coordinate(place.get("latitude"), 90, strings=True)  # Zalo sends strings
            lon = coordinate(place.get("longitude"), 180, strings=True)
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


class ZaloChannel(ChannelBase):
    """The Zalo OA adapter: the webhook route, background handling, and sending through ``ZaloAPI``."""

    name = CHANNEL
    capabilities = ZALO.capabilities

    def __init__(
        self, runtime: Runtime, settings: Settings, *, oauth_base_url: str | None = None, app_secret: str | None = None
    ) -> None:
        if not settings.zalo_app_id or settings.zalo_oa_secret_key is None:
            raise ValueError("ZALO_APP_ID and ZALO_OA_SECRET_KEY must be set")
        super().__init__(runtime)
        self.settings = settings
        self.app_id = settings.zalo_app_id
        self._oa_secret = settings.zalo_oa_secret_key.get_secret_value().encode()
        self.api = ZaloAPI(
            runtime.services,
            app_id=self.app_id,
            app_secret=app_secret or app_secret_of(settings),
            send_url=settings.zalo_api_base_url.rstrip("/") + SEND_PATH,
            oauth_url=(oauth_base_url or settings.zalo_oauth_base_url).rstrip("/") + OAUTH_PATH,
            configured=configured_tokens(settings),
        )
        self.tokens = self.api.tokens
        self.background = Background(MAX_IN_FLIGHT)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.webhook)

    async def start(self) -> None:
        self.background.closing = False
        self.api.client()
        log.info("zalo channel started")

    async def stop(self) -> None:
        """Stop taking events, finish those in flight, then release the HTTP client."""
        self.background.closing = True
        await self.drain()
        await self.api.close()
        log.info("zalo channel stopped")

    async def drain(self) -> None:
        """Wait until every event received so far has been handled."""
        await self.background.drain()

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
        inbound = to_inbound(data)
        if inbound is not None and not self.background.spawn(self._handle(inbound)):
            return web.Response(status=503, text="busy")  # Zalo retries a webhook that did not get 200
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
                for reply in self.fit(await self.runtime.answer(inbound)):  # none for a redelivery
                    if (await self.api.send(inbound.user_id, outgoing(reply))).delivery is not Delivery.SENT:
                        return
        except Exception as exc:  # the event and the error text may carry personal data: type only
            log.error("zalo: handling an event failed: %s", type(exc).__name__)

    async def deliver(self, address: str, reply: RenderedReply) -> Sent:
        # Zalo keeps no dedupe key: a message handed over twice shows twice.
        return await self.api.send(address, outgoing(reply), attempts=1)


def build(runtime: Runtime, options: ServerOptions) -> Channel:
    """The registry's factory."""
    return ZaloChannel(runtime, runtime.services.settings)
