"""The audit log, for admins: newest first, a page at a time; a province admin sees their province."""

from __future__ import annotations

import math

from aiohttp import web

from bot.staff.auth import Viewer
from bot.staff.render import render
from bot.staff.state import SERVICES
from storage.staff import audit_page

PAGE_SIZE = 50
MAX_PAGE = 100_000


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= MAX_PAGE:
        raise web.HTTPBadRequest()
    return int(raw)


async def audit_log(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    page = _page_number(request)
    services = request.app[SERVICES]
    async with services.db.transaction() as db:
        entries, total = await audit_page(
            db, province=viewer.scope.province_filter, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
    pages = max(1, math.ceil(total / PAGE_SIZE))
    known = services.renderer.catalogs.keys()
    # Actions added by later pages show as their id until the catalog names them.
    rows = [{"entry": entry, "action_key": _action_key(entry.action, known)} for entry in entries]
    return await render(request, "audit.html", {"rows": rows, "page": page, "pages": pages, "total": total})


def _action_key(action: str, known: set[str]) -> str | None:
    key = f"staff.audit.action.{action}"
    return key if key in known else None
