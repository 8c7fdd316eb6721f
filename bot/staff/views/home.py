"""The home page: who is signed in, their scope, and the parts of the app they may use."""

from __future__ import annotations

from aiohttp import web

from bot.staff.auth import Viewer
from bot.staff.render import render

DONE = {"password", "totp"}


async def home(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    done = request.query.get("done")
    return await render(request, "home.html", {"done": done if done in DONE else None})
