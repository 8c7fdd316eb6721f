"""Services in the directory that nobody has confirmed yet, with the note for staff.

Staff see those of their commune and the province-wide ones of their province; a province
admin every one in the province; a national admin all.
"""

from __future__ import annotations

from aiohttp import web

from bot.staff.auth import Area, Viewer
from bot.staff.render import locale_of, render
from bot.staff.state import SERVICES
from content.pack import Service


def visible_to(scope: Area, service: Service) -> bool:
    if service.coverage == "commune" and service.commune is not None:
        return scope.covers_commune(service.commune, service.province)
    return scope.sees_province_wide(service.province)


async def unverified_services(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    locale = locale_of(request)
    communes = services.context.communes
    found = [s for s in services.context.pack.services if not s.verified and visible_to(viewer.scope, s)]
    found.sort(key=lambda s: (s.province, s.coverage == "province", s.commune or 0, s.id))
    rows = []
    for service in found:
        commune = communes.get(service.commune) if service.commune is not None else None
        texts = service.texts(locale)
        rows.append(
            {
                "id": service.id,
                "name": texts.name,
                "address": texts.address,
                "hours": texts.hours,
                "phone": service.phone,
                "types": service.types,
                "where": commune.label if commune else communes.provinces.get(service.province, str(service.province)),
                "province_wide": service.coverage == "province",
                "note": service.staff_note,
                "source": service.source,
            }
        )
    return await render(request, "services.html", {"rows": rows})
