"""HSTS on every response of the one server when the public URL is https (issue #15 §6)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.app import make_app
from bot.bootstrap import open_services
from bot.clock import FixedClock
from bot.config import Settings

PATHS = [
    ("GET", "/"),
    ("GET", "/static/chat.js"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/no/such/page"),
    ("POST", "/chat/send"),
    ("GET", "/staff/login"),
    ("GET", "/chat/ws"),  # not an upgrade: refused, still with the header
]


async def _headers(settings: Settings, clock: FixedClock) -> dict[tuple[str, str], str | None]:
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    client = TestClient(TestServer(make_app(services, maintenance=False, channels=("web",)), host="127.0.0.1"))
    await client.start_server()
    try:
        found: dict[tuple[str, str], str | None] = {}
        for method, path in PATHS:
            response = await client.request(method, path, data=b"{" if method == "POST" else None, allow_redirects=False)
            found[(method, path)] = response.headers.get("Strict-Transport-Security")
        page = settings.public_url.rstrip("/") if settings.public_url else str(client.make_url("")).rstrip("/")
        async with client.ws_connect("/chat/ws", headers={"Origin": page}) as ws:
            found[("WS", "/chat/ws")] = ws._response.headers.get("Strict-Transport-Security")
        return found
    finally:
        await client.close()
        await services.close()


async def test_hsts_on_every_response_behind_https(settings: Settings, clock: FixedClock) -> None:
    """Pages, assets, errors, the health check, metrics and the WebSocket handshake all carry HSTS."""
    https = settings.model_copy(update={"public_url": "https://antam.example.org"})
    found = await _headers(https, clock)
    assert all(value is not None and value.startswith("max-age=31536000") for value in found.values()), found


async def test_no_hsts_without_a_public_https_url(settings: Settings, clock: FixedClock) -> None:
    """On the embedded default (plain http on 127.0.0.1) no page asks for HTTPS."""
    found = await _headers(settings, clock)
    assert set(found.values()) == {None}, found
