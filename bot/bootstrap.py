"""Open everything An Tâm needs, in an order that never touches data under a wrong key.

1. connect and count stored data keys (read only);
2. find the master key (environment, then key file); create a key file only for a database
   that holds no encrypted data yet;
3. check that the key opens every stored data key (read only);
4. only then apply migrations and load the key ring.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock, SystemClock
from bot.config import Settings
from content.geo import commune_index
from content.i18n import load_catalogs
from content.intents import load_phrases
from content.safety import load_safety_net
from content.understand import build_understander
from content.pack import load_pack, stale_reviews
from handlers.common import Context
from handlers.render import Renderer
from storage.crypto import KeyRing, MasterSecrets, UnknownKeyError, parse_master_key
from storage.db import Database
from storage.transactions import Attempt, run_in_transaction
from storage.keys import (
    KEYRING_REFRESH,
    MissingMasterKeyError,
    create_key_file,
    key_file_is_private,
    load_keyring,
    read_key_file,
    stored_key_count,
    verify_master_key,
)


log = logging.getLogger(__name__)
T = TypeVar("T")


class StartupError(Exception):
    """An Tâm cannot start; the message says why and what to do."""


def load_content(
    *, retention_days: int = 180, transcript_hours: int = 24, today: dt.date | None = None
) -> tuple[Context, Renderer]:
    pack = load_pack()
    for stale in stale_reviews(pack, today or dt.date.today()):
        # Old advice is still better than none: An Tâm starts, and says what to review.
        log.warning("content: %s", stale)
    catalogs = load_catalogs()
    context = Context(
        pack=pack,
        understander=build_understander(pack, load_phrases(), load_safety_net(topics=frozenset(pack.topics))),
        communes=commune_index(),
        retention_days=retention_days,
        transcript_hours=transcript_hours,
    )
    return context, Renderer(catalogs, pack, context.communes)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


async def open_secrets(
    settings: Settings, db: Database, *, warn: Callable[[str], None] = _warn
) -> MasterSecrets:
    """Find the master key and prove it matches the database, without writing anything."""
    stored_keys = await stored_key_count(db)
    if settings.master_key is not None:
        master = parse_master_key(settings.master_key.get_secret_value())
    else:
        master_or_none = read_key_file(settings.key_file)
        if master_or_none is None:
            if stored_keys:
                raise MissingMasterKeyError(
                    f"no master key: the database holds encrypted data, but ANTAM_MASTER_KEY is not set "
                    f"and {settings.key_file} does not exist. Restore the key from your backup."
                )
            master_or_none = create_key_file(settings.key_file)
            warn(_new_key_message(settings))
        elif not key_file_is_private(settings.key_file):
            warn(f"Cảnh báo / warning: {settings.key_file} can be read by other users; run chmod 600 on it.")
        master = master_or_none
    secrets = MasterSecrets.from_master_key(master)
    await verify_master_key(db, secrets)
    return secrets


def _new_key_message(settings: Settings) -> str:
    message = (
        f"Đã tạo khóa chính mới: {settings.key_file}\n"
        "  Hãy sao lưu tệp này ở nơi an toàn, tách khỏi cơ sở dữ liệu. Mất khóa là mất mọi bản ghi mã hóa.\n"
        f"A new master key was created at {settings.key_file}. Back it up now, apart from the\n"
        "  database: without it no encrypted record can ever be read again."
    )
    if settings.key_beside_data:
        message += (
            f"\n  CẢNH BÁO: khóa nằm trong thư mục dữ liệu {settings.data_dir}. Ai có bản sao thư mục này là có\n"
            "  tất cả: đọc được mọi bản ghi. Để giữ khóa ở nơi khác, đặt ANTAM_MASTER_KEY_FILE (một đường dẫn\n"
            "  ngoài thư mục dữ liệu) hoặc ANTAM_MASTER_KEY.\n"
            f"  WARNING: the key is inside the data directory {settings.data_dir}. A copy of that directory is a\n"
            "  copy of everything: whoever has it can read every record. To keep the key elsewhere, set\n"
            "  ANTAM_MASTER_KEY_FILE (a path outside the data directory) or ANTAM_MASTER_KEY."
        )
    return message


class KeyRingCache:
    """The key ring, re-read now and then so every worker sees a rotation."""

    def __init__(self, secrets: MasterSecrets, clock: Clock) -> None:
        self.secrets = secrets
        self.clock = clock
        self._ring: KeyRing | None = None
        self._loaded_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    async def get(self, session: AsyncSession, *, refresh: bool = False) -> KeyRing:
        now = self.clock.now()
        if refresh or self._ring is None or now - self._loaded_at > KEYRING_REFRESH:
            self._ring = await load_keyring(session, self.secrets, now=now)
            self._loaded_at = now
        return self._ring


@dataclass
class Services:
    settings: Settings
    db: Database
    secrets: MasterSecrets
    keys: KeyRingCache
    context: Context
    renderer: Renderer
    clock: Clock = field(default_factory=SystemClock)

    async def run(self, work: Callable[[Attempt], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Run a use case in one transaction with the key ring (storage/transactions.py retries)."""
        return await run_in_transaction(self.db, self.keys, work, timeout=timeout)

    async def close(self) -> None:
        await self.db.dispose()


async def _ring_loaded(attempt: Attempt) -> None:
    """Nothing more to do once the transaction has loaded (and, on an empty database, created) the ring."""


async def open_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    migrate: bool = True,
    warn: Callable[[str], None] = _warn,
) -> Services:
    """Open the database and keys and load the content; raise on any problem."""
    clock = clock or SystemClock()
    context, renderer = load_content(
        retention_days=settings.retention_days, transcript_hours=settings.counselling_transcript_hours
    )
    if settings.master_key is not None:
        # A malformed key is refused before anything, even an empty database file, is created.
        parse_master_key(settings.master_key.get_secret_value())
    db = Database(settings.effective_database_url, timeout=settings.db_timeout_seconds)
    try:
        secrets = await open_secrets(settings, db, warn=warn)
        if migrate:
            await db.upgrade()
        keys = KeyRingCache(secrets, clock)
        # Two workers starting on an empty database both create data key #1: the one whose
        # insert fails reads the other's on the retry.
        await run_in_transaction(db, keys, _ring_loaded, attempts=2)
    except BaseException:
        await db.dispose()
        raise
    return Services(settings, db, secrets, keys, context, renderer, clock)


__all__ = ["KeyRingCache", "Services", "StartupError", "UnknownKeyError", "open_services", "load_content"]
