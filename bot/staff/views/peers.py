"""Peer-educator links: create, list, deactivate or reactivate, QR codes; and the educator's own page.

Staff manage the links of their commune, a province admin those of the province, a national
admin all. A link's QR codes are served from here (PNG to print, SVG to scale), so pages show
them as ordinary images (no data: URIs under the strict CSP).

The peer educator's page (``/staff/peer/{token}``) is public: the token is the capability,
shown once when the link is made and stored only as a keyed hash. It shows the link's counts
for this month, half-year and year — small ones hidden — and never who. It is rate-limited by
address like the login form, and asks search engines not to index it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.clock import today
from bot.staff.auth import Viewer
from bot.staff.figures import Figure, day_text, figure
from bot.staff.forms import form_of, text
from bot.staff.places import chosen_province, commune_in_scope, communes_of
from bot.staff.render import locale_of, render, see_other
from bot.staff.state import PEER_THROTTLE, SERVICES
from content.geo import Commune
from referrals.labels import period_label
from referrals.peers import (
    ALIAS,
    PeerError,
    PeerUrls,
    bot_username,
    create_peer_link,
    list_peers,
    peer_by_stats_token,
    peer_link,
    qr_image,
    stats_url,
    switch_peer_link,
)
from referrals.periods import periods_of
from referrals.published import peer_link_figures
from storage.referral_models import PeerLink

DONE = {"deactivated", "activated"}
KINDS = {"svg": "image/svg+xml", "png": "image/png"}


def base_url(request: web.Request) -> str:
    settings = request.app[SERVICES].settings
    return (settings.public_url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")


def _bot(raw: str | None) -> str | None:
    """A Telegram bot username as typed; None when empty; 400 if malformed."""
    try:
        return bot_username(raw)
    except PeerError:
        raise web.HTTPBadRequest() from None


def _in_scope(viewer: Viewer, link: PeerLink | None) -> PeerLink:
    """The link, if the viewer's scope covers its commune; 404 otherwise (also for no link)."""
    if link is None or not viewer.scope.covers_commune(link.commune, link.province):
        raise web.HTTPNotFound()
    return link


@dataclass(frozen=True)
class LinkRow:
    code: str
    alias: str
    place: str
    created: str
    active: bool
    web: str
    telegram: str | None


def _row(request: web.Request, link: PeerLink, bot: str | None) -> LinkRow:
    commune = request.app[SERVICES].context.communes.get(link.commune)
    urls = PeerUrls.of(base_url(request), link.code, bot)
    return LinkRow(
        code=link.code,
        alias=link.alias,
        place=commune.label if commune else str(link.commune),
        created=day_text(link.created_on),
        active=link.active,
        web=urls.web,
        telegram=urls.telegram,
    )


def _commune_choices(viewer: Viewer, request: web.Request) -> list[Commune]:
    """A province admin picks one of their communes; a national admin types a code; staff have theirs."""
    if viewer.scope.commune is not None or viewer.scope.everywhere or viewer.scope.province is None:
        return []
    return communes_of(request.app[SERVICES].context.communes, viewer.scope.province)


async def _list_page(
    request: web.Request,
    viewer: Viewer,
    *,
    errors: list[str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    services = request.app[SERVICES]
    communes = services.context.communes
    province = chosen_province(viewer, communes, request.query.get("province"))
    bot = _bot(request.query.get("bot"))
    async with services.db.transaction() as db:
        links = await list_peers(db, province=province, commune=viewer.scope.commune)
    rows = [_row(request, link, bot) for link in links if viewer.scope.covers_commune(link.commune, link.province)]
    done = request.query.get("done")
    own = communes.get(viewer.scope.commune) if viewer.scope.commune is not None else None
    context = {
        "rows": rows,
        "bot": bot or "",
        "done": done if done in DONE else None,
        "errors": errors or [],
        "values": values or {"alias": "", "commune": "", "bot": bot or ""},
        "own": own,
        "choices": _commune_choices(viewer, request),
    }
    return await render(request, "peers.html", context, status=status)


async def peers_list(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _list_page(request, viewer)


async def peer_create(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    communes = services.context.communes
    form = await form_of(request)
    values = {
        "alias": text(form, "alias", limit=100),
        "commune": text(form, "ward", limit=10),  # the form field is named "ward"
        "bot": text(form, "bot", limit=40),
    }
    errors = []
    if viewer.scope.commune is not None and not values["commune"]:
        commune = communes.get(viewer.scope.commune)
    elif values["commune"]:
        commune = commune_in_scope(viewer, communes, values["commune"])  # 404 outside the scope
    else:
        commune = None
        errors.append("staff.peers.error.ward")
    alias = " ".join(values["alias"].split())
    if not ALIAS.match(alias):
        errors.append("staff.peers.error.alias")
    try:
        username = bot_username(values["bot"]) or ""
    except PeerError:
        username = ""
        errors.append("staff.peers.error.bot")
    if errors or commune is None:
        return await _list_page(request, viewer, errors=errors, values=values, status=400)
    try:
        async with services.db.transaction() as db:
            created = await create_peer_link(
                db, services.secrets.pepper, alias=alias, commune=commune.code, province=commune.province_code,
                now=services.clock.now(), actor=viewer.username,
            )
    except PeerError:  # pragma: no cover - the alias was checked above with the same rule
        return await _list_page(request, viewer, errors=["staff.peers.error.alias"], values=values, status=400)
    context = {
        "link": _row(request, created.link, username or None),
        "stats_url": stats_url(base_url(request), created.stats_token),
        "bot": username,
    }
    return await render(request, "peer_created.html", context)


async def _set_active(request: web.Request, viewer: Viewer, active: bool) -> web.StreamResponse:
    services = request.app[SERVICES]
    async with services.db.transaction() as db:
        link = _in_scope(viewer, await peer_link(db, request.match_info.get("code", "")))
        await switch_peer_link(db, link, active, now=services.clock.now(), actor=viewer.username)
    return see_other(f"/staff/peers?done={'activated' if active else 'deactivated'}")


async def peer_deactivate(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Stop the link attributing new counts (what it counted stays)."""
    return await _set_active(request, viewer, False)


async def peer_activate(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _set_active(request, viewer, True)


async def peer_qr(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The link's QR code as SVG or PNG: the web-chat link, or the Telegram one with ?bot=NAME."""
    services = request.app[SERVICES]
    kind = request.match_info.get("kind", "")
    if kind not in KINDS:
        raise web.HTTPNotFound()
    bot = _bot(request.query.get("bot"))
    async with services.db.transaction() as db:
        link = _in_scope(viewer, await peer_link(db, request.match_info.get("code", "")))
    urls = PeerUrls.of(base_url(request), link.code, bot)
    title = services.renderer.catalogs.text(locale_of(request), "staff.peers.qr_title", {"alias": link.alias})
    image = qr_image(urls.telegram or urls.web, kind, title=title)
    name = f"antam-peer-{link.code}-{'telegram' if bot else 'web'}.{kind}"
    return web.Response(
        body=image,
        content_type=KINDS[kind],
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


# --- the peer educator's own page (public) -------------------------------------------------------


@dataclass(frozen=True)
class PeerFigures:
    label: str
    counts: tuple[Figure, ...]


async def peer_page(request: web.Request, viewer: Viewer | None) -> web.StreamResponse:
    services = request.app[SERVICES]
    if not request.app[PEER_THROTTLE].allow(request):
        raise web.HTTPTooManyRequests()
    token = request.match_info.get("token", "")
    catalogs, locale = services.renderer.catalogs, locale_of(request)
    async with services.db.transaction() as db:
        link = await peer_by_stats_token(db, services.secrets.pepper, token)
        if link is None:
            raise web.HTTPNotFound()
        figures = await peer_link_figures(db, code=link.code, periods=periods_of(today(services.clock)))
    threshold = figures.threshold
    rows = [
        PeerFigures(period_label(period, catalogs, locale), tuple(figure(cell, threshold, locale) for cell in cells))
        for period, cells in zip(figures.periods, figures.cells, strict=True)
    ]
    commune = services.context.communes.get(link.commune)
    context = {
        "alias": link.alias,
        "place": commune.label if commune else str(link.commune),
        "active": link.active,
        "rows": rows,
        "small": f"<{threshold}",
    }
    response = await render(request, "peer_page.html", context)
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response
