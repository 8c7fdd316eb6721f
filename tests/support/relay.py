"""The counsellor chat across workers, as deployed: real `antam run` processes on one PostgreSQL
and the fake Bot API on 127.0.0.1; a person posting Telegram updates to one worker's webhook and
a counsellor's WebSocket on another (tests/counselling/test_relay_workers.py, bench/relay_bench.py).

Nothing here reads the database for what it checks: the person's side is what the fake Bot API
received, the counsellor's side is what their socket showed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.support.cli import free_port, wait_until_healthy

TOKEN = "515151:RELAY-token_abc"
SECRET = "relay-secret-token"
PUBLIC_URL = "https://antam.example.org"
ROOT = Path(__file__).resolve().parents[2]
WARD = 3390  # Xã Bình Lư: the person chooses it, the counsellors counsel it
OPEN_CASE = ("/start", "c:accept", "w:3390", "h", "h:start")


def worker_env(base: dict[str, str], database_url: str, master_key: str, fake: FakeTelegramAPI) -> dict[str, str]:
    # The workers run this checkout's code, whatever the caller's PYTHONPATH (often relative).
    path = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH", "")) if p)
    return dict(
        base,
        PYTHONPATH=path,
        ANTAM_DATABASE_URL=database_url,
        ANTAM_MASTER_KEY=master_key,
        ANTAM_PUBLIC_URL=PUBLIC_URL,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    )


class Worker:
    """One `antam run` process (webhook mode, the staff app, the outbox) on 127.0.0.1."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str, command: Sequence[str] = ("-m", "bot", "run")) -> None:
        self.port = free_port()
        self.env = dict(env, ANTAM_HTTP_PORT=str(self.port))
        self.cwd = cwd
        self.name = name
        self.command = list(command)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook(self) -> str:
        return f"{self.base}/webhooks/telegram"

    def start(self) -> None:
        err = open(self.cwd / f"{self.name}.err", "ab")  # noqa: SIM115 (the process owns it)
        self.process = subprocess.Popen(
            [sys.executable, *self.command], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err,
        )
        wait_until_healthy(self.port, self.process, self.cwd / f"{self.name}.err")

    def kill(self) -> None:
        """SIGKILL: nothing is finished, nothing handed back."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class Person:
    """Someone on Telegram: updates made by the fake Bot API, posted like Telegram to a worker."""

    def __init__(self, fake: FakeTelegramAPI, http: aiohttp.ClientSession, user: int) -> None:
        self.fake = fake
        self.http = http
        self.user = user

    async def _post(self, worker: Worker, update: dict[str, Any]) -> None:
        async with self.http.post(
            worker.webhook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            assert response.status == 200, f"the webhook answered {response.status}"
            body = await response.read()
            await self.fake.webhook_answer(response.status, response.content_type, body)

    def _newest_bot_message(self) -> int:
        found = [m for i in range(1, 5000) if (m := self.fake.message(self.user, i)) is not None and m["from"]["is_bot"]]
        assert found, "the bot has said something to press a button under"
        return int(found[-1]["message_id"])

    async def step(self, worker: Worker, step: str) -> None:
        if step.startswith("/"):
            update = self.fake.user_command(self.user, step, enqueue=False)
        else:
            update = self.fake.user_callback(self.user, step, self._newest_bot_message(), enqueue=False)
        await self._post(worker, update)

    async def open_case(self, worker: Worker) -> None:
        for step in OPEN_CASE:
            await self.step(worker, step)

    async def says(self, worker: Worker, text: str) -> None:
        await self._post(worker, self.fake.user_text(self.user, text, enqueue=False))

    def received(self) -> list[str]:
        """The texts the bot sent this person, oldest first."""
        return [str(m.get("text", "")) for m in self.fake.sent_messages(self.user)]


class Counsellor:
    """A counsellor's browser on one worker: signed in, on duty, the live chat's socket open."""

    def __init__(self, worker: Worker, username: str, password: str) -> None:
        self.worker = worker
        self.username = username
        self.password = password
        # The cookies are Secure (the public URL is https); here the worker is on plain loopback.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[worker.base])
        self.http = aiohttp.ClientSession(cookie_jar=jar)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.token = ""

    async def _form(self, path: str, data: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.http.post(self.worker.base + path, data=data, allow_redirects=False) as response:
            await response.read()
            return response

    async def _token(self, path: str) -> str:
        async with self.http.get(self.worker.base + path, allow_redirects=False) as response:
            body = await response.text()
        marker = 'name="csrf" value="'
        assert marker in body, f"no CSRF token on {path}"
        return body.split(marker, 1)[1].split('"', 1)[0]

    async def sign_in(self) -> None:
        token = await self._token("/staff/login")
        response = await self._form("/staff/login", {"username": self.username, "password": self.password, "csrf": token})
        assert response.status == 303, f"login answered {response.status}"
        self.token = await self._token("/staff/counselling")
        response = await self._form("/staff/counselling/duty", {"on": "1", "csrf": self.token})
        assert response.status == 303

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(
            f"{self.worker.base}/staff/counselling/ws?csrf={self.token}", headers={"Origin": self.worker.base}
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.events.put_nowait(json.loads(message.data))

    async def send(self, data: dict[str, str]) -> None:
        assert self.ws is not None
        await self.ws.send_json(data)

    async def next_event(
        self, wanted: str, *, timeout: float = 10.0, sender: str | None = None, **match: object
    ) -> dict[str, Any]:
        """The next event of type ``wanted`` matching ``match`` (and ``sender``, a message's
        "from"); others are passed over."""
        if sender is not None:
            match["from"] = sender
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await asyncio.wait_for(self.events.get(), max(0.0, deadline - loop.time()))
            if event.get("type") == wanted and all(event.get(k) == v for k, v in match.items()):
                return event

    async def close(self) -> None:
        # The reader first: closing waits for the server's close frame, which only one receiver may read.
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # the socket went with the worker
                pass
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5.0)
            except (TimeoutError, aiohttp.ClientError, OSError):  # the worker is gone
                pass
        await self.http.close()
