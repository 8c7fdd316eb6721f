"""Faults: the database goes away and comes back (through a real TCP proxy on 127.0.0.1).

While PostgreSQL is unreachable people still get a short "tạm thời gián đoạn" answer with the
hotlines, which need no database; when it returns, the worker answers normally again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from bot.bootstrap import open_services
from bot.clock import FixedClock
from bot.config import Settings
from bot.runtime import Runtime
from handlers.types import Inbound
from tests.conftest import PG_URL, _reset_postgres


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; ``cut`` drops every connection and refuses new ones."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    if not PG_URL:
        pytest.skip("needs PostgreSQL (ANTAM_TEST_DATABASE_URL); CI sets it and runs this test")
    await _reset_postgres(PG_URL)
    url = make_url(PG_URL)
    running = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await running.start()
    try:
        yield running
    finally:
        with contextlib.suppress(Exception):
            await running.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_database_outage(backend: str, proxy: TcpProxy, tmp_path, master_key: str, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    """During an outage the person gets the interruption notice with hotlines; afterwards all is normal."""
    url = make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(ANTAM_DATA_DIR=tmp_path / "data", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master_key)
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    runtime = Runtime(services)
    try:
        first = await runtime.answer(Inbound("telegram", "outage", payload="c:accept"))
        assert "Cảm ơn bạn" in first[0].text
        await proxy.cut()
        during = await asyncio.wait_for(runtime.answer(Inbound("telegram", "outage", payload="t:pep")), timeout=30)
        assert "tạm thời gián đoạn" in during[0].text
        assert "113" in during[0].text and "115" in during[0].text and "111" in during[0].text
        await proxy.restore()
        after = await asyncio.wait_for(runtime.answer(Inbound("telegram", "outage", payload="t:pep")), timeout=30)
        assert "PEP" in after[0].text and "gián đoạn" not in after[0].text
    finally:
        await services.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_connections_that_died_while_pooled(backend: str, proxy: TcpProxy, tmp_path, master_key: str, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    """The database restarted between two updates: the next one is answered normally.

    Pooled connections are not pinged before use; the first statement on a dead one fails, the
    pool drops every connection as old as it, and the runtime runs the update again.
    """
    url = make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(ANTAM_DATA_DIR=tmp_path / "data", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master_key)
    services = await open_services(settings, clock=clock, warn=lambda _m: None)
    runtime = Runtime(services)
    try:
        # Several pooled connections, all of which will be dead.
        await asyncio.gather(*(runtime.answer(Inbound("telegram", f"pooled{i}", payload="c:accept")) for i in range(4)))
        await proxy.cut()
        await proxy.restore()
        after = await asyncio.wait_for(runtime.answer(Inbound("telegram", "pooled0", payload="t:pep")), timeout=30)
        assert "PEP" in after[0].text and "gián đoạn" not in after[0].text
        again = await asyncio.wait_for(runtime.answer(Inbound("telegram", "pooled1", payload="t:pep")), timeout=30)
        assert "PEP" in again[0].text
    finally:
        await services.close()
