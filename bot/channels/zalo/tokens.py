"""The Zalo OA access token: cached in memory, sealed in the database, refreshed once for all workers.

The OA access token expires after about 25 hours; each refresh also replaces the refresh
token, which works once, so the pair is kept sealed in the database (storage.channel_secrets)
and refreshed under a row lock: two workers never spend the same refresh token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp

from bot.bootstrap import Services
from bot.config import ConfigError, Settings
from storage.channel_secrets import Tokens, claim_tokens, seed_of, store_tokens
from storage.crypto import DecryptionError, UnknownKeyError
from storage.transactions import Attempt, retryable, run_in_transaction

CHANNEL = "zalo"  # the key of the sealed token row
REFRESH_MARGIN = dt.timedelta(minutes=10)
# Short: the token row (on SQLite, the whole database's write lock) is held while OAuth answers.
OAUTH_TIMEOUT = aiohttp.ClientTimeout(total=5)

log = logging.getLogger("antam.zalo")



class TokensNotStored(Exception):
    """Zalo refreshed the tokens but they could not be stored; not retried (the refresh token is spent)."""

class ZaloTokens:
    """The OA access token: cached in memory, sealed in the database, refreshed once for all workers."""

    def __init__(
        self, services: Services, configured: Tokens | None, oauth: Callable[[str], Awaitable[Tokens | None]]
    ) -> None:
        self.services = services
        self.configured = configured
        self.oauth = oauth
        self.cached: Tokens | None = None
        self._lock = asyncio.Lock()
        self._syncing: asyncio.Future[Tokens | None] | None = None

    def _expiring(self, tokens: Tokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at - self.services.clock.now() < REFRESH_MARGIN

    async def get(self) -> str | None:
        """A token to send with: the cached one, or a fresh one when it expires within 10 minutes."""
        cached = self.cached
        if cached is not None and not self._expiring(cached):
            return cached.access_token
        return await self.renew(stale=None)

    async def renew(self, *, stale: str | None) -> str | None:
        """Load or refresh the token; ``stale`` (refused by Zalo) is never handed out again."""
        async with self._lock:
            cached = self.cached
            if cached is not None and cached.access_token != stale and not self._expiring(cached):
                return cached.access_token  # another task of this worker renewed it meanwhile
            try:
                tokens = await self._sync_in_time(stale)
            except Exception as exc:  # the database or Zalo failed: the token at hand, if any
                log.error("zalo: could not load or refresh the access token: %s", type(exc).__name__)
                return self._at_hand(stale)
            self.cached = tokens
            if tokens is None or not tokens.access_token or tokens.access_token == stale:
                return None
            return tokens.access_token

    async def _sync_in_time(self, stale: str | None) -> Tokens | None:
        """``_sync``, waited for at most the database timeout plus OAuth's.

        A stalled database must not hold every send behind this lock. The sync itself is not
        cut short (shielded): once Zalo has issued a new pair it must still be stored, or the
        spent refresh token would be all that is left; it finishes when the database answers.
        """
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.ensure_future(self._sync(stale))
            # Read a late failure here, so that it is not reported with a traceback at exit.
            self._syncing.add_done_callback(lambda done: done.cancelled() or done.exception())
        limit = self.services.db.timeout + (OAUTH_TIMEOUT.total or 0.0)
        return await asyncio.wait_for(asyncio.shield(self._syncing), timeout=limit)

    def _at_hand(self, stale: str | None) -> str | None:
        """The cached access token while it has not expired (the refresh can wait), else None."""
        cached = self.cached
        if cached is None or not cached.access_token or cached.access_token == stale:
            return None
        if cached.expires_at is not None and cached.expires_at <= self.services.clock.now():
            return None
        return cached.access_token

    async def _sync(self, stale: str | None) -> Tokens | None:
        services = self.services
        refreshed = False

        async def work(attempt: Attempt) -> Tokens | None:
            nonlocal refreshed
            session, ring = attempt.session, attempt.ring
            now = services.clock.now()
            try:
                tokens = await claim_tokens(session, ring, CHANNEL, self.configured, now=now)
            except UnknownKeyError:
                if not attempt.last:
                    raise  # the key ring may be older than a rotation: the helper reloads it once
                tokens = None
            except DecryptionError:
                tokens = None
            if tokens is None and self.configured is not None:
                # Unreadable (its data key was deleted?) or absent: start again from the configuration.
                log.error("zalo: stored tokens cannot be opened; starting again from ZALO_REFRESH_TOKEN")
                tokens = replace(self.configured, seeds=(seed_of(ring, CHANNEL, self.configured),))
                await store_tokens(session, ring, CHANNEL, tokens, now=now)
            if tokens is None:
                return None
            if not (self._expiring(tokens) or tokens.access_token == stale):
                return tokens  # fresh, or already refreshed by another worker
            if tokens.refresh_token is None:
                log.error("zalo: the access token expired or was refused, and there is no refresh token")
                return tokens
            # The row stays locked while Zalo answers: nobody else can spend this refresh token.
            fresh = await self.oauth(tokens.refresh_token)
            if fresh is None:
                return tokens
            fresh = replace(fresh, seeds=tokens.seeds)
            try:
                await store_tokens(session, ring, CHANNEL, fresh, now=now)
            except Exception as exc:
                if not retryable(exc):
                    raise
                # Zalo has spent the old refresh token: another attempt would spend it again.
                raise TokensNotStored("zalo: the refreshed tokens could not be stored") from exc
            refreshed = True
            return fresh

        try:
            # Two attempts, as before: a rotated key ring is read again once. Nothing is retried
            # once Zalo has answered (TokensNotStored is no retryable failure).
            found = await run_in_transaction(services.db, services.keys, work, attempts=2)
        except UnknownKeyError:
            return None
        if refreshed:
            log.info("zalo: access token refreshed")
        return found



def configured_tokens(settings: Settings) -> Tokens | None:
    """The pair the settings give (ZALO_ACCESS_TOKEN, ZALO_REFRESH_TOKEN), or None."""
    access = settings.zalo_access_token.get_secret_value() if settings.zalo_access_token else ""
    refresh = settings.zalo_refresh_token.get_secret_value() if settings.zalo_refresh_token else None
    if not access and not refresh:
        return None
    # An access token's age is unknown: it is used until Zalo refuses it. Without one, refresh at once.
    expires = None if access else dt.datetime.fromtimestamp(0, dt.UTC)
    return Tokens(access, refresh or None, expires)


def app_secret_of(settings: Settings) -> str:
    """The OAuth app secret; refused at start when refresh tokens need one and none is set.

    The app secret and the OA secret key are two different keys of a Zalo app: falling back
    from one to the other would only fail at the first refresh, a day after the start.
    """
    if settings.zalo_app_secret_key is not None:
        return settings.zalo_app_secret_key.get_secret_value()
    if settings.zalo_refresh_token is not None:
        raise ConfigError(
            "ZALO_APP_SECRET_KEY must be set when ZALO_REFRESH_TOKEN is: the access token is "
            "refreshed with the Zalo app's secret key (not the OA secret key)"
        )
    return ""  # no refresh will ever be made
