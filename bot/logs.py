"""Logging set-up. An Tâm's own log lines never carry personal data (DESIGN §3.9); some
libraries' debug lines do — PTB logs every Bot API call with its parameters (chat ids, text),
HTTP clients log URLs with tokens, aiohttp's access log has IP addresses — so those loggers
stay at WARNING whatever ANTAM_LOG_LEVEL says.
"""

from __future__ import annotations

import logging
import sys

QUIET_LIBRARIES = (
    "telegram",
    "httpx",
    "httpcore",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy",
    "alembic",
    "asyncio",
    "aiohttp.access",
    "aiohttp.server",
)


def quiet_libraries() -> None:
    """Keep libraries that log personal data or secrets at WARNING and above."""
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    quiet_libraries()
