"""The master key file, the key ring stored in the database, and key rotation."""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.channel_secrets import channel_tokens_using_key, reencrypt_channel_tokens
from storage.crypto import (
    CryptoError,
    KeyRing,
    MasterSecrets,
    encode_master_key,
    generate_master_key,
    parse_master_key,
    sealed_key_id,
)
from storage.db import Database, wipe_after_commit
from storage.models import DataKey, Person, sealed_with_key
from storage.persons import record_context
from storage.referral_models import Referral, holder_context, pad_holder
from storage.counselling import counselling_using_key, reencrypt_counselling
from storage.outbox import outbox_using_key, reencrypt_outbox
from storage.staff import reencrypt_staff_secrets, staff_secrets_using_key

KEY_FILE_NAME = "master.key"
# A worker re-reads the key ring at least this often, so a key retired longer ago than
# RETIRED_KEY_GRACE is no longer used by any running worker to seal new values.
KEYRING_REFRESH = dt.timedelta(seconds=60)
RETIRED_KEY_GRACE = dt.timedelta(minutes=5)
_BATCH = 500


class MissingMasterKeyError(CryptoError):
    """The database holds encrypted data but no master key was given."""


class KeyFileError(CryptoError):
    """The key file cannot be read or created."""


def read_key_file(path: Path) -> bytes | None:
    """Return the key stored in ``path``, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise KeyFileError(f"the key file {path} must hold exactly one key line")
    return parse_master_key(lines[0])


def key_file_is_private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def create_key_file(path: Path) -> bytes:
    """Write a new random master key to ``path`` (mode 0600, never overwriting)."""
    key = generate_master_key()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = (
        "# An Tâm master key. Back it up somewhere safe and separate from the database:\n"
        "# without it, every encrypted record is lost; with it and the database, records can be read.\n"
        f"{encode_master_key(key)}\n"
    )
    # Write a temporary file, then link it into place: the key file either appears whole or
    # not at all, and an existing one is never overwritten.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError as exc:
        raise KeyFileError(f"the key file {path} already exists") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create the key file {path}: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return key


async def stored_key_count(db: Database) -> int:
    """Return how many data keys the database holds (0 when it has never been set up)."""
    if not await db.has_table(DataKey.__tablename__):
        return 0
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(DataKey)) or 0)


async def verify_master_key(db: Database, secrets: MasterSecrets) -> None:
    """Raise WrongMasterKeyError unless ``secrets`` opens every stored data key. Reads only."""
    if not await db.has_table(DataKey.__tablename__):
        return
    async with db.transaction() as session:
        for row in (await session.scalars(select(DataKey))).all():
            secrets.unwrap(row.id, row.wrapped)


async def load_keyring(
    session: AsyncSession, secrets: MasterSecrets, *, now: dt.datetime, create: bool = True
) -> KeyRing:
    """Open every stored data key; create the first one in a new database."""
    rows = (await session.scalars(select(DataKey).order_by(DataKey.id))).all()
    if not rows:
        if not create:
            raise MissingMasterKeyError("the database has no data keys yet")
        key_id = 1
        data_key = os.urandom(32)
        session.add(DataKey(id=key_id, wrapped=secrets.wrap(key_id, data_key), created_at=now))
        await session.flush()
        return KeyRing(secrets, {key_id: data_key}, key_id)
    keys = {row.id: secrets.unwrap(row.id, row.wrapped) for row in rows}
    active = [row.id for row in rows if row.retired_at is None]
    return KeyRing(secrets, keys, max(active) if active else max(keys))


@dataclass
class RotationReport:
    new_key_id: int
    retired_key_ids: list[int]
    reencrypted: int
    deleted_key_ids: list[int] = field(default_factory=list)
    kept_key_ids: list[int] = field(default_factory=list)


async def rotate_keys(db: Database, secrets: MasterSecrets, *, now: dt.datetime) -> RotationReport:
    """Add a new data key, re-encrypt every record under it, retire the old keys.

    Old keys stay readable until no record uses them and no running worker can still be
    sealing with them (RETIRED_KEY_GRACE); they are deleted here or by the next purge.
    """
    async with db.transaction() as session:
        rows = (await session.scalars(select(DataKey).with_for_update())).all()
        for row in rows:
            secrets.unwrap(row.id, row.wrapped)  # refuse to rotate under a wrong master key
        new_id = max((row.id for row in rows), default=0) + 1
        retired = [row.id for row in rows if row.retired_at is None]
        await session.execute(update(DataKey).where(DataKey.retired_at.is_(None)).values(retired_at=now))
        session.add(DataKey(id=new_id, wrapped=secrets.wrap(new_id, os.urandom(32)), created_at=now))
    reencrypted = await reencrypt_records(db, secrets, now=now)
    report = RotationReport(new_key_id=new_id, retired_key_ids=retired, reencrypted=reencrypted)
    deleted, kept = await prune_retired_keys(db, secrets, now=now)
    report.deleted_key_ids, report.kept_key_ids = deleted, kept
    return report


async def reencrypt_records(
    db: Database, secrets: MasterSecrets, *, now: dt.datetime, only_key_ids: set[int] | None = None
) -> int:
    """Seal every record (and the channels' sealed tokens) not under the active key again under it."""
    async with db.transaction() as session:
        ring = await load_keyring(session, secrets, now=now, create=False)
        count = await reencrypt_channel_tokens(session, ring)
        count += await _reencrypt_referral_holders(session, ring, only_key_ids)
        count += await reencrypt_staff_secrets(session, ring)
        count += await reencrypt_outbox(session, ring)
        count += await reencrypt_counselling(session, ring)
        if count:
            # The blobs sealed under the old key must not survive in the SQLite log.
            wipe_after_commit(session)
    after = b""
    while True:
        async with db.transaction() as session:
            ring = await load_keyring(session, secrets, now=now, create=False)
            query = select(Person).where(Person.pseudonym > after).order_by(Person.pseudonym).limit(_BATCH)
            people = (await session.scalars(query.with_for_update())).all()
            for person in people:
                key_id = sealed_key_id(person.record)
                if key_id == ring.active_id or (only_key_ids is not None and key_id not in only_key_ids):
                    continue
                context = record_context(person.pseudonym)
                person.record = ring.seal(ring.open(person.record, context), context)
                count += 1
                wipe_after_commit(session)
        if len(people) < _BATCH:
            return count
        after = people[-1].pseudonym


async def prune_retired_keys(
    db: Database, secrets: MasterSecrets, *, now: dt.datetime
) -> tuple[list[int], list[int]]:
    """Delete retired keys past their grace period once no record uses them.

    Returns (deleted key ids, retired key ids kept for now).
    """
    async with db.transaction() as session:
        retired = (await session.scalars(select(DataKey).where(DataKey.retired_at.is_not(None)))).all()
    due = {row.id for row in retired if _aware(row.retired_at) <= now - RETIRED_KEY_GRACE}
    kept = sorted({row.id for row in retired} - due)
    if not due:
        return [], kept
    # A worker that had not yet seen the rotation may have sealed with an old key: fix those first.
    await reencrypt_records(db, secrets, now=now, only_key_ids=due)
    deleted: list[int] = []
    async with db.transaction() as session:
        for key_id in sorted(due):
            in_use = await session.scalar(
                select(func.count())
                .select_from(Person)
                .where(sealed_with_key(Person.record, key_id))
            )
            in_use = int(in_use or 0) + await channel_tokens_using_key(session, key_id)
            in_use += await staff_secrets_using_key(session, key_id)
            in_use += await outbox_using_key(session, key_id)
            in_use += await counselling_using_key(session, key_id)
            in_use += int(
                await session.scalar(
                    select(func.count()).select_from(Referral).where(sealed_with_key(Referral.holder, key_id))
                )
                or 0
            )
            if in_use:
                kept.append(key_id)
                continue
            await session.execute(delete(DataKey).where(DataKey.id == key_id))
            deleted.append(key_id)
            wipe_after_commit(session)
    return deleted, sorted(kept)


async def _reencrypt_referral_holders(session: AsyncSession, ring: KeyRing, only_key_ids: set[int] | None) -> int:
    """Seal the referrals' holder links again under the active key (few rows: open codes only)."""
    rows = (await session.scalars(select(Referral).where(Referral.holder.is_not(None)).with_for_update())).all()
    count = 0
    for row in rows:
        assert row.holder is not None
        key_id = sealed_key_id(row.holder)
        if key_id == ring.active_id or (only_key_ids is not None and key_id not in only_key_ids):
            continue
        context = holder_context(row.code_hash)
        # Padded: a link sealed before holders had one size gets it now.
        row.holder = ring.seal(pad_holder(ring.open(row.holder, context).rstrip(b" ")), context)
        count += 1
    return count


def _aware(value: dt.datetime | None) -> dt.datetime:
    assert value is not None
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
