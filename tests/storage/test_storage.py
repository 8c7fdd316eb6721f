"""Storage on every backend: records, restarts, keys, rotation, retention, concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from bot.bootstrap import Services, open_services
from bot.clock import FixedClock
from bot.config import Settings
from bot.maintenance import purge
from bot.runtime import Runtime
from handlers.types import Inbound
from storage.crypto import WrongMasterKeyError, encode_master_key, generate_master_key, sealed_key_id
from storage.db import Database
from storage.keys import MissingMasterKeyError, rotate_keys
from storage.models import DataKey, Person
from storage.persons import record_context


def msg(user: str, text: str | None = None, payload: str | None = None) -> Inbound:
    return Inbound("console", user, text=text, payload=payload)


async def count_persons(services: Services) -> int:
    async with services.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Person)) or 0)


async def key_ids(services: Services) -> list[int]:
    async with services.db.transaction() as session:
        return sorted((await session.scalars(select(DataKey.id))).all())


async def record_key_ids(services: Services) -> list[int]:
    async with services.db.transaction() as session:
        return sorted(sealed_key_id(r) for r in (await session.scalars(select(Person.record))).all())


async def consent(runtime: Runtime, user: str) -> None:
    await runtime.handle(msg(user, "/start"))
    await runtime.handle(msg(user, payload="c:accept"))


async def test_nothing_is_stored_before_consent(runtime: Runtime, services: Services) -> None:
    """Greeting, browsing and declining store no row at all; accepting stores exactly one."""
    for inbound in (msg("a", "/start"), msg("a", payload="t:prep"), msg("a", "xn hiv"), msg("a", payload="c:decline")):
        await runtime.handle(inbound)
    assert await count_persons(services) == 0
    await runtime.handle(msg("a", payload="c:accept"))
    assert await count_persons(services) == 1


async def test_conversation_survives_restart(settings: Settings, clock: FixedClock) -> None:
    """A restart in the middle of a conversation continues where it was (pending erasure here)."""
    first = await open_services(settings, clock=clock, warn=lambda _m: None)
    try:
        runtime = Runtime(first)
        await consent(runtime, "r")
        await runtime.handle(msg("r", payload="l:en"))
        asked = await runtime.handle(msg("r", "xóa dữ liệu"))
        assert "p:erase:yes" in [b.payload for b in asked[0].buttons]
    finally:
        await first.close()
    second = await open_services(settings, clock=clock, warn=lambda _m: None)
    try:
        replies = await Runtime(second).handle(msg("r", "yes"))
        assert replies[0].text.startswith("All your data has been erased"), "English and the pending step survived"
        assert await count_persons(second) == 0
    finally:
        await second.close()


async def test_erasure_removes_only_that_person(runtime: Runtime, services: Services) -> None:
    """Erasing one person deletes their row and leaves everyone else's."""
    await consent(runtime, "keep")
    await consent(runtime, "gone")
    await runtime.handle(msg("gone", payload="p:erase"))
    await runtime.handle(msg("gone", payload="p:erase:yes"))
    assert await count_persons(services) == 1
    pseudonym = services.secrets.pseudonym("console", "keep")
    async with services.db.transaction() as session:
        assert await session.get(Person, pseudonym) is not None


async def test_retention_purges_inactive_records(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """`purge` removes records inactive longer than the retention period, and no others."""
    await consent(runtime, "old")
    clock.advance(days=100)
    await consent(runtime, "recent")
    clock.advance(days=80)  # "old" is 180 days inactive: still kept
    assert (await purge(services)).removed_records == 0
    clock.advance(days=1)
    report = await purge(services)
    assert report.removed_records == 1
    assert await count_persons(services) == 1
    # The remaining person's record still opens.
    replies = await runtime.handle(msg("recent", payload="p"))
    assert "đang giữ một bản ghi" in replies[0].text


async def test_activity_postpones_retention(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """Each message marks the person active today, restarting the retention period."""
    await consent(runtime, "active")
    clock.advance(days=170)
    await runtime.handle(msg("active", "menu"))
    clock.advance(days=170)
    assert (await purge(services)).removed_records == 0


async def test_key_rotation(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """Rotation re-encrypts every record under a new key; the old key goes once unused and past grace."""
    for user in ("a", "b", "c"):
        await consent(runtime, user)
    assert await record_key_ids(services) == [1, 1, 1]
    report = await rotate_keys(services.db, services.secrets, now=clock.now())
    assert (report.new_key_id, report.reencrypted, report.retired_key_ids) == (2, 3, [1])
    assert report.kept_key_ids == [1] and not report.deleted_key_ids
    assert await record_key_ids(services) == [2, 2, 2]
    assert await key_ids(services) == [1, 2]
    clock.advance(minutes=6)
    cleaned = await purge(services)
    assert cleaned.deleted_key_ids == [1]
    assert await key_ids(services) == [2]
    replies = await runtime.handle(msg("b", payload="p"))
    assert "đang giữ một bản ghi" in replies[0].text


async def test_stale_worker_after_rotation(settings: Settings, clock: FixedClock) -> None:
    """A worker that has not seen a rotation still works, and nothing it wrote is lost."""
    worker = await open_services(settings, clock=clock, warn=lambda _m: None)
    other = await open_services(settings, clock=clock, warn=lambda _m: None)
    try:
        await consent(Runtime(worker), "w")
        await rotate_keys(other.db, other.secrets, now=clock.now())
        # `worker` still seals new records with key 1 until its key ring refreshes.
        await consent(Runtime(worker), "newcomer")
        assert await record_key_ids(other) == [1, 2]
        clock.advance(minutes=6)
        report = await purge(other)
        assert report.deleted_key_ids == [1]
        assert await record_key_ids(other) == [2, 2]
        # The stale worker meets key 2, reloads its ring and carries on.
        assert "đang giữ một bản ghi" in (await Runtime(worker).handle(msg("newcomer", payload="p")))[0].text
        replies = await Runtime(worker).handle(msg("w", payload="p"))
        assert "đang giữ một bản ghi" in replies[0].text
    finally:
        await worker.close()
        await other.close()


async def _snapshot(settings: Settings) -> object:
    """The database's content, to show a failed start changed nothing."""
    from storage.db import Database

    if settings.effective_database_url.startswith("sqlite"):
        path = Path(settings.effective_database_url.split("///", 1)[1])
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.parent.glob("antam.db*")}
    db = Database(settings.effective_database_url)
    try:
        async with db.transaction() as session:
            people = (await session.execute(select(Person.pseudonym, Person.record, Person.last_active_on))).all()
            keys = (await session.execute(select(DataKey.id, DataKey.wrapped, DataKey.retired_at))).all()
            version = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
        return sorted(map(tuple, people)), sorted(map(tuple, keys)), version
    finally:
        await db.dispose()


async def test_wrong_master_key_touches_nothing(settings: Settings, clock: FixedClock) -> None:
    """Starting with another master key fails clearly and leaves the database as it was."""
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    await consent(Runtime(services), "x")
    await services.close()
    before = await _snapshot(settings)
    from pydantic import SecretStr

    wrong = settings.model_copy(update={"master_key": SecretStr(encode_master_key(generate_master_key()))})
    with pytest.raises(WrongMasterKeyError, match="does not match"):
        await open_services(wrong, clock=clock, warn=lambda _m: None)
    assert await _snapshot(settings) == before


async def test_missing_master_key_with_data(settings: Settings, clock: FixedClock, tmp_path: Path) -> None:
    """Without a key for a database that holds data, start fails and no new key is made."""
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    await consent(Runtime(services), "x")
    await services.close()
    keyless = settings.model_copy(update={"master_key": None, "data_dir": tmp_path / "elsewhere"})
    with pytest.raises(MissingMasterKeyError, match="no master key"):
        await open_services(keyless, clock=clock, warn=lambda _m: None)
    assert not (tmp_path / "elsewhere" / "master.key").exists()


async def test_new_database_generates_private_key_file(settings: Settings, clock: FixedClock, tmp_path: Path) -> None:
    """A new install with no key creates a 0600 key file, warns to back it up, and reuses it."""
    keyless = settings.model_copy(update={"master_key": None, "data_dir": tmp_path / "fresh"})
    warnings: list[str] = []
    services = await open_services(keyless, clock=clock, warn=warnings.append)
    await consent(Runtime(services), "k")
    await services.close()
    key_file = tmp_path / "fresh" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any("master.key" in w and "Back it up" in w for w in warnings)
    again = await open_services(keyless, clock=clock, warn=warnings.append)
    try:
        replies = await Runtime(again).handle(msg("k", payload="p"))
        assert "đang giữ một bản ghi" in replies[0].text
    finally:
        await again.close()


async def test_moved_ciphertext_fails_to_open(runtime: Runtime, services: Services) -> None:
    """A record copied into another person's row is refused, never read as theirs."""
    from storage.crypto import DecryptionError

    await consent(runtime, "a")
    await consent(runtime, "b")
    a, b = (services.secrets.pseudonym("console", u) for u in ("a", "b"))
    async with services.db.transaction() as session:
        blob = await session.scalar(select(Person.record).where(Person.pseudonym == a))
        await session.execute(update(Person).where(Person.pseudonym == b).values(record=blob))
    with pytest.raises(DecryptionError):
        await runtime.handle(msg("b", "menu"))
    ring = await _ring(services)
    assert ring.open(blob, record_context(a))  # type: ignore[arg-type]


async def _ring(services: Services):  # type: ignore[no-untyped-def]
    async with services.db.transaction() as session:
        return await services.keys.get(session)


async def test_sealed_column_refuses_plaintext(services: Services) -> None:
    """The record column accepts only sealed values: plaintext cannot be written by mistake."""
    import datetime as dt

    from sqlalchemy.exc import StatementError

    with pytest.raises((TypeError, StatementError)):
        async with services.db.transaction() as session:
            session.add(Person(pseudonym=b"p" * 32, last_active_on=dt.date(2026, 1, 1), record=b'{"step":"menu"}'))


async def test_concurrent_first_messages(runtime: Runtime, services: Services) -> None:
    """Several updates from one new person at once leave exactly one valid record."""
    await runtime.handle(msg("c", payload="c:accept"))
    await asyncio.gather(*(runtime.handle(msg("c", payload=p)) for p in ("i", "m", "t:prep", "s", "e", "p")))
    assert await count_persons(services) == 1
    replies = await runtime.handle(msg("c", payload="p"))
    assert "đang giữ một bản ghi" in replies[0].text


async def test_concurrent_accepts_by_one_new_person(runtime: Runtime, services: Services) -> None:
    """Two simultaneous first inserts for the same pseudonym resolve to one row without error."""
    await asyncio.gather(*(runtime.handle(msg("twice", payload="c:accept")) for _ in range(4)))
    assert await count_persons(services) == 1


def test_head_revision_is_alembics_head() -> None:
    """storage.db.HEAD_REVISION names the newest migration (update it with each new one)."""
    from alembic.script import ScriptDirectory

    from storage.db import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


async def test_starting_on_an_up_to_date_database_does_not_load_alembic(tmp_path: Path) -> None:
    """A worker restarted on a migrated database keeps Alembic (11 MiB) out of its memory."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'antam.db'}"
    db = Database(url)
    await db.upgrade()
    await db.dispose()
    code = (
        "import asyncio, sys\n"
        "from storage.db import Database\n"
        f"db = Database({url!r})\n"
        "asyncio.run(db.upgrade())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == "[]"


async def test_migrations_are_idempotent(services: Services) -> None:
    """Upgrading an up-to-date database changes nothing and does not fail."""
    await services.db.upgrade()
    await services.db.upgrade()
    assert await key_ids(services) == [1]
