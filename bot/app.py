"""The one aiohttp server: health check now; channels and the staff app plug in here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.bootstrap import Services
from bot.maintenance import purge
from bot.runtime import Runtime

SERVICES = web.AppKey("services", Services)
RUNTIME = web.AppKey("runtime", Runtime)
MAINTENANCE_EVERY = 24 * 3600.0
log = logging.getLogger("antam.app")


async def healthz(request: web.Request) -> web.Response:
    """Report liveness and whether the database answers."""
    try:
        await asyncio.wait_for(request.app[SERVICES].db.ping(), timeout=5)
    except Exception:  # any failure means "not healthy"; the reason goes to the log only
        log.warning("health check: database did not answer")
        return web.json_response({"status": "error", "database": "unavailable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def _maintenance(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
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

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(services: Services, *, maintenance: bool = True) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICES] = services
    app[RUNTIME] = Runtime(services)
    app.router.add_get("/healthz", healthz)
    if maintenance:
        app.cleanup_ctx.append(_maintenance)
    return app
