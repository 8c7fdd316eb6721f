"""The anonymous web chat: one page, a WebSocket with a plain HTTP fallback, no account.

The browser makes a random session id (sessionStorage by default; localStorage only when the
person ticks "remember me") and sends it with every message; it is pseudonymised like any
platform id. The page loads nothing from elsewhere, runs no inline script and keeps no
analytics. Abuse limits count per connection and per address (an IPv6 /64 counts as one
address); new people counted and referral codes are limited per address block too
(bot/admission.py). The address itself is only ever held in memory as a keyed hash whose key
is random per process, and never stored or logged. Only the page's own origin (or one listed
in ANTAM_WEBCHAT_ORIGINS) may open the WebSocket or post, and posts must be JSON, so another
website cannot make its visitors' browsers talk to the bot.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.admission import BlockLimits
from bot.channels.base import Channel, ChannelBase, Delivery, Sent
from bot.channels.bounded_json import JsonError, loads, read_body
from bot.channels.common import TokenBuckets
from bot.channels.registry import NEUTRAL_EXIT_URL, WEB, ServerOptions
from bot.client_address import AddressKeys
from bot.runtime import Runtime
from handlers.render import RenderedReply, dial as dial_string
from handlers.state import DEFAULT_LOCALE, LOCALES
from handlers.types import Inbound, Location

CHANNEL = WEB.name
STATIC = Path(__file__).with_name("webchat_static")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_TEXT = 2000
MAX_BODY = 8 * 1024
PAGE_TEXTS = ("title", "exit", "send", "placeholder", "remember", "label", "offline", "no_reply", "more", "copy", "copied")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
}

log = logging.getLogger("antam.webchat")


class Buckets(TokenBuckets[bytes]):
    """Rate limits by key: a message is allowed when a token is there, refused otherwise."""

    def __init__(self, capacity: float, per_second: float, *, keys: int = 50_000) -> None:
        super().__init__(capacity, per_second, keys=keys)

    def allow(self, key: bytes) -> bool:
        return self.take(key) == 0.0


class BadMessage(ValueError):
    """What the page sent is not a valid chat message."""


class WebChat(ChannelBase):
    """The web chat adapter: the page, its WebSocket and HTTP fallback, and messages to open pages."""

    name = CHANNEL
    capabilities = WEB.capabilities

    def __init__(self, runtime: Runtime, *, exit_url: str = NEUTRAL_EXIT_URL) -> None:
        super().__init__(runtime)
        self.exit_url = exit_url
        settings = runtime.services.settings
        # Keys random per process, never stored: addresses cannot be linked across restarts.
        self.keys = AddressKeys(settings.proxy_networks, ipv4_block=settings.ipv4_block_prefix)
        self.limits = BlockLimits(
            people_per_hour=settings.new_people_per_hour,
            codes_per_hour=settings.codes_per_hour,
            clock=lambda: runtime.services.clock.now().timestamp(),
        )
        self.origins = settings.allowed_origins
        self.per_address = Buckets(capacity=40, per_second=0.5)
        self.per_connection = Buckets(capacity=15, per_second=0.34)
        self.connections: dict[bytes, int] = {}
        self.max_connections_per_address = 8
        self._pages: dict[str, str] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        # Which open sockets a session spoke on, in memory only, to reach a page the bot writes
        # to first (``send``); gone with the socket.
        self._by_session: dict[str, set[web.WebSocketResponse]] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/static/chat.js", self.asset)
        app.router.add_get("/static/chat.css", self.asset)
        app.router.add_get("/chat/ws", self.websocket)
        app.router.add_post("/chat/send", self.post)
        app.on_shutdown.append(self.close_sockets)

    def reaches(self, address: str) -> bool:
        return bool(self._by_session.get(address))

    async def send(self, address: str, replies: Sequence[RenderedReply], *, dedupe: str) -> Sent:
        """Write to the page of session ``address`` if one is open on this worker.

        ``dedupe`` goes with the message: a page shown it already (a retry after a lost
        acknowledgement) does not show it again.
        """
        message = {"replies": [reply.to_json() for reply in self.fit(replies)], "id": dedupe}
        delivered = False
        for ws in list(self._by_session.get(address, ())):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(message)
                delivered = True
        return Sent(Delivery.SENT if delivered else Delivery.UNREACHABLE)

    async def close_sockets(self, app: web.Application) -> None:
        """On shutdown, end open conversations so the server does not wait on them."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    def _address(self, request: web.Request) -> bytes:
        """The key of per-address limits: the address (IPv4) or its /64 (IPv6), keyed-hashed."""
        return self.keys.rate(request)

    def _same_origin(self, request: web.Request, origin: str) -> bool:
        """The page's own origin (ANTAM_PUBLIC_URL's, else this request's Host) or a listed one.

        Without a public URL the scheme is not compared: behind a TLS proxy the request comes
        in over plain HTTP while the page's origin is https; another site cannot have this host.
        """
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        if self.runtime.services.settings.public_url:
            return False
        scheme, _, host = origin.partition("://")
        return scheme in ("http", "https") and bool(host) and host == request.host.lower()

    def _locale(self, request: web.Request) -> str:
        first = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip().lower()
        language = first.split("-")[0]
        return language if language in LOCALES else DEFAULT_LOCALE

    async def page(self, request: web.Request) -> web.Response:
        """The chat page, with its interface texts in the browser's language."""
        locale = self._locale(request)
        if locale not in self._pages:
            catalogs = self.runtime.services.renderer.catalogs
            template = (STATIC / "index.html").read_text(encoding="utf-8")
            values = {name: html.escape(catalogs.text(locale, f"webchat.{name}")) for name in PAGE_TEXTS}
            values.update(
                lang=locale,
                exit_url=html.escape(self.exit_url, quote=True),
                hotlines=self._hotlines(locale),
                buttons_shown=str(self.capabilities.buttons_shown or 0),
            )
            self._pages[locale] = template.format_map(values)
        return web.Response(text=self._pages[locale], content_type="text/html", headers=SECURITY_HEADERS)

    def _hotlines(self, locale: str) -> str:
        """The hotlines as list items, for the page to show when no reply comes (no database needed)."""
        items = []
        for line in self.runtime.services.renderer.pack.shown_hotlines():
            texts = line.texts(locale)
            number = html.escape(line.number)
            dial = html.escape(dial_string(line.number), quote=True)
            items.append(f'<li><a href="tel:{dial}">{number}</a> {html.escape(texts.name)}: {html.escape(texts.description)}</li>')
        return "".join(items)

    async def asset(self, request: web.Request) -> web.Response:
        name = request.path.rsplit("/", 1)[-1]
        kind = "application/javascript" if name.endswith(".js") else "text/css"
        body = (STATIC / name).read_text(encoding="utf-8")
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        return web.Response(text=body, content_type=kind, charset="utf-8", headers=headers)

    def parse(self, data: Any, locale_hint: str) -> Inbound:
        """Validate one message from the page and turn it into an Inbound."""
        if not isinstance(data, dict):
            raise BadMessage("a message is a JSON object")
        session = data.get("session")
        if not isinstance(session, str) or not SESSION_ID.match(session):
            raise BadMessage("session must be 22-64 characters of A-Z a-z 0-9 _ -")
        message_id = data.get("id")
        if message_id is not None and (not isinstance(message_id, str) or not MESSAGE_ID.match(message_id)):
            raise BadMessage("id must be 8-64 characters of A-Z a-z 0-9 _ -")
        common: dict[str, Any] = {
            "channel": CHANNEL,
            "user_id": session,
            "update_id": f"{session}:{message_id}" if message_id else None,
            "locale_hint": locale_hint,
        }
        kinds = [key for key in ("text", "payload", "start", "location") if key in data]
        if len(kinds) != 1:
            raise BadMessage("send exactly one of text, payload, start, location")
        value = data[kinds[0]]
        if kinds[0] == "text":
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise BadMessage(f"text must be a string of at most {MAX_TEXT} characters")
            return Inbound(text=value, **common)
        if kinds[0] == "payload":
            if not isinstance(value, str) or not 0 < len(value.encode()) <= 64:
                raise BadMessage("payload must be 1-64 bytes")
            return Inbound(payload=value, **common)
        if kinds[0] == "start":
            if not isinstance(value, str) or len(value) > 64:
                raise BadMessage("start must be a link code of at most 64 characters")
            return Inbound(start_param=value, **common)
        if not isinstance(value, dict):
            raise BadMessage("location must be {latitude, longitude}")
        given = (value.get("latitude"), value.get("longitude"))
        numbers = [n for n in given if isinstance(n, int | float) and not isinstance(n, bool)]
        if len(numbers) != 2:
            raise BadMessage("location must be {latitude, longitude} as numbers")
        try:
            latitude, longitude = float(numbers[0]), float(numbers[1])
        except OverflowError as exc:  # bounded_json refuses such integers already; never a 500
            raise BadMessage("location is out of range") from exc
        if not (math.isfinite(latitude) and math.isfinite(longitude) and -90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise BadMessage("location is out of range")
        return Inbound(location=Location(latitude, longitude), **common)

    def _slow_down(self, locale: str) -> dict[str, Any]:
        text = self.runtime.services.renderer.catalogs.text(locale, "input.slow_down")
        return {"replies": [{"text": text, "buttons": []}], "error": "rate_limited"}

    async def _answer(self, inbound: Inbound, block: bytes) -> dict[str, Any]:
        replies = await self.runtime.answer(inbound, gate=self.limits.gate(block))
        return {"replies": [reply.to_json() for reply in self.fit(replies)]}

    async def post(self, request: web.Request) -> web.Response:
        """POST /chat/send: the fallback when WebSockets are blocked."""
        locale = self._locale(request)
        origin = request.headers.get("Origin")
        # A browser sends Origin on every cross-site POST: another site's page cannot post here.
        if origin is not None and not self._same_origin(request, origin):
            return web.json_response({"error": "forbidden_origin"}, status=403)
        # A form or text/plain body is what a cross-site page can send without asking first.
        if request.content_type != "application/json":
            refused = {"error": "unsupported_media_type", "detail": "send application/json"}
            return web.json_response(refused, status=415)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "too_large"}, status=413)
        if not self.per_address.allow(self._address(request)):
            return web.json_response(self._slow_down(locale), status=429)
        try:
            body = await read_body(request, MAX_BODY)
            if body is None:
                return web.json_response({"error": "too_large"}, status=413)
            inbound = self.parse(loads(body, max_bytes=MAX_BODY), locale)
        except (ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"error": "bad_request", "detail": str(exc) if isinstance(exc, BadMessage | JsonError) else "invalid JSON"}, status=400)
        answer = await self._answer(inbound, self.keys.block(request))
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """GET /chat/ws: one JSON message in, one JSON answer out."""
        # Browsers always send Origin on a WebSocket: without one, or with another site's, it is
        # not this page (a script, or a page elsewhere using its visitors' browsers).
        origin = request.headers.get("Origin")
        if origin is None or not self._same_origin(request, origin):
            return web.json_response({"error": "forbidden_origin"}, status=403)
        address = self._address(request)
        block = self.keys.block(request)
        locale = self._locale(request)
        if self.connections.get(address, 0) >= self.max_connections_per_address:
            return web.json_response({"error": "too_many_connections"}, status=429)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.connections[address] = self.connections.get(address, 0) + 1
        connection = os.urandom(16)
        spoken: set[str] = set()
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    if message.type is WSMsgType.ERROR:
                        break
                    await ws.send_json({"error": "bad_request", "detail": "send JSON text"})
                    continue
                if not (self.per_connection.allow(connection) and self.per_address.allow(address)):
                    await ws.send_json(self._slow_down(locale))
                    continue
                try:
                    inbound = self.parse(loads(message.data, max_bytes=MAX_BODY), locale)
                except ValueError as exc:
                    detail = str(exc) if isinstance(exc, BadMessage | JsonError) else "invalid JSON"
                    await ws.send_json({"error": "bad_request", "detail": detail})
                    continue
                self._by_session.setdefault(inbound.user_id, set()).add(ws)
                spoken.add(inbound.user_id)
                await ws.send_json(await self._answer(inbound, block))
        finally:
            self._sockets.discard(ws)
            for session in spoken:
                open_pages = self._by_session.get(session, set())
                open_pages.discard(ws)
                if not open_pages:
                    self._by_session.pop(session, None)
            remaining = self.connections.get(address, 1) - 1
            if remaining > 0:
                self.connections[address] = remaining
            else:
                self.connections.pop(address, None)
        return ws


def build(runtime: Runtime, options: ServerOptions) -> Channel:
    """The registry's factory."""
    return WebChat(runtime, exit_url=options.exit_url)
