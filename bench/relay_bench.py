"""Relay latency of the counsellor chat over two workers on one PostgreSQL (issue #18).

    .venv/bin/python bench/relay_bench.py [--cases 50] [--counsellors 10] [--rounds 10]
        [--gap 2.0] [--deadline 300] [--database-url postgresql+asyncpg://…] [--unthrottled]

As deployed: two real `antam run` processes (webhook mode, the staff app, the outbox worker)
share one PostgreSQL on 127.0.0.1; the tests' fake Bot API (tests/fakes/telegram_api.py) and
the people and counsellors run in this process, everything on 127.0.0.1.

* ``--cases`` people each open a case (/start, consent, commune w:3390, "Nói chuyện với tư vấn
  viên", start) and ``--counsellors`` counsellors (signed in, on duty, the live chat's WebSocket
  /staff/counselling/ws open with the session cookie, Origin and CSRF token) claim them, the
  same number each. Counsellor j's socket is on worker j mod 2; the updates of the people they
  hold are posted to the other worker, so every message crosses workers both ways.
* Then all cases at once, ``--rounds`` exchanges each, a pause of ``--gap`` seconds (0.5–1.5 ×,
  random) after each, so that the cases' turns interleave: the person's message is posted to
  the webhook (**person → counsellor**: from the POST until the message is on the counsellor's
  socket), then the counsellor sends an answer over the socket (**counsellor → person**: from
  the socket send until the fake Bot API receives the sendMessage with the answer). A wait is
  given up after 15 s (counted as lost); the whole run after ``--deadline`` seconds.
* Reported: p50/p90/p99/max each way, lost messages, the CPU seconds the two workers used, and
  the rate of messages.

Telegram's own limits stay as built (python-telegram-bot's AIORateLimiter: 30 messages a second
for the bot, one a second per chat; the outbox's pacing): ``--gap`` keeps the load under them, as
50 people typing are. ``--unthrottled`` runs the workers through bench/antam_unthrottled.py (no
30/s gate) for a heavier load.

Without ``--database-url`` a throwaway database ``antam_bench_relay_<pid>`` is made on
127.0.0.1:5432 (user postgres) and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # type: ignore[import-untyped]  # noqa: E402

from bot.bootstrap import open_services  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from storage.crypto import encode_master_key, generate_master_key  # noqa: E402
from storage.staff import Role  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402
from tests.staff_fixtures import PASSWORD, add_account  # noqa: E402
from tests.support.relay import OPEN_CASE, TOKEN, WARD, Counsellor, Person, Worker, worker_env  # noqa: E402

WAIT = 15.0
ANSWER = "Tư vấn viên: "


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Arrivals:
    """When each awaited text arrived (on a socket, or at the fake Bot API)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, text: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[text] = future
        return future

    def arrived(self, text: str) -> None:
        future = self.waiting.pop(text, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


async def watch_fake(fake: FakeTelegramAPI, arrivals: Arrivals) -> None:
    seen = 0
    while True:
        event = fake._call_event  # replaced on every call: take it before reading the calls
        calls = fake.calls
        for call in calls[seen:]:
            if call.method == "sendMessage" and str(call.params.get("text", "")).startswith(ANSWER):
                arrivals.arrived(str(call.params["text"]))
        seen = len(calls)
        if event.is_set():  # the fake is closing (its last event stays set): stop, never spin
            return
        await event.wait()


async def watch_socket(counsellor: Counsellor, arrivals: Arrivals, errors: list[str]) -> None:
    while True:
        event = await counsellor.events.get()
        if event.get("type") == "message" and event.get("from") == "person":
            arrivals.arrived(str(event["text"]))
        elif event.get("type") == "error":
            errors.append(str(event.get("reason")))


async def create_database(name: str) -> None:
    connection = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def summary(name: str, values: list[float], lost: int) -> str:
    ms = [v * 1000 for v in values]
    if not ms:
        return f"{name}: no samples, {lost} lost"
    return (
        f"{name}: n={len(ms)} lost={lost} p50={percentile(ms, 50):.1f} ms p90={percentile(ms, 90):.1f} ms "
        f"p99={percentile(ms, 99):.1f} ms max={max(ms):.1f} ms mean={statistics.fmean(ms):.1f} ms"
    )


async def run(args: argparse.Namespace) -> int:
    database = None
    url = args.database_url
    if url is None:
        database = f"antam_bench_relay_{os.getpid()}"
        await create_database(database)
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    master = encode_master_key(generate_master_key())
    workdir = Path(tempfile.mkdtemp(prefix="antam-relay-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTAM_", "TELEGRAM_", "ZALO_"))}
    base_env["ANTAM_DATA_DIR"] = str(workdir / "data")
    command = (str(ROOT / "bench" / "antam_unthrottled.py"), "run") if args.unthrottled else ("-m", "bot", "run")
    arrivals, errors = Arrivals(), list[str]()
    tasks: list[asyncio.Task[Any]] = []
    counsellors: list[Counsellor] = []
    workers: list[Worker] = []
    try:
        async with FakeTelegramAPI(token=TOKEN, seed=50) as fake:
            env = worker_env(base_env, url, master, fake)
            workers = [Worker(env, workdir, "a", command), Worker(env, workdir, "b", command)]
            for worker in workers:
                await asyncio.to_thread(worker.start)
            settings = Settings(ANTAM_DATA_DIR=workdir / "admin", ANTAM_DATABASE_URL=url, ANTAM_MASTER_KEY=master)
            services = await open_services(settings, clock=SystemClock(), warn=lambda _m: None)
            try:
                for j in range(args.counsellors):
                    await add_account(services, f"tv-{j:02d}", Role.COUNSELLOR, ward=WARD)
            finally:
                await services.close()
            tasks.append(asyncio.create_task(watch_fake(fake, arrivals)))
            for j in range(args.counsellors):
                counsellor = Counsellor(workers[j % 2], f"tv-{j:02d}", PASSWORD)
                counsellors.append(counsellor)
                await counsellor.sign_in()
                await counsellor.connect()
                await counsellor.next_event("duty")
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            try:
                setup_started = time.perf_counter()
                held: list[tuple[Person, Worker, Counsellor, str]] = []
                claimed: set[str] = set()
                people = [Person(fake, http, 7_500_000_000 + i) for i in range(args.cases)]
                towards = [workers[1 - (i % args.counsellors) % 2] for i in range(args.cases)]

                arriving = asyncio.Semaphore(8)  # people come a few at a time, not 50 in one instant

                async def until_the_notice(person: Person, to: Worker) -> None:
                    async with arriving:
                        for step in OPEN_CASE[:-1]:  # paced by Telegram's one message a second per chat
                            await person.step(to, step)

                async with asyncio.timeout(args.deadline):
                    await asyncio.gather(*(until_the_notice(p, to) for p, to in zip(people, towards)))
                print(f"{args.cases} people at the notice after {time.perf_counter() - setup_started:.1f} s", flush=True)
                for i, (person, to) in enumerate(zip(people, towards)):
                    counsellor = counsellors[i % args.counsellors]
                    await person.step(to, OPEN_CASE[-1])  # one at a time: the new waiting case is theirs
                    while (handle := (await counsellor.next_event("case", state="waiting"))["case"]) in claimed:
                        pass
                    await counsellor.send({"type": "claim", "case": handle})
                    await counsellor.next_event("done", action="claim", case=handle)
                    claimed.add(handle)
                    held.append((person, to, counsellor, handle))
                print(f"{args.cases} cases opened and claimed in {time.perf_counter() - setup_started:.1f} s", flush=True)
                for counsellor in counsellors:
                    tasks.append(asyncio.create_task(watch_socket(counsellor, arrivals, errors)))
                await asyncio.sleep(2.0)  # the joined messages go out; the sockets settle
                up: list[float] = []
                down: list[float] = []
                webhook: list[float] = []  # the POST's own time (the person's update, one transaction)
                lost = {"up": 0, "down": 0}
                cpu_before = [cpu_seconds(w.process.pid) for w in workers if w.process is not None]

                async def case(index: int, person: Person, to: Worker, counsellor: Counsellor, handle: str) -> None:
                    await asyncio.sleep(random.uniform(0, args.gap))
                    for turn in range(args.rounds):
                        said = f"em hỏi ca {index} lượt {turn}"
                        arrived = arrivals.expect(said)
                        started = time.perf_counter()
                        await person.says(to, said)
                        webhook.append(time.perf_counter() - started)
                        try:
                            up.append(await asyncio.wait_for(arrived, WAIT) - started)
                        except TimeoutError:
                            lost["up"] += 1
                        answer = f"chị trả lời ca {index} lượt {turn}"
                        arrived = arrivals.expect(ANSWER + answer)
                        started = time.perf_counter()
                        await counsellor.send({"type": "send", "case": handle, "text": answer})
                        try:
                            down.append(await asyncio.wait_for(arrived, WAIT) - started)
                        except TimeoutError:
                            lost["down"] += 1
                        await asyncio.sleep(args.gap * random.uniform(0.5, 1.5))

                measured = time.perf_counter()
                try:
                    async with asyncio.timeout(args.deadline):
                        await asyncio.gather(*(case(i, *entry) for i, entry in enumerate(held)))
                except TimeoutError:
                    print(f"stopped at the deadline of {args.deadline} s", flush=True)
                elapsed = time.perf_counter() - measured
                cpu_after = [cpu_seconds(w.process.pid) for w in workers if w.process is not None]
            finally:
                await http.close()
            print(f"machine: {platform.platform()}, {os.cpu_count()} cores, {platform.python_version()}, "
                  f"load average at the end {os.getloadavg()[0]:.2f}")
            print(f"{args.cases} open cases, {args.counsellors} counsellors, 2 workers on PostgreSQL, "
                  f"{args.rounds} rounds, gap {args.gap} s, {'unthrottled' if args.unthrottled else 'as built'}")
            print(summary("person → counsellor", up, lost["up"]))
            print(summary("counsellor → person", down, lost["down"]))
            print(summary("  (the webhook's answer to the person's update)", webhook, 0))
            print(f"{len(up) + len(down)} messages in {elapsed:.1f} s ({(len(up) + len(down)) / elapsed:.1f}/s both ways); "
                  f"worker CPU {', '.join(f'{after - before:.1f} s' for before, after in zip(cpu_before, cpu_after))}"
                  f" ({sum(cpu_after) - sum(cpu_before):.1f} s, {(sum(cpu_after) - sum(cpu_before)) / elapsed * 100:.0f}% of one core)")
            if errors:
                print(f"errors on the sockets: {errors[:10]}")
            for task in tasks:  # before the fake closes
                task.cancel()
    finally:
        for task in tasks:
            task.cancel()
        for counsellor in counsellors:
            await counsellor.close()
        for worker in workers:
            await asyncio.to_thread(worker.stop)
        if database is not None:
            await drop_database(database)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--counsellors", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--gap", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--database-url")
    parser.add_argument("--unthrottled", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.counsellors <= args.cases or args.cases > 500 or args.rounds > 1000:
        parser.error("1 ≤ counsellors ≤ cases ≤ 500, rounds ≤ 1000")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
