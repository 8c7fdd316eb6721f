"""Who may do what in the staff app: the one place authorisation is decided.

Every route in the table (bot/staff/routes.py) names its access level, and add_staff_routes
wraps every view in ``require(access)`` — a view cannot be registered without one. Inside a
view, data is fetched only through the viewer's scope (``viewer.scope``), which comes from
the account row in the database on every request: never from a form field, a query parameter
or the session. Objects outside the scope are "not found" (404), so an edited URL does not
even learn whether they exist.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from aiohttp import web
from aiohttp_session import Session, get_session

from bot.staff.state import SERVICES
from storage.staff import Role, StaffAccount, get_account

IDLE_LIMIT = dt.timedelta(minutes=30)
ABSOLUTE_LIMIT = dt.timedelta(hours=12)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/staff/login"
COUNSELLING_PATH = "/staff/counselling"


class Access(Enum):
    PUBLIC = "public"  # anyone: login, language, static files
    SIGNED_IN = "signed_in"  # any signed-in account, even one that must change its password first
    STAFF = "staff"  # staff and admins with a usable account
    COUNSEL = "counsel"  # accounts that counsel (the counsellor role, staff or admins made counsellors)
    ADMIN = "admin"  # admins only


@dataclass(frozen=True)
class Area:
    """Where an account may look: one commune (staff), one province, or everywhere (admin)."""

    commune: int | None
    province: int | None
    everywhere: bool

    @classmethod
    def of(cls, account: StaffAccount) -> Area:
        if account.role in (Role.STAFF, Role.COUNSELLOR):
            return cls(commune=account.commune, province=account.province, everywhere=False)
        return cls(commune=None, province=account.province, everywhere=account.province is None)

    def covers_commune(self, commune: int, province: int) -> bool:
        """Data of one commune: its own staff, its province's admins, national admins."""
        if self.everywhere:
            return True
        if self.commune is not None:
            return self.commune == commune
        return self.province == province

    def covers_province(self, province: int) -> bool:
        """Data of a whole province (every commune in it): its admins and national admins only."""
        return self.everywhere or (self.commune is None and self.province == province)

    def sees_province_wide(self, province: int) -> bool:
        """Things that serve a whole province (a provincial service): everyone working there."""
        return self.everywhere or self.province == province

    @property
    def province_filter(self) -> int | None:
        """The province to filter a query by; None means every province (a national admin)."""
        return None if self.everywhere else self.province


@dataclass(frozen=True)
class Viewer:
    """The signed-in account, as read from the database for this request."""

    account_id: int
    username: str
    role: Role
    scope: Area
    must_change_password: bool
    has_totp: bool
    totp_required: bool
    counsels: bool = False

    @classmethod
    def of(cls, account: StaffAccount) -> Viewer:
        return cls(
            account_id=account.id,
            username=account.username,
            role=Role(account.role),
            scope=Area.of(account),
            must_change_password=account.must_change_password,
            has_totp=account.has_totp,
            totp_required=account.totp_required,
            counsels=account.counsels or account.role == Role.COUNSELLOR,
        )

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def needs_totp_enrolment(self) -> bool:
        return self.totp_required and not self.has_totp

    def may(self, access: Access) -> bool:
        """Whether this account may open a route of this access level right now."""
        if access in (Access.PUBLIC, Access.SIGNED_IN):
            return True
        if self.must_change_password or self.needs_totp_enrolment:
            return False
        if access is Access.COUNSEL:
            return self.counsels
        # A counsellor only counsels: no figure, list or form of the staff pages is theirs.
        return (access is Access.STAFF and self.role is Role.STAFF) or self.is_admin


VIEWER = web.RequestKey("staff.viewer", Viewer)


class CsrfError(web.HTTPForbidden):
    """The form did not carry this session's token."""


async def check_csrf(request: web.Request, session: Session) -> None:
    """Refuse a state-changing request whose form lacks the session's token."""
    expected = session.get("csrf")
    try:
        form = await request.post()
    except ValueError as exc:
        raise web.HTTPBadRequest() from exc
    given = form.get("csrf")
    if not isinstance(expected, str) or not isinstance(given, str) or not expected:
        raise CsrfError()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfError()


async def current_viewer(request: web.Request) -> Viewer | None:
    """The signed-in account for this request, re-checked against the database; None otherwise.

    A session that is idle too long, too old, made before the account's sessions were ended,
    or of an account that is gone or inactive is emptied on the spot.
    """
    if VIEWER in request:
        return request[VIEWER]
    session = await get_session(request)
    account_id = session.get("uid")
    if not isinstance(account_id, int):
        return None
    services = request.app[SERVICES]
    now = services.clock.now()
    try:
        login_at = dt.datetime.fromtimestamp(float(session["login_at"]), dt.UTC)
        seen_at = dt.datetime.fromtimestamp(float(session["seen_at"]), dt.UTC)
        version = int(session["gen"])
    except (KeyError, TypeError, ValueError, OverflowError):
        _expire(request, session)
        return None
    if now - seen_at > IDLE_LIMIT or now - login_at > ABSOLUTE_LIMIT or seen_at > now + IDLE_LIMIT:
        _expire(request, session)
        return None
    async with services.db.transaction() as db:
        account = await get_account(db, account_id)
    # A lockout (someone guessing at the login form) does not end sessions already open.
    if account is None or not account.active or account.session_version != version:
        _expire(request, session)
        return None
    session["seen_at"] = now.timestamp()
    viewer = Viewer.of(account)
    request[VIEWER] = viewer
    return viewer


_EXPIRED = web.RequestKey("staff.session_expired", bool)


def _expire(request: web.Request, session: Session) -> None:
    # Keep only a fresh CSRF token, so the login form right after still works.
    token = session.get("csrf")
    session.invalidate()
    if isinstance(token, str):
        session["csrf"] = token
    request[_EXPIRED] = True


async def require(request: web.Request, access: Access) -> Viewer | None:
    """Let the request through to a view of this access level, or answer for it.

    POST (any unsafe method) needs the session's CSRF token first. Then: anonymous → the
    login page; an account that must change its password or enrol a second factor → that
    page; a staff member at an admin page → 403.
    """
    session = await get_session(request)
    if request.method not in SAFE_METHODS:
        await check_csrf(request, session)
    viewer = await current_viewer(request)
    if access is Access.PUBLIC:
        return viewer
    if viewer is None:
        raise web.HTTPSeeOther(LOGIN_PATH + ("?expired=1" if request.get(_EXPIRED) else ""))
    if access is Access.SIGNED_IN or viewer.may(access):
        return viewer
    if viewer.must_change_password:
        raise web.HTTPSeeOther("/staff/password")
    if viewer.needs_totp_enrolment:
        raise web.HTTPSeeOther("/staff/totp")
    if viewer.role is Role.COUNSELLOR and request.path == "/staff/":
        raise web.HTTPSeeOther(COUNSELLING_PATH)  # a counsellor's home is their queue
    raise web.HTTPForbidden()


# --- object-level checks used inside views ------------------------------------------------------


def require_commune(viewer: Viewer, commune: int, province: int) -> None:
    """404 unless the viewer's scope covers this commune's data."""
    if not viewer.scope.covers_commune(commune, province):
        raise web.HTTPNotFound()


def require_province(viewer: Viewer, province: int) -> None:
    """404 unless the viewer's scope covers this whole province."""
    if not viewer.scope.covers_province(province):
        raise web.HTTPNotFound()


def may_manage(viewer: Viewer, account: StaffAccount) -> bool:
    """Admins manage accounts inside their scope: a province admin only that province's."""
    if not viewer.is_admin:
        return False
    if viewer.scope.everywhere:
        return True
    return account.province is not None and account.province == viewer.scope.province


def require_manageable(viewer: Viewer, account: StaffAccount | None) -> StaffAccount:
    """The account, when the viewer may manage it; 404 otherwise (also for no such account)."""
    if account is None or not may_manage(viewer, account):
        raise web.HTTPNotFound()
    return account


StaffView = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
PublicView = Callable[[web.Request, "Viewer | None"], Awaitable[web.StreamResponse]]
