"""Alembic environment: migrations run on a connection handed over by storage.db.Database."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import storage.channel_secrets  # noqa: F401  (its table joins the metadata)
import storage.staff  # noqa: F401  (its tables join the metadata)
import storage.outbox  # noqa: F401  (its table joins the metadata)
import storage.counselling  # noqa: F401  (its tables join the metadata)
import storage.referral_models  # noqa: F401
from storage.models import Base

target_metadata = Base.metadata


def _run(connection):
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url):
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        # `alembic` on the command line (see alembic.ini): make our own async engine.
        asyncio.run(_run_with_own_engine(context.config.get_main_option("sqlalchemy.url")))
