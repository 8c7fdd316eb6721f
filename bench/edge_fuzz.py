"""Fuzz the public endpoints of a running `antam run` on 127.0.0.1 and count server failures.

    .venv/bin/python bench/edge_fuzz.py [--count 10000] [--seed 15] [--only chat_send,chat_ws,zalo,telegram]

Starts a fake Telegram Bot API and a fake Zalo Open API (both in this process, on 127.0.0.1),
then `antam run` in a subprocess with a throwaway SQLite data directory, both channels in
webhook mode and 127.0.0.1 as a trusted proxy (each request carries a random X-Forwarded-For,
so the per-address rate limits do not stop the fuzzing before the parser). Then, per endpoint,
``--count`` requests from a seeded generator of hostile bodies: random bytes, random JSON,
deeply nested arrays and objects (up to tens of thousands of levels), integers of hundreds or
thousands of digits, 1e400, NaN/Infinity, lone surrogates, wrong types in the right places —
about half of them shaped like real messages (the web chat's session, a signed Zalo event, an
update with the right Telegram secret) so the parsing behind the checks is reached too.

Counted: answers by class (2xx, 4xx, 5xx), connection errors, and for the WebSocket the
connections the server dropped instead of answering a message. Each request is bounded by a
10 s timeout; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.crypto import encode_master_key, generate_master_key  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402
from tests.fakes.zalo_api import FakeZaloAPI  # noqa: E402

TOKEN = "515151:EDGE-fuzz_token"
TG_SECRET = "edge-fuzz-secret"
APP_ID = "1835482915736150291"
OA_SECRET = "oa-secret-edge-fuzz"
ENDPOINTS = ("chat_send", "chat_ws", "zalo", "telegram")
TIMEOUT = aiohttp.ClientTimeout(total=10)


class Raw(str):
    """A JSON fragment written as it is (numbers and nesting json.dumps cannot make)."""


def dump(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


class Hostile:
    """A seeded source of hostile JSON values and bodies."""

    def __init__(self, seed: int, max_body: int) -> None:
        self.rng = random.Random(seed)
        self.max_body = max_body

    def extreme(self) -> Raw:
        rng = self.rng
        depth = rng.choice([40, 200, 1000, 3000, 20000])
        depth = min(depth, self.max_body // 6)
        kind = rng.randrange(12)
        if kind == 0:
            return Raw("[" * depth + "]" * depth)
        if kind == 1:
            return Raw('{"a":' * depth + "1" + "}" * depth)
        if kind == 2:
            return Raw("[" * depth)  # never closed
        if kind == 3:
            return Raw(("-" if rng.random() < 0.3 else "") + "9" * rng.choice([20, 310, 400, 1000, 4000]))
        if kind == 4:
            return Raw(rng.choice(["1e400", "-1e400", "1e-400", "123456789.0e308", "0." + "9" * 500, "1E+99999"]))
        if kind == 5:
            return Raw(rng.choice(["NaN", "Infinity", "-Infinity"]))
        if kind == 6:
            return Raw(rng.choice(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"' + "x" * 3000 + '"']))
        if kind == 7:
            return Raw(rng.choice(["true", "false", "null", "[]", "{}", '""', "0", "-0", "1.5"]))
        if kind == 8:
            return Raw(json.dumps(str(rng.choice([10**400, 2**64, -(2**63), 1e308]))))  # as a string
        if kind == 9:
            return Raw("[" * depth + "1" + "]" * depth)
        if kind == 10:
            return Raw(dump([self.random_value(3) for _ in range(rng.randrange(1, 4))]))
        return Raw(str(rng.randint(-(2**70), 2**70)))

    def random_value(self, depth: int = 3) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth <= 0 or roll < 0.5:
            return rng.choice([None, True, False, rng.randint(-(10**6), 10**6), rng.random() * 1e6, "", "a" * rng.randrange(40), "xn hiv"])
        if roll < 0.75:
            return [self.random_value(depth - 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["a", "text", "id", "latitude"]): self.random_value(depth - 1) for _ in range(rng.randrange(4))}

    def field(self, good: Any) -> Any:
        """The right value, a random one, or an extreme one."""
        roll = self.rng.random()
        if roll < 0.35:
            return good
        if roll < 0.55:
            return self.random_value()
        return self.extreme()

    def junk(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            return rng.randbytes(rng.randrange(0, 600))
        if roll < 0.6:
            return dump(self.random_value(4)).encode()
        return dump(self.extreme()).encode()

    def session(self) -> str:
        return "".join(self.rng.choice("ABCDEFGHabcdefgh0123456789_-") for _ in range(26))


def chat_body(h: Hostile) -> bytes:
    rng = h.rng
    if rng.random() < 0.25:
        return h.junk()
    body: dict[str, Any] = {"session": h.field(h.session()) if rng.random() < 0.2 else h.session()}
    if rng.random() < 0.3:
        body["id"] = h.field("m" + str(rng.randrange(10**8)).zfill(8))
    kind = rng.choice(["text", "payload", "start", "location", "location", "two"])
    if kind == "location":
        body["location"] = h.field({"latitude": h.field(21.03), "longitude": h.field(105.85)})
        if isinstance(body["location"], dict) and rng.random() < 0.5:
            body["location"] = {"latitude": h.extreme(), "longitude": h.field(105.85)}
    elif kind == "two":
        body["text"], body["payload"] = "menu", "m"
    else:
        good = {"text": "xn hiv o dau", "payload": "m", "start": "abc"}[kind]
        body[kind] = h.field(good)
    text = dump(body)
    return text.encode("utf-8", "surrogatepass")


def zalo_body(h: Hostile, now_ms: int) -> tuple[bytes, str | None, str | None]:
    """The body, and the app_id and timestamp it carries (to sign it), when it has them."""
    rng = h.rng
    if rng.random() < 0.2:
        return h.junk(), None, None
    app_id = APP_ID if rng.random() < 0.9 else "999"
    timestamp = str(now_ms - rng.randrange(0, 5000))
    user = str(rng.randrange(10**18, 10**19))
    name = rng.choice(["user_send_text", "user_send_location", "follow", "user_send_image", "user_seen_message"])
    coordinates = {"latitude": h.field("21.03"), "longitude": h.field("105.85")}
    if rng.random() < 0.3:
        coordinates = {"latitude": h.extreme(), "longitude": "105.85"}
    message = {
        "msg_id": h.field(os.urandom(8).hex()),
        "text": h.field("menu"),
        "attachments": h.field([{"type": "location", "payload": {"coordinates": coordinates}}]),
    }
    body: dict[str, Any] = {
        "app_id": app_id,
        "event_name": h.field(name) if rng.random() < 0.2 else name,
        "timestamp": timestamp,
        "sender": h.field({"id": user}),
        "recipient": {"id": "4318459026128520719"},
        "message": h.field(message) if rng.random() < 0.3 else message,
    }
    if rng.random() < 0.3:
        body[rng.choice(["sender", "message", "recipient", "extra"])] = h.extreme()
    return dump(body).encode("utf-8", "surrogatepass"), app_id, timestamp


def telegram_body(h: Hostile, update_id: int) -> bytes:
    rng = h.rng
    if rng.random() < 0.2:
        return h.junk()
    user = rng.randrange(10**6, 10**10)
    person = {"id": h.field(user), "is_bot": h.field(False), "first_name": h.field("A"), "language_code": h.field("vi")}
    chat = {"id": h.field(user), "type": h.field("private")}
    if rng.random() < 0.5:
        message: dict[str, Any] = {
            "message_id": h.field(rng.randrange(1, 10**6)), "date": h.field(1_700_000_000), "chat": h.field(chat),
            "from": h.field(person),
        }
        if rng.random() < 0.5:
            message["text"] = h.field("menu")
        else:
            message["location"] = h.field({"latitude": h.field(21.03), "longitude": h.field(105.85)})
        body: dict[str, Any] = {"update_id": update_id, "message": message}
    else:
        query = {
            "id": h.field(str(rng.randrange(10**12))), "from": h.field(person), "chat_instance": h.field("1"),
            "data": h.field("m"),
            "message": h.field({"message_id": 5, "date": 1_700_000_000, "chat": chat}),
        }
        body = {"update_id": update_id, "callback_query": query}
    if rng.random() < 0.1:
        body["update_id"] = h.extreme()
    return dump(body).encode("utf-8", "surrogatepass")


def forwarded(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    return ":".join(f"{rng.randrange(0x10000):x}" for _ in range(8))


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def status(self, status: int) -> None:
        self.counts[f"{status // 100}xx"] += 1
        if status >= 500:
            self.counts[f"http {status}"] += 1


async def fuzz_chat_send(http: aiohttp.ClientSession, base: str, count: int, seed: int, tally: Tally) -> None:
    h = Hostile(seed, max_body=8 * 1024)
    for _ in range(count):
        body = chat_body(h)
        headers = {"Content-Type": "application/json", "Origin": base, "X-Forwarded-For": forwarded(h.rng)}
        try:
            async with http.post(base + "/chat/send", data=body, headers=headers) as response:
                await response.read()
                tally.status(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tally.counts[f"client error {type(exc).__name__}"] += 1


async def fuzz_chat_ws(http: aiohttp.ClientSession, base: str, count: int, seed: int, tally: Tally) -> None:
    h = Hostile(seed + 1, max_body=8 * 1024)
    sent = 0
    ws: aiohttp.ClientWebSocketResponse | None = None
    on_this = 0
    while sent < count:
        if ws is None or ws.closed or on_this >= 12:  # a fresh connection before its own limit bites
            if ws is not None and not ws.closed:
                await ws.close()
            headers = {"Origin": base, "X-Forwarded-For": forwarded(h.rng)}
            try:
                ws = await http.ws_connect(base.replace("http", "ws") + "/chat/ws", headers=headers, max_msg_size=0)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                tally.counts[f"connect error {type(exc).__name__}"] += 1
                ws = None
                await asyncio.sleep(0.05)
                continue
            on_this = 0
        raw = chat_body(h)
        sent += 1
        on_this += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            if text is None or h.rng.random() < 0.05:
                await ws.send_bytes(raw)
            else:
                await ws.send_str(text)
            message = await ws.receive(timeout=10)
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            tally.counts[f"ws error {type(exc).__name__}"] += 1
            tally.counts["dropped connections"] += 1
            ws = None
            continue
        if message.type is aiohttp.WSMsgType.TEXT:
            try:
                answer = json.loads(message.data)
            except ValueError:
                answer = {}
            tally.counts["answered" if "replies" in answer and "error" not in answer else f"refused {answer.get('error')}"] += 1
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            # A message too large is closed by aiohttp with 1009 on purpose; anything else is a drop.
            code = ws.close_code
            tally.counts["closed (message too big)" if code == 1009 else "dropped connections"] += 1
            ws = None
        else:
            tally.counts[f"ws {message.type.name}"] += 1
            tally.counts["dropped connections"] += 1
            ws = None
    if ws is not None:
        await ws.close()


async def fuzz_zalo(http: aiohttp.ClientSession, base: str, count: int, seed: int, tally: Tally) -> None:
    h = Hostile(seed + 2, max_body=64 * 1024)
    for _ in range(count):
        body, app_id, timestamp = zalo_body(h, int(time.time() * 1000))
        if app_id is not None and timestamp is not None and h.rng.random() < 0.6:
            mac = hashlib.sha256(app_id.encode() + body + timestamp.encode() + OA_SECRET.encode()).hexdigest()
        else:
            mac = h.rng.choice(["", "0" * 64, os.urandom(32).hex()])
        headers = {"Content-Type": "application/json", "X-ZEvent-Signature": "mac=" + mac}
        try:
            async with http.post(base + "/webhooks/zalo", data=body, headers=headers) as response:
                await response.read()
                tally.status(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tally.counts[f"client error {type(exc).__name__}"] += 1


async def fuzz_telegram(http: aiohttp.ClientSession, base: str, count: int, seed: int, tally: Tally) -> None:
    h = Hostile(seed + 3, max_body=64 * 1024)
    for index in range(count):
        body = telegram_body(h, 10_000 + index)
        secret = TG_SECRET if h.rng.random() < 0.85 else "wrong"
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}
        try:
            async with http.post(base + "/webhooks/telegram", data=body, headers=headers) as response:
                await response.read()
                tally.status(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tally.counts[f"client error {type(exc).__name__}"] += 1


FUZZERS = {"chat_send": fuzz_chat_send, "chat_ws": fuzz_chat_ws, "zalo": fuzz_zalo, "telegram": fuzz_telegram}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, process: subprocess.Popen[bytes], err: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"antam run exited ({process.returncode}):\n{err.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise SystemExit("antam run did not become healthy")


def machine() -> str:
    cpu, memory = "unknown CPU", "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return (
        f"machine: {platform.machine()}, {cpu}, {os.cpu_count()} cores, {memory}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, SQLite; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="requests per endpoint (at most 50,000)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--only", default=",".join(ENDPOINTS))
    args = parser.parse_args()
    count = min(args.count, 50_000)
    chosen = [name for name in args.only.split(",") if name]
    print(machine(), flush=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="antam-edge-fuzz-") as tmp:
        async with FakeTelegramAPI(token=TOKEN) as telegram, FakeZaloAPI(
            app_id=APP_ID, oa_secret_key=OA_SECRET, access_token="a" * 24, refresh_token="r" * 24
        ) as zalo:
            env = {
                "PATH": os.environ.get("PATH", ""), "HOME": tmp,
                "ANTAM_DATA_DIR": str(Path(tmp) / "data"), "ANTAM_MASTER_KEY": encode_master_key(generate_master_key()),
                "ANTAM_HTTP_HOST": "127.0.0.1", "ANTAM_HTTP_PORT": str(port), "ANTAM_LOG_LEVEL": "WARNING",
                "ANTAM_PUBLIC_URL": "https://antam.example.org", "ANTAM_TRUSTED_PROXIES": "127.0.0.1/32",
                "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": telegram.base_url,
                "TELEGRAM_WEBHOOK_SECRET": TG_SECRET, "ZALO_APP_ID": APP_ID, "ZALO_OA_SECRET_KEY": OA_SECRET,
                "ZALO_ACCESS_TOKEN": "a" * 24, "ZALO_REFRESH_TOKEN": "r" * 24,
                "ZALO_API_BASE_URL": zalo.base_url, "ZALO_OAUTH_BASE_URL": zalo.base_url,
            }
            err = Path(tmp) / "run.err"
            with open(err, "w") as err_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err_file,
                )
            try:
                await asyncio.to_thread(wait_healthy, port, process, err)
                base = f"http://127.0.0.1:{port}"
                print(f"| endpoint | requests | 2xx | 4xx | 5xx | dropped WS connections | other | seconds |")
                print("|---|---|---|---|---|---|---|---|")
                async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                    for name in chosen:
                        tally = Tally()
                        before = err.read_text().count(" ERROR ")
                        started = time.monotonic()
                        await FUZZERS[name](http, base, count, args.seed, tally)
                        elapsed = time.monotonic() - started
                        logged = err.read_text().count(" ERROR ") - before
                        c = tally.counts
                        other = {k: v for k, v in c.items() if k not in ("2xx", "4xx", "5xx", "dropped connections")}
                        print(
                            f"| {name} | {count} | {c['2xx']} | {c['4xx']} | {c['5xx']} | "
                            f"{c['dropped connections'] if name == 'chat_ws' else '—'} | "
                            f"{dict(sorted(other.items()))} ERROR lines logged: {logged} | {elapsed:.0f} |",
                            flush=True,
                        )
                        healthy = urllib.request.urlopen(f"{base}/healthz", timeout=5).status
                        assert healthy == 200, "the server stopped answering"
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            tail = [line for line in err.read_text().splitlines() if " ERROR " in line]
            if tail:
                print("distinct ERROR lines:", sorted({line.split(" ", 3)[-1] for line in tail})[:10])


if __name__ == "__main__":
    asyncio.run(main())
