"""The staff web app at /staff: a server-rendered sub-application of the one aiohttp server.

Layers, outermost first: security headers (on everything, errors included) → the encrypted
session cookie → error pages (Vietnamese or English, never a traceback) → the route's guard
(CSRF on every POST, then the access level from the route table) → the view.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_session import session_middleware

from bot.bootstrap import Services
from bot.counselling import Desk
from bot.staff.passwords import Passwords
from bot.staff.render import NAV, Navigation, setup_templates
from bot.staff.routes import NAVIGATION, register
from bot.staff.security import error_pages, security_headers
from bot.staff.sessions import AddressThrottle, cookie_storage
from bot.staff.state import DESK, PASSWORDS, PEER_THROTTLE, SERVICES, THROTTLE

PREFIX = "/staff"
STAFF_APP = web.AppKey("staff_app", web.Application)


async def _desk(app: web.Application) -> AsyncIterator[None]:
    # Listens for changes other workers announce (PostgreSQL), for the counsellors' pages.
    desk = app[DESK]
    await desk.start()
    expiring = asyncio.create_task(desk.keep_expiring())
    yield
    expiring.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await expiring
    await desk.stop()


async def _passwords(app: web.Application) -> AsyncIterator[None]:
    # Make the dummy hash (what unknown usernames are checked against) in the background
    # at start, so the first login from an unknown name costs no more than any other.
    app[PASSWORDS].warm()
    yield
    await app[PASSWORDS].close()


def make_staff_app(services: Services) -> web.Application:
    storage = cookie_storage(services.secrets, services.settings)
    app = web.Application(
        middlewares=[security_headers, session_middleware(storage), error_pages], client_max_size=64 * 1024
    )
    app[SERVICES] = services
    app[PASSWORDS] = Passwords()
    proxies, ipv4_block = services.settings.proxy_networks, services.settings.ipv4_block_prefix
    app[THROTTLE] = AddressThrottle(
        lambda: services.clock.now().timestamp(), proxies=proxies, ipv4_block=ipv4_block
    )
    app[PEER_THROTTLE] = AddressThrottle(
        lambda: services.clock.now().timestamp(), burst=30, every=10.0, proxies=proxies, ipv4_block=ipv4_block
    )
    app[NAV] = Navigation(NAVIGATION)
    app[DESK] = Desk(services)
    app.cleanup_ctx.append(_passwords)
    app.cleanup_ctx.append(_desk)
    setup_templates(app)
    register(app)
    return app


def add_staff_routes(app: web.Application, services: Services) -> None:
    """Mount the staff app at /staff on the main application."""
    staff = make_staff_app(services)
    app[STAFF_APP] = staff
    app.add_subapp(PREFIX, staff)
