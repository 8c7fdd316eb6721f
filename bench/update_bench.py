"""Bot-side cost per Telegram update, end to end, side by side with a python-telegram-bot echo floor.

    .venv/bin/python bench/update_bench.py [--backend sqlite|postgresql|both] [--updates N]
        [--people N] [--concurrency N] [--warmup N] [--database-url postgresql+asyncpg://…]
        [--as-built-updates N] [--breakdown N] [--profile FILE [--profile-backend B]]
    .venv/bin/python bench/update_bench.py --memory [--memory-updates 100000]
        [--memory-people 10000] [--memory-path channel|runtime] [--backend sqlite|postgresql|both]
        [--object-counts] [--tracemalloc]

What is measured (one process, one event loop, like one An Tâm worker):

* The same updates — ``bench/telegram_mix.py``: /start with and without a peer link, the
  privacy notice's buttons, menu, topics, the services of commune w:3390, referral codes
  (ri:tyt_binh_lu:1), Vietnamese free text, from many people, interleaved — are handed in the
  way the webhook route does it, after the secret check and without HTTP (``json.loads`` of the
  body, ``Update.de_json``, ``await application.process_update``) to:

  - **floor**: a PTB ``Application`` (``updater(None)``, same ``base_url``) whose only handler
    sends one message back (the text, or a button's data);
  - **An Tâm**: the real ``TelegramChannel`` (webhook mode) on the real ``Runtime`` and
    ``open_services``, through ``TelegramChannel.receive`` (the webhook route's body): translation,
    dedupe, load and open the sealed record, the engine with intent classification, effects
    (referrals, counters), seal and save (one transaction), render, send every reply, and the
    route's answer, which for a button press names answerCallbackQuery for Telegram to carry
    out (counted as "in the webhook's answer") — on SQLite and on PostgreSQL.

  Both send over real loopback HTTP (PTB's httpx client) to the tests' fake Bot API
  (``bench/fake_bot_api_server.py``), which runs in its own process so that its CPU time and
  memory stay out of the measured process, as Telegram's servers would.

* Per update: wall time (``perf_counter_ns``) from handing the body in to the route's work
  returning, i.e. every reply sent. Per phase: p50/p90/p99/max, throughput, CPU time of this
  process per update (``getrusage``: includes the aiosqlite thread, not the PostgreSQL server),
  Bot API calls per update (counted by the fake), and resident memory (VmRSS) before and
  after. Each An Tâm phase first runs ``--warmup`` updates (not counted). The floor runs
  first and again last, to show drift on a shared machine.

* Sequential (one update at a time) and concurrent (``--concurrency`` updates in flight,
  as the webhook route allows when Telegram opens several connections).

* ``--breakdown`` more sequential An Tâm updates with timers around ``Runtime.answer``
  (the update's one transaction), ``TelegramChannel._send`` (HTTP) and the pure engine, and a count of the SQL statements by kind.
  ``--profile FILE`` runs cProfile over the sequential An Tâm phase of one backend.

PTB's ``AIORateLimiter`` in ``TelegramChannel`` caps every bot at 30 messages/s overall
(Telegram's broadcast limit). Cost cannot be measured through a 30/s gate, so in the cost
phases its overall limiter is switched off (``rate_limiter._base_limiter = None``: the limiter's
code still runs for every call, only the wait goes). ``--as-built-updates`` runs a short extra
phase with the limiter as built, to show the cap.

``--memory``: ``--memory-updates`` updates from ``--memory-people`` people (default 20,000 from
2,000, about 10 minutes here; the issue's size is 100,000 from 10,000), ``--concurrency`` in
flight, people arriving in ten waves (so the number of people seen grows steadily); VmRSS every
tenth of the run with the people seen, stored records, and the sizes of the per-chat structures,
then the slope of VmRSS against people. ``--memory-path channel`` (default) goes through the
whole channel, PTB and HTTP as above; ``--memory-path runtime`` calls what the channel calls
around the Runtime (``to_inbound``, ``Runtime.answer``) without PTB's
dispatch and HTTP: about 1.5 times faster, for the full size. The updates are generated as they
go, so the benchmark holds none of them. At the end it reports VmRSS after ``gc`` and
``malloc_trim`` and after closing the pooled database connections. ``--object-counts`` counts
the objects the garbage collector tracks, by type, at each checkpoint; ``--tracemalloc`` shows
which source lines' allocations grew between the first and the last checkpoint (it slows the
run down and inflates VmRSS: read its VmRSS column as meaningless).

For PostgreSQL without ``--database-url`` a throwaway database ``antam_bench_updates_<pid>`` is
created on 127.0.0.1:5432 as user postgres (trust authentication) and dropped at the end (also
on error). SQLite uses a temporary directory. The defaults take about 5 minutes on a busy
2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import gc
import hashlib
import json
import logging
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import asyncpg  # type: ignore[import-untyped]  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import text  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler  # noqa: E402

from bot.bootstrap import Services, open_services  # noqa: E402
from bot.channels.telegram import TelegramChannel, to_inbound  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.logs import quiet_libraries  # noqa: E402
from bot.memory import keep_giving_back  # noqa: E402
import bot.runtime as runtime_module  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from storage.crypto import encode_master_key, generate_master_key  # noqa: E402
from storage.referral_models import PeerLink  # noqa: E402
from telegram_mix import BOT_ID, COMMUNE, PEER_CODE, PROVINCE, Mix  # noqa: E402

TOKEN = f"{BOT_ID}:BENCH-token_abc"
SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PUBLIC_URL = "https://example.invalid"


# -- measurement helpers ----------------------------------------------------------------------


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pick(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


@dataclass
class PhaseResult:
    name: str
    backend: str
    mode: str
    updates: int
    wall_s: float
    cpu_s: float
    latencies_ms: list[float]
    api_calls: dict[str, int]
    rss_before: float
    rss_after: float
    problems: int = 0
    pacer_waits: int = 0
    webhook_methods: int = 0

    @property
    def throughput(self) -> float:
        return self.updates / self.wall_s

    def q(self, quantile: float) -> float:
        return pick(self.latencies_ms, quantile)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies_ms)

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / self.updates

    @property
    def calls_per_update(self) -> float:
        return sum(self.api_calls.values()) / self.updates


class Problems(logging.Handler):
    """Counts WARNING-and-above records (An Tâm logs failures without personal data)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.examples: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.examples[f"{record.name}: {record.getMessage()[:120]}"] += 1


PROBLEMS = Problems()


# -- the fake Bot API in its own process ----------------------------------------------------


class FakeServer:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FakeServer:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "fake_bot_api_server.py"), "--token", TOKEN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, self.process.stdout.readline)
        self.base_url = line.decode().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake Bot API did not start: {line!r}")
        self.session = aiohttp.ClientSession()
        return self

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/bot")

    async def stats(self) -> dict[str, int]:
        assert self.session is not None
        async with self.session.get(self.root + "/_bench/stats") as response:
            return dict((await response.json())["calls"])

    async def reset(self) -> None:
        assert self.session is not None
        async with self.session.post(self.root + "/_bench/reset") as response:
            await response.read()

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the fake stops when its stdin closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the two bots ------------------------------------------------------------------------------


async def start_floor(base_url: str) -> Application:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        if update.message is not None and update.message.text:
            said = update.message.text
        elif update.callback_query is not None:
            said = update.callback_query.data or "?"
        else:
            return
        await context.bot.send_message(chat.id, said)

    application = ApplicationBuilder().token(TOKEN).base_url(base_url).updater(None).build()
    application.add_handler(TypeHandler(Update, echo))
    await application.initialize()
    await application.start()
    return application


async def stop_application(application: Application) -> None:
    if application.running:
        await application.stop()
    await application.shutdown()


@dataclass
class AnTam:
    services: Services
    channel: TelegramChannel
    pacer_waits: list[int] = field(default_factory=lambda: [0])
    webhook_methods: list[int] = field(default_factory=lambda: [0])

    @property
    def application(self) -> Application:
        return self.channel.application

    def throttle(self, as_built: bool) -> None:
        """Switch the 30 messages/s overall limiter of AIORateLimiter on (as built) or off."""
        limiter = self.application.bot.rate_limiter
        if not hasattr(self, "_saved_limiter"):
            self._saved_limiter = limiter._base_limiter
        limiter._base_limiter = self._saved_limiter if as_built else None

    async def counts(self) -> dict[str, int]:
        names = {"persons": "persons", "counters": "counters", "referrals": "referrals", "processed": "processed_updates"}
        found = {}
        async with self.services.db.transaction() as session:
            for label, table in names.items():
                found[label] = int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        return found


@asynccontextmanager
async def antam(url: str, base_url: str, data_dir: Path) -> AsyncIterator[AnTam]:
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        master_key=SecretStr(encode_master_key(generate_master_key())),
        telegram_bot_token=SecretStr(TOKEN),
        telegram_api_base_url=base_url,
        public_url=PUBLIC_URL,
        log_level="WARNING",
    )
    services = await open_services(settings, warn=lambda _message: None)
    try:
        async with services.db.transaction() as session:
            # A peer educator's link, so that /start PEER and c:accept:PEER attribute counts.
            token_hash = hashlib.sha256(b"bench-peer").digest()
            session.add(
                PeerLink(
                    code=PEER_CODE,
                    alias="Bench peer",
                    commune=COMMUNE,
                    province=PROVINCE,
                    created_on=dt.date(2026, 11, 1),
                    active=True,
                    stats_token_hash=token_hash,
                )
            )
        channel = TelegramChannel(Runtime(services), settings)
        bench = AnTam(services, channel)
        real_sleep = channel.pacer.sleep

        async def counted_sleep(delay: float) -> None:
            bench.pacer_waits[0] += 1
            await real_sleep(delay)

        channel.pacer.sleep = counted_sleep
        await channel.start()
        # What every `antam run` worker also runs (bot/app.py): free memory goes back once a minute.
        trimming = asyncio.create_task(keep_giving_back())
        try:
            yield bench
        finally:
            trimming.cancel()
            await channel.stop()
    finally:
        await services.close()


# -- feeding updates ---------------------------------------------------------------------------


Receive = Callable[[bytes], Awaitable[None]]


def floor_receiver(application: Application) -> Receive:
    """The floor's webhook route, minus HTTP: parse the body, process the update."""
    bot = application.bot

    async def receive(body: bytes) -> None:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("not an update")
        await application.process_update(Update.de_json(data, bot))

    return receive


def antam_receiver(bench: AnTam) -> Receive:
    """An Tâm's webhook route after the secret check (``TelegramChannel.receive``), minus HTTP."""

    async def receive(body: bytes) -> None:
        response = await bench.channel.receive(body)
        if response.status != 200:
            raise RuntimeError(f"the webhook answered {response.status}")
        if response.content_type == "application/json":
            bench.webhook_methods[0] += 1  # answerCallbackQuery, carried out by Telegram

    return receive


async def feed(
    receive: Receive,
    bodies: Iterable[bytes],
    concurrency: int,
    on_done: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[list[float], float]:
    """Hand every body in as the webhook route does; per-update wall times (ms) and total seconds."""
    source: Iterator[bytes] = iter(bodies)
    latencies: list[float] = []

    async def one(body: bytes) -> None:
        t0 = time.perf_counter_ns()
        await receive(body)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        if on_done is not None:
            await on_done(len(latencies))

    async def worker() -> None:
        for body in source:
            await one(body)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def phase(
    name: str,
    backend: str,
    mode: str,
    receive: Receive,
    fake: FakeServer,
    bodies: list[bytes],
    concurrency: int,
    bench: AnTam | None = None,
    profile: cProfile.Profile | None = None,
) -> PhaseResult:
    gc.collect()
    await fake.reset()
    problems_before = PROBLEMS.count
    waits_before = bench.pacer_waits[0] if bench else 0
    methods_before = bench.webhook_methods[0] if bench else 0
    rss_before = rss_mib()
    cpu_before = cpu_seconds()
    if profile is not None:
        profile.enable()
    latencies, wall = await feed(receive, bodies, concurrency)
    if profile is not None:
        profile.disable()
    cpu = cpu_seconds() - cpu_before
    result = PhaseResult(
        name=name,
        backend=backend,
        mode=mode,
        updates=len(bodies),
        wall_s=wall,
        cpu_s=cpu,
        latencies_ms=sorted(latencies),
        api_calls=await fake.stats(),
        rss_before=rss_before,
        rss_after=rss_mib(),
        problems=PROBLEMS.count - problems_before,
        pacer_waits=(bench.pacer_waits[0] - waits_before) if bench else 0,
        webhook_methods=(bench.webhook_methods[0] - methods_before) if bench else 0,
    )
    print(line(result), flush=True)
    return result


def line(r: PhaseResult) -> str:
    calls = ", ".join(f"{k} {v / r.updates:.2f}" for k, v in sorted(r.api_calls.items()))
    return (
        f"  {r.name:<22} {r.mode:<13} n={r.updates:<6} p50 {r.median:6.2f} ms  p90 {r.q(0.9):6.2f}  "
        f"p99 {r.q(0.99):6.2f}  max {r.latencies_ms[-1]:7.1f}  mean {r.mean:6.2f}  "
        f"{r.throughput:7.0f} upd/s  cpu {r.cpu_ms:5.2f} ms/upd  RSS {r.rss_before:.0f}→{r.rss_after:.0f} MiB  "
        f"problems {r.problems}  pacer waits {r.pacer_waits}\n"
        f"  {'':<22} Bot API calls per update: {r.calls_per_update:.2f} ({calls}); "
        f"in the webhook's answer: {r.webhook_methods / r.updates:.2f}"
    )


# -- where An Tâm's time goes (instrumented, separate from the cost phases) --------------------


async def breakdown(bench: AnTam, bodies: list[bytes], backend: str) -> None:
    """Sequential updates with timers around the stages and a count of SQL statements."""
    from sqlalchemy import event

    channel, runtime = bench.channel, bench.channel.runtime
    spent: Counter[str] = Counter()
    statements: Counter[str] = Counter()

    def timed(name: str, function: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
        async def wrapper(*args: object, **kwargs: object) -> object:
            t0 = time.perf_counter_ns()
            try:
                return await function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter_ns() - t0

        return wrapper

    def on_execute(conn: object, cursor: object, statement: str, *rest: object) -> None:
        words = statement.split()
        head = " ".join(words[:3]) if words else "?"
        statements[head.replace('"', "")[:40]] += 1

    engine = bench.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    originals = {
        "answer": runtime.answer,
        "_send": channel._send,
    }
    setattr(runtime, "answer", timed("1 Runtime.answer (the transaction: dedupe, load, engine, effects, save)", runtime.answer))
    setattr(channel, "_send", timed("2 TelegramChannel._send (sendMessage over HTTP)", channel._send))
    original_respond = runtime_module.respond
    engine_ns = [0]

    def respond(*args: object, **kwargs: object) -> object:
        t0 = time.perf_counter_ns()
        try:
            return original_respond(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            engine_ns[0] += time.perf_counter_ns() - t0

    runtime_module.respond = respond  # type: ignore[assignment]
    try:
        latencies, wall = await feed(antam_receiver(bench), bodies, 1)
    finally:
        runtime_module.respond = original_respond
        for name, function in originals.items():
            setattr(runtime if name != "_send" else channel, name, function)
        event.remove(engine, "before_cursor_execute", on_execute)
    n = len(bodies)
    total = sum(latencies)
    print(f"  where the time goes, {backend}, {n} sequential updates, mean {total / n:.2f} ms per update:")
    accounted = 0.0
    for name, ns in sorted(spent.items()):
        ms = ns / 1e6 / n
        accounted += ms
        print(f"    {name[2:]:<72} {ms:6.2f} ms  {ms / (total / n):5.0%}")
    print(f"    {'  of which the pure engine (handlers.engine.respond, incl. intents)':<72} {engine_ns[0] / 1e6 / n:6.2f} ms")
    rest = total / n - accounted
    print(f"    {'the rest: json, Update.de_json, PTB dispatch, the webhook answer':<72} {rest:6.2f} ms  {rest / (total / n):5.0%}")
    print(f"    SQL statements per update: {sum(statements.values()) / n:.2f}")
    for head, count in statements.most_common():
        print(f"      {count / n:5.2f}  {head}")


# -- databases ---------------------------------------------------------------------------------


@asynccontextmanager
async def postgres_url(given: str | None, name_prefix: str = "antam_bench_updates") -> AsyncIterator[str]:
    if given:
        yield given
        return
    name = f"{name_prefix}_{os.getpid()}"
    admin = await asyncpg.connect(database="postgres", **SERVER)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://{SERVER['user']}@{SERVER['host']}:{SERVER['port']}/{name}"
    finally:
        admin = await asyncpg.connect(database="postgres", **SERVER)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped database {name}")
        finally:
            await admin.close()


async def server_version() -> str:
    try:
        conn = await asyncpg.connect(database="postgres", **SERVER)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"unavailable ({type(exc).__name__})"
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def machine(pg_version: str) -> str:
    cpu, memory = "unknown CPU", "?"
    for line_ in Path("/proc/cpuinfo").read_text().splitlines():
        if line_.startswith("model name"):
            cpu = line_.split(":", 1)[1].strip()
            break
    for line_ in Path("/proc/meminfo").read_text().splitlines():
        if line_.startswith("MemTotal:"):
            memory = f"{int(line_.split()[1]) / 1024 / 1024:.0f} GiB"
    return (
        f"machine: {platform.machine()}, {cpu}, {os.cpu_count()} cores, {memory}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"PostgreSQL {pg_version}; load average {os.getloadavg()[0]:.2f} at start"
    )


# -- the runs ----------------------------------------------------------------------------------


@dataclass
class Workload:
    warmup: list[bytes]
    sequential: list[bytes]
    concurrent: list[bytes]
    as_built: list[bytes]
    breakdown: list[bytes]


def workload(args: argparse.Namespace) -> Workload:
    mix = Mix(seed=args.seed)
    encode = lambda updates: [json.dumps(u, ensure_ascii=False).encode() for u in updates]  # noqa: E731
    people = lambda n: max(1, round(n * args.people / args.updates))  # noqa: E731
    return Workload(
        warmup=encode(mix.updates(args.warmup, people(args.warmup))),
        sequential=encode(mix.updates(args.updates, args.people)),
        concurrent=encode(mix.updates(args.updates, args.people)),
        # Three updates per person here: at 30 messages/s one person's updates must stay more
        # than a second apart, or An Tâm's per-chat pacer (1 message/s) would be measured instead.
        as_built=encode(mix.updates(args.as_built_updates, max(1, args.as_built_updates // 3))),
        # As many people as the sequential phase: fewer would meet the per-chat pacer.
        breakdown=encode(mix.updates(args.breakdown, args.people)),
    )


async def run_floor(fake: FakeServer, work: Workload, concurrency: int, label: str) -> list[PhaseResult]:
    floor = await start_floor(fake.base_url)
    try:
        receive = floor_receiver(floor)
        await feed(receive, work.warmup, concurrency)
        return [
            await phase(label, "-", "sequential", receive, fake, work.sequential, 1),
            await phase(label, "-", f"concurrent {concurrency}", receive, fake, work.concurrent, concurrency),
        ]
    finally:
        await stop_application(floor)


async def run_antam(
    backend: str, url: str, fake: FakeServer, work: Workload, args: argparse.Namespace, data_dir: Path
) -> list[PhaseResult]:
    results = []
    async with antam(url, fake.base_url, data_dir) as bench:
        bench.throttle(as_built=False)
        receive = antam_receiver(bench)
        await feed(receive, work.warmup, args.concurrency)
        profile = cProfile.Profile() if args.profile and backend == args.profile_backend else None
        label = f"An Tâm {backend}"
        results.append(await phase(label, backend, "sequential", receive, fake, work.sequential, 1, bench, profile))
        results.append(
            await phase(
                label, backend, f"concurrent {args.concurrency}", receive, fake, work.concurrent,
                args.concurrency, bench,
            )
        )
        if work.as_built:
            bench.throttle(as_built=True)
            results.append(
                await phase(
                    f"{label} as built", backend, f"concurrent {args.concurrency}", receive, fake,
                    work.as_built, args.concurrency, bench,
                )
            )
        if work.breakdown:
            bench.throttle(as_built=False)
            await breakdown(bench, work.breakdown, backend)
        print(f"  stored after the run: {await bench.counts()}", flush=True)
        if profile is not None:
            profile.dump_stats(args.profile)
            print(f"  profile of the sequential phase written to {args.profile}; top by own time:")
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(25)
    return results


def summary(results: list[PhaseResult]) -> None:
    floors = [r for r in results if r.name.startswith("floor")]
    print("\nsummary (ratios against the mean of the two floor runs of the same mode):")
    print(
        f"  {'':<27}{'mode':<15}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}{'upd/s':>8}{'cpu ms':>8}"
        f"{'× p50':>7}{'× mean':>8}{'× cpu':>7}{'calls':>7}"
    )
    for r in results:
        same = [f for f in floors if f.mode == r.mode]
        base_p50 = statistics.fmean(f.median for f in same) if same else float("nan")
        base_mean = statistics.fmean(f.mean for f in same) if same else float("nan")
        base_cpu = statistics.fmean(f.cpu_ms for f in same) if same else float("nan")
        print(
            f"  {r.name:<27}{r.mode:<15}{r.median:8.2f}{r.q(0.99):8.2f}{r.mean:9.2f}{r.throughput:8.0f}{r.cpu_ms:8.2f}"
            f"{r.median / base_p50:7.1f}{r.mean / base_mean:8.1f}{r.cpu_ms / base_cpu:7.1f}{r.calls_per_update:7.2f}"
        )


async def timing_run(args: argparse.Namespace) -> None:
    work = workload(args)
    print(
        f"workload: {args.updates:,} updates from {args.people:,} people per phase (sequential, then "
        f"{args.people:,} other people for the concurrent phase), {args.warmup} warm-up updates; "
        f"{sum(map(len, work.sequential)) / len(work.sequential):.0f} bytes per update on average"
    )
    print(f"RSS at start (workload generated): {rss_mib():.0f} MiB\n")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: list[PhaseResult] = []
    async with FakeServer() as fake:
        fake_cpu = fake.cpu_seconds()
        results += await run_floor(fake, work, args.concurrency, "floor (PTB echo)")
        for backend in backends:
            with tempfile.TemporaryDirectory(prefix="antam-bench-") as tmp:
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(tmp) / 'antam.db'}"
                    results += await run_antam(backend, url, fake, work, args, Path(tmp))
                else:
                    async with postgres_url(args.database_url) as url:
                        results += await run_antam(backend, url, fake, work, args, Path(tmp))
        results += await run_floor(fake, work, args.concurrency, "floor again")
        print(f"\nfake Bot API process: {fake.cpu_seconds() - fake_cpu:.1f} s CPU over the whole run")
    summary(results)
    print(f"\nRSS at the end: {rss_mib():.0f} MiB, peak {peak_rss_mib():.0f} MiB")
    if PROBLEMS.count:
        print(f"\nwarnings and errors logged: {PROBLEMS.count}")
        for message, count in PROBLEMS.examples.most_common(10):
            print(f"  {count:>6} × {message}")


async def memory_run(args: argparse.Namespace) -> None:
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    async with FakeServer() as fake:
        for backend in backends:
            with tempfile.TemporaryDirectory(prefix="antam-bench-") as tmp:
                if backend == "sqlite":
                    await memory_one(backend, f"sqlite+aiosqlite:///{Path(tmp) / 'antam.db'}", fake, args, Path(tmp))
                else:
                    async with postgres_url(args.database_url) as url:
                        await memory_one(backend, url, fake, args, Path(tmp))


async def memory_one(backend: str, url: str, fake: FakeServer, args: argparse.Namespace, data_dir: Path) -> None:
    total, people = args.memory_updates, args.memory_people
    every = args.memory_every or max(1, total // 10)
    # A person's next update comes a wave later: at least 200 people a wave, so that nobody
    # writes faster than An Tâm's per-chat pacer lets replies out (1 message/s after 3).
    wave = args.wave or max(people // 10, min(people, 200))
    print(
        f"memory on {backend}, through the {args.memory_path}: {total:,} updates from {people:,} people, "
        f"{args.concurrency} in flight, "
        f"people arriving in waves of {wave:,}; VmRSS every {every:,} updates"
    )
    mix = Mix(seed=args.seed, first_user=7_500_000_000)
    bodies = (json.dumps(u, ensure_ascii=False).encode() for u in mix.updates(total, people, wave=wave))
    gc.collect()
    rss0 = rss_mib()
    print(f"  before the channel starts: VmRSS {rss0:.1f} MiB")
    async with antam(url, fake.base_url, data_dir) as bench:
        bench.throttle(as_built=False)
        rows: list[tuple[int, int, float, float]] = []
        started = time.perf_counter()
        print(
            f"  {'updates':>8} {'people':>7} {'records':>8} {'VmRSS MiB':>10} {'peak':>6} {'upd/s':>6} "
            f"{'p50 ms':>7} {'p99 ms':>7}  (pacer buckets, chat locks, group limiters, db connections)"
        )
        rss_start = rss_mib()
        print(f"  {0:>8} {0:>7} {0:>8} {rss_start:>10.1f} {peak_rss_mib():>6.0f}")
        last = [time.perf_counter()]
        latencies_all: list[float] = []

        async def checkpoint(done: int) -> None:
            if done % every:
                return
            now = time.perf_counter()
            counts = await bench.counts()
            seen = mix.next_user - 7_500_000_000
            rss = rss_mib()
            channel = bench.channel
            pool = bench.services.db.engine.sync_engine.pool
            sizes = (
                len(channel.pacer.buckets._state),
                len(channel.locks._locks),
                len(channel.application.bot.rate_limiter._group_limiters),
                pool.checkedin() + pool.checkedout(),  # type: ignore[attr-defined]
            )
            chunk = sorted(latencies_all)
            latencies_all.clear()  # only the last window is kept: the bench itself must not grow
            print(
                f"  {done:>8,} {seen:>7,} {counts['persons']:>8,} {rss:>10.1f} {peak_rss_mib():>6.0f} "
                f"{every / (now - last[0]):>6.0f} {pick(chunk, 0.5):>7.2f} {pick(chunk, 0.99):>7.2f}  {sizes}",
                flush=True,
            )
            rows.append((done, seen, rss, now - started))
            last[0] = now
            if args.object_counts:
                gc.collect()
                snapshots.append(Counter(type(o).__qualname__ for o in gc.get_objects()))
            if args.tracemalloc:
                traces.append(tracemalloc.take_snapshot())

        snapshots: list[Counter[str]] = []
        traces: list[tracemalloc.Snapshot] = []
        if args.tracemalloc:
            tracemalloc.start(1)
        await feed_shared(bench, bodies, args.concurrency, latencies_all, checkpoint, args.memory_path)
        if len(traces) >= 2:
            # Every Python allocation (str and bytes too), by the line that made it.
            grown = traces[-1].compare_to(traces[0], "lineno")
            print(
                f"  tracemalloc: Python allocations {sum(s.size_diff for s in grown) / 2**20:+.2f} MiB "
                f"between the first and the last checkpoint; largest changes:"
            )
            for stat in grown[:8]:
                frame = stat.traceback[0]
                place = frame.filename.split("site-packages/")[-1].replace("/work/main/", "")
                print(f"    {stat.size_diff / 2**10:+9.1f} KiB {stat.count_diff:+8,} blocks  {place}:{frame.lineno}")
            tracemalloc.stop()
        if len(snapshots) >= 2:
            # Python objects (tracked by the garbage collector) that grew in number between the
            # first and the last checkpoint: what would grow with the number of people.
            first_counts, last_counts = snapshots[0], snapshots[-1]
            delta = Counter({k: last_counts[k] - first_counts[k] for k in set(first_counts) | set(last_counts)})
            print(
                f"  gc-tracked objects: {sum(first_counts.values()):,} at the first checkpoint, "
                f"{sum(last_counts.values()):,} at the last; largest changes: "
                + ", ".join(f"{name} {n:+,}" for name, n in delta.most_common(6))
            )
        elapsed = time.perf_counter() - started
        print(f"  {total:,} updates in {elapsed:.0f} s ({total / elapsed:.0f} updates/s); problems logged: {PROBLEMS.count}")
        for message, count in PROBLEMS.examples.most_common(5):
            print(f"    {count:>6} × {message}")
        if len(rows) >= 3:
            # Least-squares slope of VmRSS against people seen, leaving out the first checkpoint
            # (caches, pools and the allocator's arenas fill during the first thousands).
            xs, ys = [r[1] for r in rows[1:]], [r[2] for r in rows[1:]]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 1000 if sxx else float("nan")
            print(
                f"  VmRSS {rows[0][2]:.1f} MiB at the first checkpoint ({rows[0][1]:,} people), {rows[-1][2]:.1f} MiB "
                f"at the last ({rows[-1][1]:,} people), peak {peak_rss_mib():.1f} MiB; slope after the first "
                f"checkpoint: {slope:+.2f} MiB per 1,000 more people"
            )
        print(f"  stored: {await bench.counts()}")
        # What the database connections hold (SQLite: each pooled connection has its own page
        # cache, up to 2,000 KiB by default, and its aiosqlite thread its own malloc arena).
        before = rss_mib()
        connections = bench.services.db.engine.sync_engine.pool
        open_connections = connections.checkedin() + connections.checkedout()  # type: ignore[attr-defined]
        gc.collect()
        trimmed = _malloc_trim()
        after_trim = rss_mib()
        await bench.services.db.engine.dispose()
        gc.collect()
        _malloc_trim()
        print(
            f"  VmRSS {before:.1f} MiB; after gc{' and malloc_trim' if trimmed else ''}: {after_trim:.1f} MiB; "
            f"after also closing the {open_connections} pooled database connections: {rss_mib():.1f} MiB"
        )


def _malloc_trim() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


async def feed_shared(
    bench: AnTam,
    bodies: Iterator[bytes],
    concurrency: int,
    latencies: list[float],
    checkpoint: Callable[[int], Awaitable[None]],
    path: str,
) -> None:
    application = bench.application
    bot = application.bot
    runtime = bench.channel.runtime
    done = [0]

    async def through_runtime(body: bytes) -> None:
        # What the channel does around the Runtime, without PTB's dispatch and without HTTP:
        # translate, then answer (the update's one transaction).
        update = Update.de_json(json.loads(body), bot)
        inbound = to_inbound(update, None)
        if inbound is None:
            return
        await runtime.answer(inbound)

    async def worker() -> None:
        for body in bodies:
            t0 = time.perf_counter_ns()
            if path == "runtime":
                await through_runtime(body)
            else:
                await bench.channel.receive(body)
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
            done[0] += 1
            await checkpoint(done[0])

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway one)")
    parser.add_argument("--updates", type=int, default=1500, help="updates per measured phase")
    parser.add_argument("--people", type=int, default=150, help="distinct people per measured phase")
    parser.add_argument("--warmup", type=int, default=200, help="updates before each bot's phases, not counted")
    parser.add_argument("--concurrency", type=int, default=16, help="updates in flight in the concurrent phase")
    parser.add_argument("--as-built-updates", type=int, default=300, help="updates through the 30 msg/s limiter (0: skip)")
    parser.add_argument("--breakdown", type=int, default=300, help="instrumented sequential updates (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the sequential An Tâm phase into FILE")
    parser.add_argument("--profile-backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--memory", action="store_true", help="the memory run instead of the timing run")
    parser.add_argument("--memory-updates", type=int, default=20_000, help="the issue's size: 100000")
    parser.add_argument("--memory-people", type=int, default=2_000, help="the issue's size: 10000")
    parser.add_argument("--memory-every", type=int, help="print VmRSS every N updates (default: a tenth of the run)")
    parser.add_argument("--wave", type=int, help="memory run: people arriving together (default: a tenth)")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="memory run: which lines' allocations grew (slows the run down)"
    )
    parser.add_argument(
        "--object-counts", action="store_true", help="memory run: count Python objects by type at each checkpoint"
    )
    parser.add_argument(
        "--memory-path",
        choices=["channel", "runtime"],
        default="channel",
        help="memory run: the whole channel (PTB, HTTP to the fake) or the Runtime alone (faster)",
    )
    args = parser.parse_args()
    if args.backend != "postgresql" and args.database_url and args.backend == "sqlite":
        parser.error("--database-url is for PostgreSQL")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(PROBLEMS)
    quiet_libraries()
    print(machine(asyncio.run(server_version())), flush=True)
    asyncio.run(memory_run(args) if args.memory else timing_run(args))


if __name__ == "__main__":
    main()
