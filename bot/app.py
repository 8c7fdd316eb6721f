"""The one aiohttp server: the channels of the registry (web chat at /, webhooks), the staff app, /healthz, /metrics.

Channels are known only through ``bot.channels.registry`` and the ``Channel`` protocol: each
configured one adds its routes and its start/stop, and is found again by name in
``app[CHANNELS]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from bot.bootstrap import Services
from bot.channels import registry
from bot.channels.base import Channel
from bot.channels.registry import NEUTRAL_EXIT_URL, ServerOptions
from bot.metrics import metrics_view
from bot.outbox import OutboxWorker
from bot.maintenance import purge
from bot.memory import keep_giving_back
from bot.runtime import Runtime
from bot.staff import add_staff_routes
from bot.staff.security import HSTS

SERVICES = web.AppKey("services", Services)
RUNTIME = web.AppKey("runtime", Runtime)
CHANNELS = web.AppKey("channels", dict[str, Channel])
MAINTENANCE_EVERY = 3600.0
log = logging.getLogger("antam.app")
C = TypeVar("C")


def channel_of(app: web.Application, kind: type[C]) -> C:
    """The running channel adapter of type ``kind`` (for tests and tools that need its own API)."""
    found = [channel for channel in app[CHANNELS].values() if isinstance(channel, kind)]
    if not found:
        raise LookupError(f"no {kind.__name__} in this server")
    return found[0]


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


def make_app(
    services: Services,
    *,
    maintenance: bool = True,
    channels: Collection[str] | None = None,
    exit_url: str = NEUTRAL_EXIT_URL,
    outbox: bool = True,
) -> web.Application:
    """Build the server with the channels the settings configure (or those named in ``channels``),
    and the outbox delivered over them."""
    app = web.Application(client_max_size=256 * 1024)
    app[SERVICES] = services
    if (services.settings.public_url or "").startswith("https://"):
        app.on_response_prepare.append(_strict_transport)
    runtime = Runtime(services)
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", healthz)
    settings = services.settings
    app.router.add_get("/metrics", metrics_view(settings.metrics_networks, settings.proxy_networks))
    options = ServerOptions(exit_url=exit_url)
    running: dict[str, Channel] = {}
    for spec in registry.CHANNELS:
        if not (spec.configured(settings) if channels is None else spec.name in channels):
            continue
        channel = spec.build(runtime, options)
        channel.add_routes(app)
        app.cleanup_ctx.append(channel.lifecycle)
        running[spec.name] = channel
    app[CHANNELS] = running
    if outbox:
        worker = OutboxWorker(services, running)

        async def deliver(app: web.Application) -> None:
            await worker.run()

        app.cleanup_ctx.append(_background(deliver))
    add_staff_routes(app, services)
    if maintenance:
        app.cleanup_ctx.append(_background(_maintenance))
    app.cleanup_ctx.append(_background(_give_back_memory))
    return app
