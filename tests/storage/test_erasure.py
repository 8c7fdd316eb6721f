"""Erasure erases: after "Xóa dữ liệu", a retention purge or a key rotation, no file of the data
directory (database, -wal, -shm, journals) holds the person's pseudonym or an old sealed blob.

The tests drive the real engine (consent, a commune, a referral code, erasure), note every
sealed value the person's rows ever had, and scan the raw bytes of every file right after.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text

import storage.db

from bot.bootstrap import Services
from bot.clock import FixedClock
from bot.maintenance import purge
from bot.runtime import Runtime
from handlers.types import Inbound
from storage.keys import RETIRED_KEY_GRACE, rotate_keys

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PERSON = "tg-4242424242"


class Seen:
    """Every sealed value stored for the person so far (the record and the codes' holder links)."""

    def __init__(self) -> None:
        self.blobs: set[bytes] = set()

    async def note(self, services: Services) -> None:
        async with services.db.transaction() as session:
            for query in ("SELECT record FROM persons", "SELECT holder FROM referrals WHERE holder IS NOT NULL"):
                self.blobs.update(bytes(row[0]) for row in (await session.execute(text(query))).all())


async def take_a_code(runtime: Runtime, services: Services, seen: Seen, user: str = PERSON) -> None:
    """Consent, choose Xã Bình Lư, take an HIV-test referral code."""
    await runtime.handle(Inbound("telegram", user, text="/start"))
    for payload in ("c:accept", "w:3390", "r", "rt:hiv_testing", "ri:tyt_binh_lu:1"):
        await runtime.handle(Inbound("telegram", user, payload=payload))
        await seen.note(services)
    async with services.db.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM referrals WHERE holder IS NOT NULL"))).scalar()


def residue(services: Services, needles: dict[str, list[bytes]]) -> dict[str, dict[str, int]]:
    """For each file of the data directory, how often each kind of needle occurs in it."""
    found = {}
    for path in sorted(services.settings.data_dir.iterdir()):
        data = path.read_bytes()
        found[path.name] = {kind: sum(data.count(n) for n in group) for kind, group in needles.items()}
    return found


def needles_of(services: Services, seen: Seen) -> dict[str, list[bytes]]:
    pseudonym = services.secrets.pseudonym("telegram", PERSON)
    # 16 bytes of ciphertext from each blob: a copy of any part of it is found, never by chance.
    return {"pseudonym": [pseudonym], "old sealed blobs": [blob[17:33] for blob in seen.blobs]}


def assert_no_residue(found: dict[str, dict[str, int]]) -> None:
    dirty = {name: counts for name, counts in found.items() if any(counts.values())}
    assert not dirty, f"left in the data directory: {dirty}"


async def others_write(runtime: Runtime, n: int = 3) -> None:
    for i in range(n):
        await runtime.handle(Inbound("telegram", f"other-{i}", text="/start"))
        await runtime.handle(Inbound("telegram", f"other-{i}", payload="c:accept"))


async def test_erasure_leaves_no_version_in_any_file(runtime: Runtime, services: Services) -> None:
    """Right after "xóa dữ liệu" is confirmed, no file holds the pseudonym or an old sealed blob."""
    seen = Seen()
    await take_a_code(runtime, services, seen)
    await others_write(runtime)
    assert len(seen.blobs) >= 3
    before = residue(services, needles_of(services, seen))
    assert any(counts["pseudonym"] for counts in before.values()), "the scan sees the person before erasure"
    await runtime.handle(Inbound("telegram", PERSON, text="/xoa"))
    await runtime.handle(Inbound("telegram", PERSON, text="có"))
    files = {path.name for path in services.settings.data_dir.iterdir()}
    assert "antam.db-wal" in files and "antam.db-shm" in files, "the log and shared memory are scanned too"
    assert_no_residue(residue(services, needles_of(services, seen)))
    # Still a working database: the others go on.
    await others_write(runtime, 1)
    async with services.db.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM persons"))).scalar() == 3


async def test_purge_leaves_no_version_in_any_file(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """A record removed for inactivity leaves no trace in the database files."""
    seen = Seen()
    await take_a_code(runtime, services, seen)
    clock.advance(days=services.settings.retention_days + 2)
    await others_write(runtime)
    report = await purge(services)
    assert report.removed_records == 1
    assert_no_residue(residue(services, needles_of(services, seen)))


async def test_rotation_leaves_no_old_blob_in_any_file(runtime: Runtime, services: Services, clock: FixedClock) -> None:
    """After `antam keys rotate`, the blobs sealed under the old key are gone from every file."""
    seen = Seen()
    await take_a_code(runtime, services, seen)
    await others_write(runtime)
    report = await rotate_keys(services.db, services.secrets, now=clock.now())
    assert report.reencrypted >= 2
    found = residue(services, {"old sealed blobs": needles_of(services, seen)["old sealed blobs"]})
    assert_no_residue(found)
    # The old data key goes once its grace period is over; its wrapped form goes with it.
    async with services.db.transaction() as session:
        wrapped = bytes((await session.execute(text("SELECT wrapped FROM data_keys WHERE id = 1"))).scalar_one())
    clock.advance(seconds=RETIRED_KEY_GRACE.total_seconds() + 1)
    assert (await purge(services)).deleted_key_ids == [1]
    assert_no_residue(residue(services, {"old data key": [wrapped[:16]]}))


async def test_a_reader_elsewhere_delays_the_wipe_not_the_answer(
    runtime: Runtime, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding an old snapshot cannot stall anyone: the erasure answers within
    the wipe's short wait, later updates are not slowed by retries, and the log is wiped by the
    first retry after that reader lets go."""
    seen = Seen()
    await take_a_code(runtime, services, seen)
    assert services.db.sqlite_path is not None
    reader = sqlite3.connect(services.db.sqlite_path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM persons").fetchall()  # holds a snapshot with the person in it
        await runtime.handle(Inbound("telegram", PERSON, text="/xoa"))
        started = time.monotonic()
        replies = await runtime.handle(Inbound("telegram", PERSON, text="có"))
        assert replies and time.monotonic() - started < 5
        assert services.db.wipe_pending, "the reader's snapshot still needs the old pages"
        monkeypatch.setattr(storage.db, "_WIPE_RETRY_SECONDS", 0.0)  # retry after every transaction
        started = time.monotonic()
        await others_write(runtime, 5)
        assert time.monotonic() - started < 3, "ten updates, each retrying without waiting"
        assert services.db.wipe_pending
    finally:
        reader.execute("COMMIT")
        reader.close()
    await others_write(runtime, 1)
    assert not services.db.wipe_pending
    assert_no_residue(residue(services, needles_of(services, seen)))


async def test_housekeeping_finishes_a_pending_wipe(runtime: Runtime, services: Services) -> None:
    """A wipe left pending by a reader in another process is done by the next housekeeping."""
    seen = Seen()
    await take_a_code(runtime, services, seen)
    assert services.db.sqlite_path is not None
    reader = sqlite3.connect(services.db.sqlite_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM persons").fetchall()
    await runtime.handle(Inbound("telegram", PERSON, text="/xoa"))
    await runtime.handle(Inbound("telegram", PERSON, text="có"))
    assert services.db.wipe_pending
    reader.execute("COMMIT")
    reader.close()
    await purge(services)
    assert not services.db.wipe_pending
    assert_no_residue(residue(services, needles_of(services, seen)))


async def test_wipe_waits_its_turn(runtime: Runtime, services: Services) -> None:
    """Erasures racing other updates in the same process all complete, and the log ends empty."""
    seen = Seen()
    await take_a_code(runtime, services, seen)
    await runtime.handle(Inbound("telegram", PERSON, text="/xoa"))
    others = [
        runtime.handle(Inbound("telegram", f"busy-{i}", text="/start")) for i in range(8)
    ]
    await asyncio.gather(runtime.handle(Inbound("telegram", PERSON, text="có")), *others)
    assert await services.db.wipe_old_versions()
    assert_no_residue(residue(services, needles_of(services, seen)))
    wal: Path = services.settings.data_dir / "antam.db-wal"
    assert wal.stat().st_size == 0
