"""Pages: Jinja2 templates (autoescaped) with the interface strings of the chosen language.

Templates call ``t("staff.some.key", name=value)`` for every visible string; the strings live
in content/locale/{vi,en}/LC_MESSAGES/staff.po. The language is a cookie (Vietnamese unless
the person chose English), so a session carries nothing but what it needs to authenticate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from referrals.localtime import VIETNAM
from bot.staff.auth import Access, Viewer, current_viewer
from bot.staff.sessions import LANG_COOKIE, csrf_token, existing_csrf_token
from bot.staff.state import SERVICES
from content.i18n import Catalogs

TEMPLATES = Path(__file__).with_name("templates")
LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"


@dataclass(frozen=True)
class NavItem:
    """A link in the menu and on the home page, shown to those who may open it."""

    label: str  # catalog key
    route: str  # route name
    access: Access
    description: str = ""  # catalog key for the home page card, if any


@dataclass(frozen=True)
class Navigation:
    items: tuple[NavItem, ...]


NAV = web.AppKey("staff.nav", Navigation)


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def locale_of(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    return chosen if chosen in LOCALES else DEFAULT_LOCALE


def translator(catalogs: Catalogs, locale: str) -> Callable[..., str]:
    def t(key: str, **params: object) -> str:
        return catalogs.text(locale, key, params)

    return t


def format_time(value: dt.datetime | None) -> str:
    """A stored time as Vietnam's local time, e.g. 02/03/2026 10:05."""
    if value is None:
        return "—"
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def url(request: web.Request, name: str, **parts: object) -> str:
    return str(request.app.router[name].url_for(**{k: str(v) for k, v in parts.items()}))


def visible_nav(request: web.Request, viewer: Viewer | None) -> list[dict[str, object]]:
    if viewer is None:
        return []
    navigation = request.app.get(NAV)
    items: Sequence[NavItem] = navigation.items if navigation else ()
    shown: list[dict[str, object]] = []
    for item in items:
        if not viewer.may(item.access):
            continue
        href = url(request, item.route)
        shown.append(
            {"label": item.label, "href": href, "description": item.description, "current": _current(request.path, href)}
        )
    return shown


def _current(path: str, href: str) -> str:
    """The item's aria-current: "page" on its own page, "true" on a page under it (an account), else ""."""
    if path == href:
        return "page"
    if not href.endswith("/") and path.startswith(href + "/"):
        return "true"
    return ""


async def base_context(request: web.Request, *, new_token: bool = True) -> dict[str, Any]:
    services = request.app[SERVICES]
    locale = locale_of(request)
    try:
        viewer = await current_viewer(request)
    except RuntimeError:  # outside the session middleware
        viewer = None
    csrf = await csrf_token(request) if new_token else await existing_csrf_token(request)
    communes = services.context.communes

    def place(commune: int | None = None, province: int | None = None) -> str:
        if commune is not None:
            found = communes.get(commune)
            return found.label if found else str(commune)
        if province is not None:
            return communes.provinces.get(province, str(province))
        return translator(services.renderer.catalogs, locale)("staff.scope.everywhere")

    return {
        "t": translator(services.renderer.catalogs, locale),
        "lang": locale,
        "other_lang": "en" if locale == "vi" else "vi",
        "csrf": csrf,
        "viewer": viewer,
        "nav": visible_nav(request, viewer),
        "path": request.path_qs if request.method == "GET" else request.path,
        "url": lambda name, **parts: url(request, name, **parts),
        "when": format_time,
        "place": place,
    }


async def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    values = await base_context(request)
    values.update(context or {})
    return aiohttp_jinja2.render_template(template, request, values, status=status)


def see_other(location: str) -> web.Response:
    """A 303 redirect after a form (the browser then loads ``location`` with GET)."""
    return web.Response(status=303, headers={"Location": location})
