"""Shared fixtures: content, clocks, and databases (SQLite always, PostgreSQL when configured).

Set ANTAM_TEST_DATABASE_URL=postgresql+asyncpg://… to run every storage test against
PostgreSQL as well. When it is set and the server cannot be reached, those tests fail: they
are never skipped. `.ci/run` sets it, and also ANTAM_TEST_REQUIRE_POSTGRES=1, which makes the
suite fail outright if the URL is missing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.bootstrap import Services, load_content, open_services
from bot.clock import FixedClock
from bot.config import Settings
from bot.runtime import Runtime
from handlers.common import Context
from handlers.render import Renderer
from storage.crypto import encode_master_key, generate_master_key
from tests.support.postgres import BACKENDS, BASE_PG_URL, PG_URL, create_database, reset_postgres
from tests.support.settings import START, make_settings

# Fixtures shared by many test modules, as plugins: a module uses them by naming them, without
# importing them (an import would hide where a fixture comes from and needs a noqa).
pytest_plugins = ("tests.staff_fixtures", "tests.support.web")

REQUIRE_PG = os.environ.get("ANTAM_TEST_REQUIRE_POSTGRES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError(
            "ANTAM_TEST_REQUIRE_POSTGRES=1 but ANTAM_TEST_DATABASE_URL is not set: "
            "the PostgreSQL tests must run here"
        )
    if PG_URL and PG_URL != BASE_PG_URL:
        try:
            asyncio.run(create_database(BASE_PG_URL, make_url(PG_URL).database or ""))
        except Exception as exc:  # the tests using it fail loudly with the reason
            print(f"could not create the worker's PostgreSQL database: {exc!r}")


def pytest_report_header(config: pytest.Config) -> str:
    where = PG_URL.split("@")[-1] if PG_URL else "not configured (set ANTAM_TEST_DATABASE_URL)"
    return f"An Tâm storage backends: {', '.join(BACKENDS)}; PostgreSQL: {where}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        counts[outcome] = sum(
            1 for report in terminalreporter.stats.get(outcome, []) if "[postgresql" in getattr(report, "nodeid", "")
        )
    if PG_URL:
        terminalreporter.write_line(
            "PostgreSQL tests: {passed} passed, {failed} failed, {error} errors, {skipped} skipped".format(**counts)
        )
        if counts["skipped"]:
            terminalreporter.write_line("PostgreSQL tests must not be skipped", red=True)
    else:
        terminalreporter.write_line("PostgreSQL tests: not run (ANTAM_TEST_DATABASE_URL is not set)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A skipped PostgreSQL test is a failure of the run when PostgreSQL was asked for.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if PG_URL and reporter is not None:
        skipped = [r for r in reporter.stats.get("skipped", []) if "[postgresql" in getattr(r, "nodeid", "")]
        if skipped and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def content() -> tuple[Context, Renderer]:
    return load_content()


@pytest.fixture
def ctx(content: tuple[Context, Renderer]) -> Context:
    return content[0]


@pytest.fixture
def renderer(content: tuple[Context, Renderer]) -> Renderer:
    return content[1]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def master_key() -> str:
    return encode_master_key(generate_master_key())


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'antam.db'}"
        return
    try:
        await asyncio.wait_for(reset_postgres(PG_URL), timeout=30)
    except Exception as exc:  # the server is required once configured: fail loudly
        pytest.fail(f"PostgreSQL at ANTAM_TEST_DATABASE_URL is not usable: {exc!r}", pytrace=False)
    yield PG_URL


@pytest.fixture
def settings(tmp_path: Path, database_url: str, master_key: str) -> Settings:
    return make_settings(tmp_path, database_url, master_key)


@pytest.fixture
async def services(settings: Settings, clock: FixedClock) -> AsyncIterator[Services]:
    opened = await open_services(settings, clock=clock, warn=lambda _message: None)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def runtime(services: Services) -> Runtime:
    return Runtime(services)


@pytest.fixture
def clean_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment for subprocesses with no An Tâm, Telegram or Zalo variables of the caller."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTAM_", "TELEGRAM_", "ZALO_"))
    }
    env["ANTAM_DATA_DIR"] = str(tmp_path / "antam-data")
    yield env


REQUIRE_BROWSER = os.environ.get("ANTAM_TEST_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium (installed by .ci/run); CI fails without it, elsewhere the test is skipped."""
    import shutil

    found = os.environ.get("ANTAM_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if REQUIRE_BROWSER:
            pytest.fail("ANTAM_TEST_REQUIRE_BROWSER=1 but no chromium was found", pytrace=False)
        pytest.skip("no chromium on this machine (apt-get install chromium); CI installs and requires it")
    return found


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download); one per test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
