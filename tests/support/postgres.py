"""The PostgreSQL the tests use when ANTAM_TEST_DATABASE_URL is set (one database per xdist worker)."""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


def worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets its own database next to the given one (NAME_gw0, …),
    since the tests drop and recreate the schema."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


BASE_PG_URL = os.environ.get("ANTAM_TEST_DATABASE_URL", "").strip()
PG_URL = worker_database(BASE_PG_URL)
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


async def create_database(base_url: str, name: str) -> None:
    """Create the database `name` on the server of `base_url` unless it exists."""
    engine = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def reset_postgres(url: str) -> None:
    """Drop everything in the database at `url`: an empty public schema."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()
