"""Sessions of the staff app: a signed and encrypted cookie, and limits on login attempts.

The cookie (aiohttp-session's EncryptedCookieStorage: Fernet, AES-CBC + HMAC) holds only the
account id and username, the account's session version, login and last-seen times and the
CSRF token — or, between password and code, the account waiting for its code. Its key is
derived from the master key, so every worker shares it and nothing extra is stored. A new
session (a new cookie and CSRF token) is made at login and logout; ending all of an account's
sessions is a bump of its session version in the database.

The address limiter holds addresses only as keyed hashes in memory; its key is random per
process, never stored or logged.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable

from aiohttp import web
from aiohttp_session import Session, get_session, new_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.channels.common import TokenBuckets
from bot.client_address import AddressKeys, Network
from bot.config import Settings
from storage.crypto import MasterSecrets
from storage.staff import StaffAccount

COOKIE = "antam_staff"
LANG_COOKIE = "antam_staff_lang"
COOKIE_PATH = "/staff"
_COOKIE_KEY_INFO = b"staff-session-cookie"
PENDING_LIMIT = dt.timedelta(minutes=5)


def secure_cookies(settings: Settings) -> bool:
    """Mark cookies Secure when An Tâm is served over HTTPS (ANTAM_PUBLIC_URL is https)."""
    return bool(settings.public_url and settings.public_url.startswith("https://"))


def cookie_storage(secrets_: MasterSecrets, settings: Settings) -> EncryptedCookieStorage:
    return EncryptedCookieStorage(
        secrets_.derive(_COOKIE_KEY_INFO),
        cookie_name=COOKIE,
        path=COOKIE_PATH,
        secure=secure_cookies(settings),
        httponly=True,
        samesite="Strict",
        # A browser-session cookie; idle and absolute limits are checked on the server.
        max_age=None,
    )


def _token() -> str:
    return secrets.token_urlsafe(32)


async def csrf_token(request: web.Request) -> str:
    """This session's CSRF token, made on first use (also for visitors not signed in)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = _token()
        session["csrf"] = token
    return token


async def existing_csrf_token(request: web.Request) -> str | None:
    """The CSRF token, when a session already has one (error pages do not start sessions)."""
    try:
        session = await get_session(request)
    except RuntimeError:  # outside the session middleware
        return None
    token = session.get("csrf")
    return token if isinstance(token, str) and token else None


async def start_session(request: web.Request, account: StaffAccount, now: dt.datetime) -> Session:
    """A new session for a signed-in account (the old cookie and token are replaced)."""
    session = await new_session(request)
    session.update(
        {
            "uid": account.id,
            "user": account.username,
            "gen": account.session_version,
            "login_at": now.timestamp(),
            "seen_at": now.timestamp(),
            "csrf": _token(),
        }
    )
    return session


async def start_pending(request: web.Request, account: StaffAccount, now: dt.datetime) -> Session:
    """A new session that only says "password accepted for this account, code expected"."""
    session = await new_session(request)
    session.update({"pending": account.id, "pending_at": now.timestamp(), "csrf": _token()})
    return session


async def pending_account(request: web.Request, now: dt.datetime) -> int | None:
    """The account waiting for its code, if the password step was recent enough."""
    session = await get_session(request)
    account_id, since = session.get("pending"), session.get("pending_at")
    if not isinstance(account_id, int) or not isinstance(since, (int, float)):
        return None
    started = dt.datetime.fromtimestamp(float(since), dt.UTC)
    if not dt.timedelta(0) <= now - started <= PENDING_LIMIT:
        return None
    return account_id


async def end_session(request: web.Request) -> Session:
    """Replace the session by an anonymous one with a fresh CSRF token."""
    session = await new_session(request)
    session["csrf"] = _token()
    return session


class AddressThrottle:
    """Attempts per address block: a burst, then one every ``every`` seconds.

    The block is an IPv6 /64 or an IPv4 /``ipv4_block`` (24 by default): a client that can
    take any address in its block (every IPv6 host, or a rented range) gets one allowance,
    not one per address. Wrong passwords also lock the account itself (storage/staff.py).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        burst: int = 20,
        every: float = 30.0,
        proxies: tuple[Network, ...] = (),
        ipv4_block: int = 24,
    ) -> None:
        self._keys = AddressKeys(proxies, ipv4_block=ipv4_block)
        self._buckets: TokenBuckets[bytes] = TokenBuckets(burst, 1.0 / every, keys=50_000, clock=clock)

    def _key(self, request: web.Request) -> bytes:
        return self._keys.block(request)

    def allow(self, request: web.Request) -> bool:
        return self._buckets.take(self._key(request)) == 0.0
