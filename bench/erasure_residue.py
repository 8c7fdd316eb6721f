"""Residue of one person in the data directory right after erasure, retention purge and key rotation.

    .venv/bin/python bench/erasure_residue.py

On the embedded default (SQLite in a throwaway data directory), one person consents, chooses
Xã Bình Lư and takes an HIV-test referral code, 200 others consent, then the person is erased
(or purged after 182 days, or the keys are rotated). It prints, per file of the data directory,
its size and how often the person's pseudonym and a 16-byte piece of each sealed value the
person's rows ever had occur in it, and how long the step took. To measure an older checkout,
run it with that checkout first on the path: ``PYTHONPATH=/path/to/old python bench/…``.
"""
import asyncio, tempfile, time, datetime as dt
from pathlib import Path
from sqlalchemy import text
from bot.bootstrap import open_services
from bot.clock import FixedClock
from bot.config import Settings
from bot.maintenance import purge
from bot.runtime import Runtime
from handlers.types import Inbound
from storage.crypto import encode_master_key, generate_master_key
from storage.keys import rotate_keys

async def scenario(kind: str) -> None:
    """One scenario: erasure, purge or rotation."""
    tmp = Path(tempfile.mkdtemp())
    clock = FixedClock(dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC))
    settings = Settings(ANTAM_DATA_DIR=tmp / "data", ANTAM_MASTER_KEY=encode_master_key(generate_master_key()))
    services = await open_services(settings, clock=clock, warn=lambda m: None)
    rt = Runtime(services)
    uid = "tg-555"
    blobs = set()
    async def snap() -> None:
        async with services.db.transaction() as s:
            blobs.update(bytes(r[0]) for r in (await s.execute(text("SELECT record FROM persons"))).all())
            blobs.update(bytes(r[0]) for r in (await s.execute(text("SELECT holder FROM referrals WHERE holder IS NOT NULL"))).all())
    await rt.handle(Inbound("telegram", uid, text="/start"))
    for p in ["c:accept", "w:3390", "r", "rt:hiv_testing", "ri:tyt_binh_lu:1"]:
        await rt.handle(Inbound("telegram", uid, payload=p)); await snap()
    if kind == "purge":
        clock.advance(days=182)
    for i in range(200):
        await rt.handle(Inbound("telegram", f"other{i}", text="/start"))
        await rt.handle(Inbound("telegram", f"other{i}", payload="c:accept"))
    started = time.perf_counter()
    if kind == "erasure":
        await rt.handle(Inbound("telegram", uid, text="/xoa"))
        started = time.perf_counter()
        await rt.handle(Inbound("telegram", uid, text="có"))
    elif kind == "purge":
        await purge(services)
    else:
        await rotate_keys(services.db, services.secrets, now=clock.now())
    took = (time.perf_counter() - started) * 1000
    pseudonym = services.secrets.pseudonym("telegram", uid)
    needles = {"pseudonym": [pseudonym], "old blobs": [b[17:33] for b in blobs]}
    if kind == "rotation":
        needles = {"old blobs": needles["old blobs"]}
    parts = []
    for f in sorted((tmp / "data").iterdir()):
        if f.name == "master.key":
            continue
        data = f.read_bytes()
        parts.append(f"{f.name} {len(data)} B: " + ", ".join(f"{k} {sum(data.count(x) for x in v)}" for k, v in needles.items()))
    print(f"{kind:8} ({took:.0f} ms): " + " | ".join(parts))
    await services.close()

async def main() -> None:
    for kind in ("erasure", "purge", "rotation"):
        await scenario(kind)

asyncio.run(main())
