"""The fake Telegram Bot API of the tests, run in its own process for the benchmarks.

    .venv/bin/python bench/fake_bot_api_server.py --token 123456:BENCH-token

Prints one line, the base URL to give PTB (``http://127.0.0.1:PORT/bot``), then serves until
stdin closes or it gets SIGTERM/SIGINT. Listens on 127.0.0.1 only (``tests/fakes/telegram_api``).

It is ``tests.fakes.telegram_api.FakeTelegramAPI`` unchanged in what it parses and answers,
with three changes so that it can take hundreds of thousands of calls from people it was never
told about, in bounded memory:

* a private chat id it has not seen is taken as a new person (the tests inject the person's
  message first; here the benchmark builds the updates itself);
* every callback query id is accepted by answerCallbackQuery (the ids are made by the benchmark);
* once a second it forgets the calls, messages, chats and answered queries it recorded,
  after adding the calls to per-method counters.

``GET /_bench/stats`` returns ``{"calls": {method: count}, "total": n}``; ``POST /_bench/reset``
zeroes the counters. Running it in another process keeps its CPU time and memory out of the
measured process, as Telegram's servers would be.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram_api import HOST, FakeTelegramAPI, JSONDict  # noqa: E402


class BenchTelegramAPI(FakeTelegramAPI):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()

    async def start(self) -> None:
        # As FakeTelegramAPI.start, plus the two /_bench routes before the catch-all.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_bench/stats", self._stats)
        app.router.add_post("/_bench/reset", self._reset)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, backlog=1024)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    def _known_chat(self, params: JSONDict) -> JSONDict:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and not isinstance(chat_id, bool) and chat_id > 0 and chat_id not in self._chats:
            self.add_user(chat_id)
        return super()._known_chat(params)

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        if isinstance(query_id, str):
            self._open_callbacks.add(query_id)
        return await super()._answer_callback_query(params)

    def trim(self) -> None:
        self.counts.update(call.method for call in self.calls)
        self.clear_calls()
        self.answered_callbacks.clear()
        self._messages.clear()
        self._deleted.clear()
        self._users.clear()
        self._chats.clear()

    async def _stats(self, request: web.Request) -> web.Response:
        self.trim()
        return web.json_response({"calls": dict(self.counts), "total": sum(self.counts.values())})

    async def _reset(self, request: web.Request) -> web.Response:
        self.trim()
        self.counts.clear()
        return web.json_response({"ok": True})


async def serve(token: str) -> None:
    fake = BenchTelegramAPI(token=token, seed=1)
    await fake.start()
    print(fake.base_url, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Stdin closing (the parent died or is done) also stops the server.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                fake.trim()
    finally:
        await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.token))


if __name__ == "__main__":
    main()
