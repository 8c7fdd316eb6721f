"""Time to the hotlines while the database stalls (issue #15 §5).

    .venv/bin/python bench/stall_bench.py [--database-url postgresql+asyncpg://…] [--cap 200]
        [--lock-seconds 40] [--backend postgresql|sqlite|both]

PostgreSQL: the runtime talks to the server through a TCP proxy on 127.0.0.1
(``tests/fakes/tcp_proxy.py``). One person accepts the notice, so the pool holds one
connection; then the proxy freezes (connections stay open, nothing is forwarded, nothing is
reset: a stalled server) and two messages are sent at once: a safety message ("em không muốn
sống") from that person, which takes the pooled connection, and a plain "xin chào" from someone
new, which needs a new connection. For each: the seconds until ``Runtime.answer`` returned and
whether the answer carries 113, 115 and 111. Then the proxy thaws and the next message must be
answered normally. A message still unanswered after ``--cap`` seconds is reported as "> cap".

SQLite: another process holds the database's write lock (``BEGIN IMMEDIATE``) for
``--lock-seconds``; five messages are sent at once; the same figures.

Without ``--database-url`` a throwaway database ``antam_bench_stall_<pid>`` is created on
127.0.0.1:5432 (user postgres) and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bot.bootstrap import open_services  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from handlers.types import Inbound  # noqa: E402
from storage.crypto import encode_master_key, generate_master_key  # noqa: E402
from tests.fakes.tcp_proxy import TcpProxy  # noqa: E402
from update_bench import machine, postgres_url, server_version  # noqa: E402

HOTLINES = ("113", "115", "111")


async def timed(runtime: Runtime, inbound: Inbound, cap: float) -> str:
    started = time.perf_counter()
    try:
        replies = await asyncio.wait_for(runtime.answer(inbound), timeout=cap)
    except TimeoutError:
        return f"> {cap:.0f} s, no answer"
    seconds = time.perf_counter() - started
    body = "\n".join(r.text for r in replies)
    kind = "the apology" if "gián đoạn" in body else "the full answer"
    numbers = "with 113, 115, 111" if all(n in body for n in HOTLINES) else "without the hotlines"
    return f"{seconds:.2f} s ({kind}, {numbers})"


async def postgres(url: str, cap: float) -> None:
    engine_url = make_url(url)
    await _reset(url)
    proxy = TcpProxy(engine_url.host or "127.0.0.1", engine_url.port or 5432)
    await proxy.start()
    via = engine_url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(ANTAM_DATA_DIR=Path(tmp), ANTAM_DATABASE_URL=via, ANTAM_MASTER_KEY=_key())
        services = await open_services(settings, warn=lambda _m: None)
        await services.db.engine.dispose()  # start from an empty pool: one connection below
        runtime = Runtime(services)
        try:
            await runtime.answer(Inbound("telegram", "stall-1", payload="c:accept", update_id="1"))
            proxy.freeze()
            results = await asyncio.gather(
                timed(runtime, Inbound("telegram", "stall-1", text="em không muốn sống", update_id="2"), cap),
                timed(runtime, Inbound("telegram", "stall-2", text="xin chào", update_id="3"), cap),
            )
            print(f"postgresql frozen: safety message on the pooled connection: {results[0]}")
            print(f"postgresql frozen: plain message needing a new connection: {results[1]}")
            proxy.thaw()
            after = await timed(runtime, Inbound("telegram", "stall-1", payload="m", update_id="4"), cap)
            print(f"postgresql thawed: next message: {after}")
        finally:
            proxy.thaw()
            await services.close()
            await proxy.close()


async def _reset(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


async def sqlite(cap: float, lock_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(ANTAM_DATA_DIR=Path(tmp), ANTAM_MASTER_KEY=_key())
        services = await open_services(settings, warn=lambda _m: None)
        runtime = Runtime(services)
        try:
            await runtime.answer(Inbound("telegram", "lock-0", payload="c:accept", update_id="1"))
            locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(services.db.sqlite_path), str(lock_seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert locker.stdout is not None
            assert locker.stdout.readline().strip() == "locked"
            messages = [
                Inbound("telegram", "lock-0", text="em không muốn sống", update_id="2"),
                *(Inbound("telegram", f"lock-{i}", text="xin chào", update_id=str(10 + i)) for i in range(1, 5)),
            ]
            results = await asyncio.gather(*(timed(runtime, m, cap) for m in messages))
            for index, result in enumerate(results):
                what = "safety message" if index == 0 else f"plain message {index}"
                print(f"sqlite locked by another process: {what}: {result}")
            locker.wait()
            after = await timed(runtime, Inbound("telegram", "lock-0", payload="m", update_id="3"), cap)
            print(f"sqlite unlocked: next message: {after}")
        finally:
            await services.close()


def _key() -> str:
    return encode_master_key(generate_master_key())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--cap", type=float, default=200.0)
    parser.add_argument("--lock-seconds", type=float, default=40.0)
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    print(machine(await server_version()))
    if args.backend in ("postgresql", "both"):
        async with postgres_url(args.database_url, "antam_bench_stall") as url:
            await postgres(url, args.cap)
    if args.backend in ("sqlite", "both"):
        await sqlite(args.cap, args.lock_seconds)


if __name__ == "__main__":
    asyncio.run(main())
