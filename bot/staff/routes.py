"""Every route of the staff app, in one table, each with its access level.

Adding a page is one row here (and, when it belongs in the menu, one NavItem), one view, one
template, and one row in the authorisation matrix of tests/test_staff_authz.py — a test
fails while a route has no row there. Paths are relative to /staff.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.staff.auth import Access, PublicView, StaffView, require
from bot.staff.render import NavItem
from bot.staff.views import (
    accounts,
    assets,
    audit,
    counselling,
    counselling_hours,
    directory,
    export,
    home,
    login,
    own_account,
    peers,
    redeem,
    targets,
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    access: Access
    name: str | None
    handler: Handler


def public(method: str, path: str, view: PublicView, name: str | None = None) -> Route:
    """A route anyone may use (the view still gets the viewer, when someone is signed in)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await view(request, await require(request, Access.PUBLIC))

    return Route(method, path, Access.PUBLIC, name, handler)


def guarded(method: str, path: str, view: StaffView, access: Access, name: str | None = None) -> Route:
    """A route for signed-in accounts of at least ``access``; the view always gets its viewer."""
    if access is Access.PUBLIC:
        raise ValueError("use public() for public routes")

    async def handler(request: web.Request) -> web.StreamResponse:
        viewer = await require(request, access)
        if viewer is None:  # require() never lets an anonymous visitor through here
            raise web.HTTPForbidden()
        return await view(request, viewer)

    return Route(method, path, access, name, handler)


STAFF, ADMIN, SIGNED_IN, COUNSEL = Access.STAFF, Access.ADMIN, Access.SIGNED_IN, Access.COUNSEL
ACCOUNT = r"/accounts/{account_id:\d+}"
PEER = r"/peers/{code:[a-z0-9]+}"

ROUTES: tuple[Route, ...] = (
    guarded("GET", "/", home.home, STAFF, "home"),
    public("GET", "/login", login.login_form, "login"),
    public("POST", "/login", login.login_submit),
    public("GET", "/login/code", login.code_form, "login_code"),
    public("POST", "/login/code", login.code_submit),
    guarded("POST", "/logout", login.logout, SIGNED_IN, "logout"),
    public("POST", "/lang", login.set_language, "lang"),
    public("GET", "/static/{name}", assets.static_file, "static"),
    guarded("GET", "/password", own_account.password_form, SIGNED_IN, "password"),
    guarded("POST", "/password", own_account.password_submit, SIGNED_IN),
    guarded("GET", "/totp", own_account.totp_form, SIGNED_IN, "totp"),
    guarded("POST", "/totp", own_account.totp_submit, SIGNED_IN),
    guarded("GET", "/services", directory.unverified_services, STAFF, "services"),
    guarded("GET", "/accounts", accounts.accounts_list, ADMIN, "accounts"),
    guarded("POST", "/accounts", accounts.account_create, ADMIN),
    guarded("GET", "/accounts/new", accounts.account_new, ADMIN, "account_new"),
    guarded("GET", ACCOUNT, accounts.account_detail, ADMIN, "account"),
    guarded("POST", ACCOUNT + "/deactivate", accounts.account_deactivate, ADMIN, "account_deactivate"),
    guarded("POST", ACCOUNT + "/reactivate", accounts.account_reactivate, ADMIN, "account_reactivate"),
    guarded("POST", ACCOUNT + "/password", accounts.account_reset_password, ADMIN, "account_password"),
    guarded("POST", ACCOUNT + "/totp", accounts.account_totp, ADMIN, "account_totp"),
    guarded("POST", ACCOUNT + "/totp/reset", accounts.account_totp_reset, ADMIN, "account_totp_reset"),
    guarded("POST", ACCOUNT + "/counsels", accounts.account_counsels, ADMIN, "account_counsels"),
    guarded("GET", "/audit", audit.audit_log, ADMIN, "audit"),
    guarded("GET", "/redeem", redeem.redeem_form, STAFF, "redeem"),
    guarded("POST", "/redeem", redeem.redeem_submit, STAFF),
    guarded("GET", "/peers", peers.peers_list, STAFF, "peers"),
    guarded("POST", "/peers", peers.peer_create, STAFF),
    guarded("POST", PEER + "/deactivate", peers.peer_deactivate, STAFF, "peer_deactivate"),
    guarded("POST", PEER + "/activate", peers.peer_activate, STAFF, "peer_activate"),
    guarded("GET", PEER + "/qr.{kind:svg|png}", peers.peer_qr, STAFF, "peer_qr"),
    # The peer educator's own counts: public, the token in the path is the capability.
    public("GET", r"/peer/{token:[A-Za-z0-9_-]+}", peers.peer_page, "peer_page"),
    guarded("GET", "/targets", targets.targets_form, ADMIN, "targets"),
    guarded("POST", "/targets", targets.targets_submit, ADMIN),
    guarded("GET", "/export", export.export_form, STAFF, "export"),
    guarded("POST", "/export", export.export_download, STAFF),
    guarded("GET", "/counselling", counselling.page, COUNSEL, "counselling"),
    guarded("POST", "/counselling/duty", counselling.duty, COUNSEL),
    guarded("POST", "/counselling/act", counselling.act, COUNSEL),
    guarded("GET", "/counselling/poll", counselling.poll, COUNSEL),
    guarded("GET", "/counselling/ws", counselling.socket, COUNSEL),
    guarded("GET", "/counselling/hours", counselling_hours.hours_form, ADMIN, "counselling_hours"),
    guarded("POST", "/counselling/hours", counselling_hours.hours_submit, ADMIN),
)

# The menu, in order; each item shows only to those who may open it.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("staff.nav.home", "home", STAFF),
    NavItem("staff.nav.counselling", "counselling", COUNSEL, "staff.home.counselling"),
    NavItem("staff.nav.redeem", "redeem", STAFF, "staff.home.redeem"),
    NavItem("staff.nav.peers", "peers", STAFF, "staff.home.peers"),
    NavItem("staff.nav.export", "export", STAFF, "staff.home.export"),
    NavItem("staff.nav.targets", "targets", ADMIN, "staff.home.targets"),
    NavItem("staff.nav.counselling_hours", "counselling_hours", ADMIN, "staff.home.counselling_hours"),
    NavItem("staff.nav.services", "services", STAFF, "staff.home.services"),
    NavItem("staff.nav.accounts", "accounts", ADMIN, "staff.home.accounts"),
    NavItem("staff.nav.audit", "audit", ADMIN, "staff.home.audit"),
    NavItem("staff.nav.totp", "totp", SIGNED_IN, "staff.home.totp"),
    NavItem("staff.nav.password", "password", SIGNED_IN, "staff.home.password"),
)


def register(app: web.Application) -> None:
    """Add every route to the (staff) application; GET and POST of one path share a resource."""
    resources: dict[str, web.Resource] = {}
    for route in ROUTES:
        resource = resources.get(route.path)
        if resource is None:
            resource = app.router.add_resource(route.path, name=route.name)
            resources[route.path] = resource
        elif route.name is not None:
            raise ValueError(f"name the first route of {route.path} only")
        resource.add_route(route.method, route.handler)
