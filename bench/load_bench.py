"""Loopback load test of `antam run` in webhook mode: rising update rates until p99 passes 100 ms.

    .venv/bin/python bench/load_bench.py [--limiter as-built|off|both] [--rates 5,10,20,…]
        [--step-seconds 10] [--max-p99 100] [--database-url postgresql+asyncpg://…]

What it does:

1. Starts the fake Bot API (``bench/fake_bot_api_server.py``, 127.0.0.1, its own process).
2. Starts ``.venv/bin/antam run`` as a subprocess on 127.0.0.1 (a free port) with a temporary
   ``ANTAM_DATA_DIR`` (SQLite there, or ``--database-url``; ``postgresql`` makes a throwaway
   ``antam_bench_load_<pid>`` on 127.0.0.1:5432 as user postgres and drops it after),
   ``ANTAM_PUBLIC_URL=https://example.invalid`` (webhook mode: at start An Tâm calls setWebhook,
   setMyCommands and getMe on the fake), ``TELEGRAM_API_BASE_URL`` pointing at the fake,
   ``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_WEBHOOK_SECRET``. Other ANTAM_/TELEGRAM_/ZALO_ variables
   of the caller are removed; the working directory is the temporary one (no ``.env``).
   Waits for ``/healthz``.
3. For each rate in ``--rates`` (updates per second): posts ``rate × --step-seconds`` updates
   (at most ``--max-count``) to ``/webhooks/telegram`` with the secret header, open loop — one
   every 1/rate s whatever the answers do — at most ``--max-in-flight`` at once (more counts
   as overload). The updates follow the script of ``bench/telegram_mix.py``, ten per person,
   one person's updates at least ``--gap`` seconds apart (new people arrive as needed, and
   stay across steps: see ``Population``); 100 updates at 10/s warm up first. Each
   response's latency is measured from just before the request is written to the body read.
   A step fails when its p99 passes ``--max-p99`` ms, or any request fails or is not 200, or
   the in-flight bound is hit, or the achieved rate is under 90 % of the asked one; a failed
   step is run once more (``--attempts 2``: other work on a shared machine makes single spikes)
   and the ladder stops when a step fails every attempt. The **sustained rate** is the highest
   passed step.
   Every step is bounded in count and in time (``--step-seconds`` + 30 s to drain).
4. Always stops the server (SIGTERM, then SIGKILL after 15 s) and the fake, also on error.

``--limiter as-built`` runs ``antam run`` itself, whose Telegram channel sends through PTB's
AIORateLimiter: at most 30 messages per second for the whole bot (Telegram's broadcast
limit), so the sustained rate is bounded by that gate. ``--limiter off`` runs
``bench/antam_unthrottled.py run`` (the same CLI with that overall limit at 0) to measure the
process instead. ``both`` (the default) does one then the other.

The load generator, the fake Bot API, An Tâm and PostgreSQL share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from telegram_mix import Mix, Person  # noqa: E402
from update_bench import TOKEN, FakeServer, machine, pick, postgres_url, server_version  # noqa: E402

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_RATES = "5,10,15,20,30,40,60,80,120,160,240,320,480,640,800"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Step:
    rate: float
    sent: int
    ok: int
    errors: int
    overload: int
    seconds: float
    latencies: list[float]

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def q(self, quantile: float) -> float:
        return pick(self.latencies, quantile) if self.latencies else float("inf")


class Population:
    """People who come back: each person's next update comes at least ``gap`` seconds after the last.

    At each send the person who has waited longest takes their next script step if their
    ``gap`` has passed, else a new person arrives (/start). After ten steps a person leaves. So
    about rate × gap people are active, and no one taps faster than a person would (An Tâm's
    per-chat pacer allows a burst of 3 messages, then 1 a second, as Telegram does).
    """

    def __init__(self, mix: Mix, gap: float, steps: int = 10) -> None:
        self.mix, self.gap, self.steps = mix, gap, steps
        self.waiting: deque[tuple[float, Person, int]] = deque()
        self.people = 0

    def next_body(self) -> bytes:
        now = time.monotonic()
        if self.waiting and self.waiting[0][0] <= now:
            _, person, k = self.waiting.popleft()
        else:
            person, k = self.mix.new_person(), 0
            self.people += 1
        update = self.mix.step(person, k)
        if k + 1 < self.steps:
            self.waiting.append((now + self.gap, person, k + 1))
        return json.dumps(update, ensure_ascii=False).encode()


class Server:
    """`antam run` (or the unthrottled wrapper) as a subprocess; always stopped in __aexit__."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.command, self.env, self.cwd = command, env, cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.log = cwd / "antam-run.log"

    async def __aenter__(self) -> Server:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT)
        return self

    async def wait_ready(self, url: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"antam run exited with {self.process.returncode}:\n{self.tail()}")
                try:
                    async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.25)
        raise RuntimeError(f"antam run did not answer /healthz within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        # The first start prints a one-time admin password: never show it.
        return "\n".join(line for line in text[-lines:] if "password" not in line.lower() and "mật khẩu" not in line.lower())

    def rss_mib(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.get_running_loop().run_in_executor(None, lambda: process.wait(timeout=15))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run_step(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    next_body: Callable[[], bytes],
    count: int,
    rate: float,
    args: argparse.Namespace,
) -> Step:
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "overload": 0}
    in_flight = 0
    headers = {SECRET_HEADER: secret, "Content-Type": "application/json"}
    tasks: set[asyncio.Task[None]] = set()

    async def post(body: bytes) -> None:
        nonlocal in_flight
        in_flight += 1
        t0 = time.perf_counter_ns()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    counts["ok"] += 1
                    latencies.append((time.perf_counter_ns() - t0) / 1e6)
                else:
                    counts["errors"] += 1
        except (aiohttp.ClientError, TimeoutError, OSError):
            counts["errors"] += 1
        finally:
            in_flight -= 1

    interval = 1.0 / rate
    started = time.perf_counter()
    deadline = started + args.step_seconds + 30.0
    for index in range(count):
        due = started + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.perf_counter() > deadline:
            counts["overload"] += count - index
            break
        body = next_body()
        if in_flight >= args.max_in_flight:
            counts["overload"] += 1
            continue
        task = asyncio.create_task(post(body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=max(0.0, deadline - time.perf_counter()))
        for task in pending:
            task.cancel()
            counts["errors"] += 1
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    seconds = time.perf_counter() - started
    latencies.sort()
    return Step(rate, count, counts["ok"], counts["errors"], counts["overload"], seconds, latencies)


async def ladder(limiter: str, args: argparse.Namespace, fake: FakeServer, database_url: str | None) -> int | float:
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="antam-load-") as tmp:
        port = free_port()
        secret = secrets.token_urlsafe(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTAM_", "TELEGRAM_", "ZALO_"))}
        env.update(
            {
                "ANTAM_DATA_DIR": str(Path(tmp) / "data"),
                "ANTAM_HTTP_HOST": "127.0.0.1",
                "ANTAM_HTTP_PORT": str(port),
                "ANTAM_PUBLIC_URL": "https://example.invalid",
                "ANTAM_LOG_LEVEL": "WARNING",
                "TELEGRAM_API_BASE_URL": fake.base_url,
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_WEBHOOK_SECRET": secret,
            }
        )
        if database_url:
            env["ANTAM_DATABASE_URL"] = database_url
        if limiter == "as-built":
            command = [str(ROOT / ".venv" / "bin" / "antam"), "run"]
        else:
            command = [sys.executable, str(ROOT / "bench" / "antam_unthrottled.py"), "run"]
        base = f"http://127.0.0.1:{port}"
        print(
            f"\n{limiter}: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(command))} on {base}, "
            f"database {'PostgreSQL' if database_url else 'SQLite'}; {args.step_seconds:g} s per step, "
            f"fail at p99 > {args.max_p99:g} ms, any error, or {args.max_in_flight} in flight",
            flush=True,
        )
        sustained: float = 0
        async with Server(command, env, Path(tmp)) as server:
            await server.wait_ready(base)
            mix = Mix(seed=args.seed)
            connector = aiohttp.TCPConnector(limit=args.max_in_flight + 16)
            async with aiohttp.ClientSession(connector=connector) as session:
                # Warm up (not counted): connections, caches, the first records.
                population = Population(mix, args.gap)
                await run_step(session, base + WEBHOOK_PATH, secret, population.next_body, 100, 10, args)
                print(
                    f"  {'asked/s':>8} {'sent':>6} {'ok':>6} {'err':>4} {'over':>5} {'got/s':>7} "
                    f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'server CPU':>10} {'RSS MiB':>8}"
                )
                for rate in rates:
                    count = max(1, int(rate * args.step_seconds))
                    count = min(count, args.max_count)
                    for attempt in range(args.attempts):
                        cpu0 = server.cpu_seconds()
                        step = await run_step(
                            session, base + WEBHOOK_PATH, secret, population.next_body, count, rate, args
                        )
                        cpu = (server.cpu_seconds() - cpu0) / step.seconds
                        passed = (
                            step.errors == 0
                            and step.overload == 0
                            and step.q(0.99) <= args.max_p99
                            and step.achieved >= 0.9 * min(rate, count / args.step_seconds)
                        )
                        verdict = "ok" if passed else ("FAILED" if attempt + 1 == args.attempts else "failed, again")
                        print(
                            f"  {rate:>8g} {step.sent:>6} {step.ok:>6} {step.errors:>4} {step.overload:>5} "
                            f"{step.achieved:>7.1f} {step.q(0.5):>8.1f} {step.q(0.9):>8.1f} {step.q(0.99):>8.1f} "
                            f"{(step.latencies[-1] if step.latencies else float('inf')):>8.1f} {cpu:>9.0%} "
                            f"{server.rss_mib():>8.0f}  {verdict}",
                            flush=True,
                        )
                        await asyncio.sleep(args.pause)
                        if passed:
                            break
                    if not passed:
                        break
                    sustained = rate
            problems = [line for line in server.tail(400).splitlines() if " WARNING " in line or " ERROR " in line]
        if problems:
            print(f"  server log: {len(problems)} warning/error lines, e.g. {problems[-1][:160]}")
        print(f"  sustained rate ({limiter}): {sustained:g} updates/s with p99 ≤ {args.max_p99:g} ms ({population.people:,} people)")
        return sustained


async def main_async(args: argparse.Namespace) -> None:
    print(machine(await server_version()), flush=True)
    limiters = ["as-built", "off"] if args.limiter == "both" else [args.limiter]
    results: dict[str, float] = {}
    async with FakeServer() as fake:
        for limiter in limiters:
            if args.database_url == "postgresql" or (args.database_url and args.database_url.startswith("postgres")):
                given = None if args.database_url == "postgresql" else args.database_url
                async with postgres_url(given, name_prefix="antam_bench_load") as url:
                    results[limiter] = await ladder(limiter, args, fake, url)
            else:
                results[limiter] = await ladder(limiter, args, fake, None)
    print("\nsustained rates: " + ", ".join(f"{k}: {v:g} updates/s" for k, v in results.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limiter", choices=["as-built", "off", "both"], default="both")
    parser.add_argument("--rates", default=DEFAULT_RATES, help="updates per second, comma-separated, rising")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--max-count", type=int, default=8000, help="at most this many updates per step")
    parser.add_argument("--max-p99", type=float, default=100.0, help="ms")
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between steps")
    parser.add_argument(
        "--attempts", type=int, default=2, help="a failed step is tried this many times in all (a shared machine is noisy)"
    )
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between one person's updates, at least")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--database-url",
        help="'postgresql' for a throwaway database on 127.0.0.1:5432, or a URL of an empty one; default SQLite",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
