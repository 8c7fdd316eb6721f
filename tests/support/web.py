"""The web server under aiohttp's test client, and the web chat's `client` fixture.

This module is a pytest plugin (listed in tests/conftest.py's `pytest_plugins`): a test module
uses `client` by naming it; a module may define a `client` of its own, which then wins.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.bootstrap import Services


@contextlib.asynccontextmanager
async def web_client(services: Services) -> AsyncIterator[TestClient[Any, Any]]:
    """The one web server (web chat and staff app, no Telegram, no housekeeping) on 127.0.0.1."""
    from bot.app import make_app

    app = make_app(services, maintenance=False, channels=("web",), exit_url="/healthz")
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def page_origin(client: TestClient[Any, Any]) -> str:
    """The web chat page's own origin, as a browser sends it: http://127.0.0.1:PORT."""
    url = client.make_url("/")
    return f"{url.scheme}://{url.host}:{url.port}"


@pytest.fixture
async def client(services: Services) -> AsyncIterator[TestClient[Any, Any]]:
    """The web chat's test client, on the test's `services`."""
    async with web_client(services) as test_client:
        yield test_client
