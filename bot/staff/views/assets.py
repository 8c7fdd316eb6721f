"""The staff app's own static files (style sheets, the counsellor page's script, the icon);
nothing is loaded from anywhere else."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.staff.auth import Viewer

STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {
    "staff.css": "text/css",
    "icon.svg": "image/svg+xml",
    "counselling.css": "text/css",
    "counselling.js": "text/javascript",
}


async def static_file(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    name = request.match_info.get("name", "")
    if name not in TYPES:  # a fixed list: no path from the request ever reaches the file system
        raise web.HTTPNotFound()
    body = (STATIC / name).read_text(encoding="utf-8")
    return web.Response(
        text=body, content_type=TYPES[name], charset="utf-8", headers={"Cache-Control": "no-cache"}
    )
