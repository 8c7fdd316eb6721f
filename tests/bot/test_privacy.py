"""Privacy invariants (docs/architecture.md, "Privacy invariants"): nothing a person typed or their platform id is ever at rest.

The SQLite test reads the raw bytes of every database file, including the -wal, -shm and
-journal files, while the database is open and after it is closed. The PostgreSQL test reads
every column of every table.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.bootstrap import Services
from bot.runtime import Runtime
from content.intents import strip_diacritics
from handlers.types import Inbound
from storage.counselling import CaseMessage
from storage.models import Base, Person

PLATFORM_ID = "tg-7788990011"
TYPED = [
    "/start",
    "chào bạn, mình tên Lan Zyxquv",
    "muốn đi xét nghiệm HIV ở phường Thành Nam Qwerty",
    "bị khách đánh tối qua ở nhà nghỉ Hoa Mai Plokij",
    "số điện thoại mình là 0912345678",
    "xóa dữ liệu",
    "không",
]
BUTTONS = ["c:accept", "i", "g:hiv_sti", "t:pep", "tm:pep", "w:3390", "r", "rt:hiv_testing", "ri:tyt_binh_lu:1", "l:en", "e", "p"]
# Every table, each checked by test_no_column_holds_platform_id_or_text.
KNOWN_TABLES = {
    "alembic_version", "data_keys", "persons", "processed_updates", "channel_tokens",
    "referrals", "peer_links", "counters", "counter_months", "counter_month_links", "indicator_targets", "settings", "redeem_failures",
    "staff_accounts", "staff_audit", "outbox",
    "counselling_cases", "counselling_messages", "counselling_duty", "counselling_hours", "counselling_settings",
}


def needles() -> list[bytes]:
    """Every form in which a typed text or the platform id could land on disk."""
    found: list[bytes] = []
    for raw in [PLATFORM_ID, *[t for t in TYPED if len(t) > 6]]:
        for variant in {raw, unicodedata.normalize("NFC", raw), strip_diacritics(raw), raw.lower()}:
            for encoding in ("utf-8", "utf-16-le"):
                found.append(variant.encode(encoding))
    # The distinctive invented words and the phone number, on their own.
    for word in ("Zyxquv", "Qwerty", "Plokij", "0912345678", "7788990011"):
        found += [word.encode(), word.lower().encode(), word.encode("utf-16-le")]
    return found


async def converse(runtime: Runtime) -> None:
    await runtime.handle(Inbound("telegram", PLATFORM_ID, text=TYPED[0]))
    for payload in BUTTONS[:2]:
        await runtime.handle(Inbound("telegram", PLATFORM_ID, payload=payload))
    for typed in TYPED[1:]:
        await runtime.handle(Inbound("telegram", PLATFORM_ID, text=typed))
    for payload in BUTTONS[2:]:
        await runtime.handle(Inbound("telegram", PLATFORM_ID, payload=payload))


def database_files(services: Services) -> list[Path]:
    assert services.db.sqlite_path is not None
    return sorted(services.db.sqlite_path.parent.glob(services.db.sqlite_path.name + "*"))


def assert_clean(blob: bytes, where: str) -> None:
    for needle in needles():
        assert needle not in blob, f"{needle!r} found in {where}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_files_hold_no_platform_id_or_text(runtime: Runtime, services: Services) -> None:
    """After a scripted conversation, no database file contains the platform id or any typed text."""
    await converse(runtime)
    assert await _count(services) == 1, "the person consented, so one record exists"
    files = database_files(services)
    assert any(f.name.endswith("-wal") for f in files), "the write-ahead log is checked too"
    for path in files:
        assert_clean(path.read_bytes(), path.name)
    await services.db.dispose()
    for path in database_files(services):
        assert_clean(path.read_bytes(), path.name + " (closed)")


async def test_no_column_holds_platform_id_or_text(runtime: Runtime, services: Services) -> None:
    """On every backend, no value in any table contains the platform id or a typed text — also
    while a counsellor chat is open, whose transcript holds the typed text sealed."""
    await converse(runtime)
    for payload in ("h", "h:start"):
        await runtime.handle(Inbound("telegram", PLATFORM_ID, payload=payload))
    await runtime.handle(Inbound("telegram", PLATFORM_ID, text=TYPED[1]))
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(CaseMessage)) == 1, "the chat holds the text"
    async with services.db.transaction() as session:
        for table in [*Base.metadata.sorted_tables]:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    assert_clean(data, table.name)
        tables = await session.run_sync(lambda s: s.connection().dialect.get_table_names(s.connection()))
    assert set(tables) <= KNOWN_TABLES, "a new table must join this test"


async def test_erasure_removes_every_row(runtime: Runtime, services: Services) -> None:
    """After "xóa dữ liệu" is confirmed, nothing is left under the person's pseudonym."""
    await converse(runtime)
    await runtime.handle(Inbound("telegram", PLATFORM_ID, text="/xoa"))
    await runtime.handle(Inbound("telegram", PLATFORM_ID, text="có"))
    assert await _count(services) == 0


async def test_logs_hold_no_personal_data(
    runtime: Runtime, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Even at DEBUG, log records carry no platform id, pseudonym or typed text."""
    caplog.set_level(logging.DEBUG)
    await converse(runtime)
    pseudonym = services.secrets.pseudonym("telegram", PLATFORM_ID)
    logged = "\n".join(
        f"{r.getMessage()} {r.args!r} {sorted((k, repr(v)) for k, v in vars(r).items())}" for r in caplog.records
    ).encode()
    assert caplog.records, "the runtime logs something at DEBUG, so this test can fail"
    assert_clean(logged, "logs")
    assert pseudonym.hex().encode() not in logged and repr(pseudonym).encode() not in logged


async def test_declining_stores_nothing(runtime: Runtime, services: Services) -> None:
    """A person who declines can browse and get help with no row stored at all."""
    await runtime.handle(Inbound("telegram", "decliner", text="/start"))
    await runtime.handle(Inbound("telegram", "decliner", payload="c:decline"))
    for typed in ("xét nghiệm hiv", "muốn chết", "xóa dữ liệu", "thoát nhanh"):
        await runtime.handle(Inbound("telegram", "decliner", text=typed))
    assert await _count(services) == 0


async def test_only_day_dates_are_in_clear(runtime: Runtime, services: Services) -> None:
    """Besides the pseudonym, a person's row shows only a day; the record itself is sealed."""
    await converse(runtime)
    async with services.db.transaction() as session:
        row = (await session.execute(text("SELECT * FROM persons"))).mappings().one()
    assert set(row) == {"pseudonym", "last_active_on", "record"}
    assert b"menu" not in bytes(row["record"]) and b"locale" not in bytes(row["record"])


async def _count(services: Services) -> int:
    async with services.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Person)) or 0)
