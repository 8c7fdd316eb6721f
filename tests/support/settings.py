"""Settings and the fixed start time shared by test modules (and the conftest's fixtures)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from bot.config import Settings

START = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)


def make_settings(tmp_path: Path, database_url: str, master_key: str, **extra: Any) -> Settings:
    """Settings for a test: a data dir of its own, the backend's database, a fresh key, and extras."""
    return Settings(
        ANTAM_DATA_DIR=tmp_path / "data",
        ANTAM_DATABASE_URL=database_url,
        ANTAM_MASTER_KEY=master_key,
        **extra,
    )
