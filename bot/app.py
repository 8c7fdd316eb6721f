"""The one aiohttp server: web chat at /, the staff app, the Telegram and Zalo webhooks, /healthz, /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from bot.bootstrap import Services
from bot.metrics import metrics_view
from bot.channels.telegram import WEBHOOK_PATH, TelegramChannel
from bot.channels.webchat import NEUTRAL_EXIT_URL, WebChat
from bot.channels.zalo import WEBHOOK_PATH as ZALO_WEBHOOK_PATH
from bot.channels.zalo import ZaloChannel
from bot.maintenance import purge
from bot.memory import keep_giving_back
from bot.runtime import Runtime
from bot.staff import add_staff_routes
from bot.staff.security import HSTS

SERVICES = web.AppKey("services", Services)
RUNTIME = web.AppKey("runtime", Runtime)
TELEGRAM = web.AppKey("telegram", TelegramChannel)
WEBCHAT = web.AppKey("webchat", WebChat)
ZALO = web.AppKey("zalo", ZaloChannel)
MAINTENANCE_EVERY = 3600.0
log = logging.getLogger("antam.app")


async def healthz(request: web.Request) -> web.Response:
    """Report liveness and whether the database answers."""
    try:
        await asyncio.wait_for(request.app[SERVICES].db.ping(), timeout=5)
    except Exception:  # any failure means "not healthy"; the reason goes to the log only
        log.warning("health check: database did not answer")
        return web.json_response({"status": "error", "database": "unavailable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def _strict_transport(request: web.Request, response: web.StreamResponse) -> None:
    """HSTS on every response, the web chat's and the webhooks' too, not only the staff app's."""
    response.headers.setdefault("Strict-Transport-Security", HSTS)


async def _maintenance(app: web.Application) -> None:
    while True:
        await asyncio.sleep(60)
        try:
            report = await purge(app[SERVICES])
            log.info(
                "maintenance: removed %d inactive record(s), deleted %d retired key(s)",
                report.removed_records,
                len(report.deleted_key_ids),
            )
        except Exception:
            log.exception("maintenance failed; will try again")
        await asyncio.sleep(MAINTENANCE_EVERY - 60)


async def _give_back_memory(app: web.Application) -> None:
    await keep_giving_back()


def _background(
    loop: Callable[[web.Application], Coroutine[Any, Any, None]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running ``loop`` while the server runs, cancelled when it stops."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


def _channel_context(
    channel: TelegramChannel | ZaloChannel,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        await channel.start()
        yield
        # Stop taking updates and finish those in flight before the database closes.
        await channel.stop()

    return run


def make_app(
    services: Services,
    *,
    maintenance: bool = True,
    telegram: bool | None = None,
    exit_url: str = NEUTRAL_EXIT_URL,
) -> web.Application:
    """Build the server; Telegram runs when a bot token is configured (or ``telegram`` says so)."""
    app = web.Application(client_max_size=256 * 1024)
    app[SERVICES] = services
    if (services.settings.public_url or "").startswith("https://"):
        app.on_response_prepare.append(_strict_transport)
    runtime = Runtime(services)
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", healthz)
    settings = services.settings
    app.router.add_get("/metrics", metrics_view(settings.metrics_networks, settings.proxy_networks))
    webchat = WebChat(runtime, exit_url=exit_url)
    app[WEBCHAT] = webchat
    webchat.add_routes(app)
    add_staff_routes(app, services)
    if maintenance:
        app.cleanup_ctx.append(_background(_maintenance))
    app.cleanup_ctx.append(_background(_give_back_memory))
    use_telegram = services.settings.telegram_bot_token is not None if telegram is None else telegram
    if use_telegram:
        channel = TelegramChannel(runtime, services.settings)
        app[TELEGRAM] = channel
        if channel.webhook_mode:
            app.router.add_post(WEBHOOK_PATH, channel.webhook)
        app.cleanup_ctx.append(_channel_context(channel))
    if settings.zalo_app_id and settings.zalo_oa_secret_key is not None:
        zalo = ZaloChannel(runtime, settings)
        app[ZALO] = zalo
        app.router.add_post(ZALO_WEBHOOK_PATH, zalo.webhook)
        app.cleanup_ctx.append(_channel_context(zalo))
    return app
