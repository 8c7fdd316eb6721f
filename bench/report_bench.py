"""Benchmark the periodic reports on PostgreSQL over millions of counter events.

    .venv/bin/python bench/report_bench.py [--events N] [--years N] [--province CODE] [--rounds N]
                                          [--database-url postgresql+asyncpg://…]

Without ``--database-url`` it creates a throwaway database ``antam_bench_<pid>`` on
127.0.0.1:5432 as user postgres (trust authentication), and drops it at the end, also on error
or Ctrl-C. With ``--database-url`` it uses that database, which must have no counters yet, and
leaves the generated data in it.

What it does:

1. Creates the schema with the real migrations (``Database(url).upgrade()``).
2. Generates ``--events`` counter events for every commune of the province over ``--years``
   calendar years ending in 2026, entirely in SQL (``generate_series``, one pass, grouped into
   daily ``counters`` rows), then the monthly ``counter_months`` roll-up as the exact monthly
   sum of ``counters``, checked by a query; then ``VACUUM (ANALYZE)``, as autovacuum would do
   on a live database.

   **An event is one increment of one daily counter** (one ``Increment`` with count 1): a
   person accepting the notice, a referral issued, used or cancelled, or a person counted for
   the first time in a month, half-year or year for a unique indicator. So the sum of
   ``counters.count`` over all metrics equals ``--events``, and the script checks it.

   The events are skewed like real outreach: some communes are much busier than others (the
   commune of rank r gets a share ∝ 1 / r ** 1.2: the busiest about 31 %, the median
   about 0.9 %, the quietest 0.4 %), activity grows over the years (day offset drawn as
   ``u ** 0.7``), three channels (telegram 50 %, zalo 35 %, web 15 %), 45 % of events through
   one of the commune's 1–6 peer links, ten service types with unequal shares for referrals
   issued, used and cancelled, and unique indicators for months, half-years and years — the
   half-year and year ones crowd towards the start of their period, as first counts do.
3. Times ``build_report`` — the real code path: SQLAlchemy, the monthly roll-up, targets,
   small-cell suppression — for the province's annual report (``2026``), ``--rounds`` times
   after two warm-up runs, and the same for the half-year (``2026-H2``) and monthly
   (``2026-11``) reports; then the roll-up query alone, and the same annual aggregation run
   directly against the daily ``counters`` table, to show what the roll-up buys. Prints an
   ``EXPLAIN (ANALYZE, BUFFERS)`` summary line for both queries.
4. Prints the machine: CPU model, cores, memory, Python and the PostgreSQL server version.

Generation runs in one PostgreSQL backend with ``work_mem`` raised to 256 MB for that session
only; Python holds nothing but the timings. About 3–5 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from content.geo import commune_index  # noqa: E402
from content.pack import load_pack  # noqa: E402
from referrals.counting import REFERRAL_ISSUED, REFERRAL_REDEEMED, unique_metric  # noqa: E402
from referrals.indicators import Policy  # noqa: E402
from referrals.periods import Period  # noqa: E402
from referrals.report import INDICATORS  # noqa: E402
from referrals.reporting import build_report, province_scope  # noqa: E402
from storage.db import Database  # noqa: E402
from update_bench import machine, postgres_url  # noqa: E402

LAST_YEAR = 2026
CHANNELS = ("telegram", "zalo", "web")
PEER_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # as referrals.peers
SLOTS = 10_000  # resolution of the metric/detail and commune draws
COMMUNE_SKEW = 1.2

# Share of all events per metric (percent); referral events are split by service type below.
METRIC_SHARES = {
    "consented": 6.0,
    "reached:m": 14.0, "reached:h": 7.0, "reached:y": 4.0,
    "informed:m": 9.0, "informed:h": 4.5, "informed:y": 2.5,
    "connected:m": 3.0, "connected:h": 1.5, "connected:y": 1.0,
    "referral_issued": 28.0, "referral_redeemed": 17.0, "referral_cancelled": 2.5,
}
SERVICE_SHARES = {
    "hiv_testing": 30, "prep": 15, "condoms": 12, "counselling": 10, "sti": 8,
    "arv": 7, "methadone": 6, "needles": 5, "pep": 4, "legal_aid": 3,
}


def metric_details() -> tuple[list[str], list[str], list[int], list[float]]:
    """(metrics, details, kind: 0 day-stamped / 1 half-year / 2 year, share)."""
    metrics, details, kinds, shares = [], [], [], []
    total_service = sum(SERVICE_SHARES.values())
    for metric, share in METRIC_SHARES.items():
        if metric.startswith("referral_"):
            for service, weight in SERVICE_SHARES.items():
                metrics.append(metric)
                details.append(service)
                kinds.append(0)
                shares.append(share * weight / total_service)
        else:
            metrics.append(metric)
            details.append("")
            kinds.append({"h": 1, "y": 2}.get(metric[-1], 0))
            shares.append(share)
    return metrics, details, kinds, shares


def slot_table(shares: list[float]) -> list[int]:
    """SLOTS entries, each the 1-based index of a metric/detail, in proportion to its share."""
    total = sum(shares)
    bounds, acc = [], 0.0
    for share in shares:
        acc += share / total
        bounds.append(acc)
    out, index = [], 0
    for slot in range(SLOTS):
        while index < len(bounds) - 1 and (slot + 0.5) / SLOTS > bounds[index]:
            index += 1
        out.append(index + 1)
    return out


def sql_text_array(items: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + item.replace("'", "''") + "'" for item in items) + "]::text[]"


def sql_int_array(items: list[int]) -> str:
    return "ARRAY[" + ",".join(str(int(item)) for item in items) + "]::int[]"


async def generate(db: Database, args: argparse.Namespace, codes: list[int]) -> None:
    metrics, details, kinds, shares = metric_details()
    slots = slot_table(shares)
    # Commune of rank r (1 = busiest) gets a share ∝ 1 / r ** COMMUNE_SKEW (Zipf).
    commune_slots = slot_table([1 / rank**COMMUNE_SKEW for rank in range(1, len(codes) + 1)])
    rng = random.Random(12)
    order = codes[:]
    rng.shuffle(order)  # which commune is busiest has nothing to do with its code
    peers: list[str] = []
    peer_start: list[int] = []
    peer_count: list[int] = []
    for rank in range(len(order)):
        n = max(1, 6 - rank * 6 // len(order))  # busier communes have more peer educators
        peer_start.append(len(peers))
        peer_count.append(n)
        peers.extend("".join(rng.choice(PEER_ALPHABET) for _ in range(10)) for _ in range(n))
    first = dt.date(LAST_YEAR - args.years + 1, 1, 1)
    days = (dt.date(LAST_YEAR, 12, 31) - first).days + 1
    # One row per event from generate_series, drawn with random(); grouped into daily rows.
    # Volatile subqueries are not flattened, so each draw is made once per event.
    events_sql = f"""
        SELECT ci, mi, ch, pi,
               CASE kinds[mi]
                 WHEN 1 THEN hs + floor(random() * (d - hs + 1))::int
                 WHEN 2 THEN ys + floor(random() * (d - ys + 1))::int
                 ELSE d END AS day
        FROM (
          SELECT ci, mi, d, kinds,
                 make_date(extract(year FROM d)::int, CASE WHEN extract(month FROM d) <= 6 THEN 1 ELSE 7 END, 1) AS hs,
                 make_date(extract(year FROM d)::int, 1, 1) AS ys,
                 CASE WHEN rc < 0.50 THEN 1 WHEN rc < 0.85 THEN 2 ELSE 3 END AS ch,
                 CASE WHEN rp < 0.55 THEN 0
                      ELSE 1 + least(npeer[ci] - 1, floor((rp - 0.55) / 0.45 * npeer[ci])::int) END AS pi
          FROM (
            SELECT cslots[1 + floor(random() * {SLOTS})::int] AS ci,
                   slots[1 + floor(random() * {SLOTS})::int] AS mi,
                   DATE '{first.isoformat()}' + least({days - 1}, floor({days} * power(random(), 0.7))::int) AS d,
                   random() AS rc, random() AS rp,
                   kinds, npeer
            FROM generate_series(1, {int(args.events)}) AS g,
                 (SELECT {sql_int_array(slots)} AS slots, {sql_int_array(commune_slots)} AS cslots,
                         {sql_int_array(kinds)} AS kinds,
                         {sql_int_array(peer_count)} AS npeer) AS k
          ) AS drawn
        ) AS placed
    """
    insert_sql = f"""
        INSERT INTO counters (day, commune, metric, detail, channel, peer, province, count)
        SELECT e.day, (k.communes)[e.ci], (k.metrics)[e.mi], (k.details)[e.mi], (k.channels)[e.ch],
               CASE WHEN e.pi = 0 THEN '' ELSE (k.peers)[(k.pstart)[e.ci] + e.pi] END,
               {int(args.province)}, e.n
        FROM (SELECT day, ci, mi, ch, pi, count(*) AS n FROM ({events_sql}) AS ev GROUP BY 1, 2, 3, 4, 5) AS e,
             (SELECT {sql_int_array(order)} AS communes, {sql_text_array(metrics)} AS metrics,
                     {sql_text_array(details)} AS details, {sql_text_array(list(CHANNELS))} AS channels,
                     {sql_text_array(peers)} AS peers, {sql_int_array(peer_start)} AS pstart) AS k
        ORDER BY 1, 2, 3, 4, 5, 6
    """
    months_sql = """
        INSERT INTO counter_months (month, commune, metric, detail, province, count)
        SELECT date_trunc('month', day)::date, commune, metric, detail, province, sum(count)
        FROM counters GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4
    """
    targets_sql = f"""
        INSERT INTO indicator_targets (year, commune, indicator, province, estimate, target_percent, updated_at)
        SELECT y, c, i, {int(args.province)}, 200 + (c * 37 + y) % 900, 80.0, now()
        FROM generate_series({first.year}, {LAST_YEAR}) AS y, unnest({sql_int_array(codes)}) AS c,
             unnest({sql_text_array(list(INDICATORS))}) AS i
    """
    t0 = time.perf_counter()
    async with db.engine.begin() as conn:
        if await conn.scalar(text("SELECT count(*) FROM (SELECT 1 FROM counters LIMIT 1) x")):
            raise SystemExit("the database already has counters: give an empty database")
        await conn.execute(text("SET LOCAL work_mem = '256MB'"))
        await conn.execute(text(insert_sql))
        t1 = time.perf_counter()
        await conn.execute(text(months_sql))
        await conn.execute(text(targets_sql))
    t2 = time.perf_counter()
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("counters", "counter_months", "indicator_targets"):
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    t3 = time.perf_counter()
    print(
        f"generated in {t3 - t0:.1f} s: events → daily counters {t1 - t0:.1f} s, "
        f"monthly roll-up {t2 - t1:.1f} s, VACUUM (ANALYZE) {t3 - t2:.1f} s"
    )
    async with db.engine.connect() as conn:
        for table in ("counters", "counter_months", "indicator_targets"):
            rows = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
            size = await conn.scalar(text(f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))"))
            print(f"  {table}: {rows:,} rows, {size} with indexes")
        daily_total = await conn.scalar(text("SELECT sum(count)::bigint FROM counters"))
        monthly_total = await conn.scalar(text("SELECT sum(count)::bigint FROM counter_months"))
        unique_total = await conn.scalar(text("SELECT sum(count)::bigint FROM counters WHERE metric LIKE '%:%'"))
        mismatched = await conn.scalar(text("""
            SELECT count(*) FROM (
              SELECT date_trunc('month', day)::date AS month, commune, metric, detail,
                     min(province) AS province, sum(count) AS count
              FROM counters GROUP BY 1, 2, 3, 4) AS d
            FULL JOIN counter_months AS m USING (month, commune, metric, detail)
            WHERE d.count IS DISTINCT FROM m.count OR d.province IS DISTINCT FROM m.province
        """))
        per_commune = (await conn.execute(text(
            "SELECT sum(count)::bigint FROM counters GROUP BY commune ORDER BY 1 DESC"
        ))).scalars().all()
        per_year = (await conn.execute(text(
            "SELECT extract(year FROM month)::int, sum(count)::bigint FROM counter_months GROUP BY 1 ORDER BY 1"
        ))).all()
    print(
        f"  events: sum(counters.count) = {daily_total:,} (asked {args.events:,}: "
        f"{'equal' if daily_total == args.events else 'DIFFERENT'}), of which unique-indicator "
        f"increments {unique_total:,} and notice/referral events {daily_total - unique_total:,}"
    )
    print(
        f"  roll-up check: sum(counter_months.count) = {monthly_total:,}; (month, commune, metric, detail) "
        f"groups of counters differing from counter_months: {mismatched} "
        f"({'exact' if mismatched == 0 and monthly_total == daily_total else 'MISMATCH'})"
    )
    print(
        f"  skew: {len(per_commune)} communes, busiest {per_commune[0]:,} events, median "
        f"{statistics.median(per_commune):,.0f}, quietest {per_commune[-1]:,}; per year "
        + ", ".join(f"{year} {n / daily_total:.0%}" for year, n in per_year)
    )
    if daily_total != args.events or mismatched or monthly_total != daily_total:
        raise SystemExit("generated data failed its checks")


def summary(label: str, timings: list[float]) -> str:
    timings = sorted(timings)
    p90 = timings[min(len(timings) - 1, int(0.9 * len(timings)))]
    return (
        f"{label}: median {statistics.median(timings):.1f} ms, p90 {p90:.1f} ms, max {timings[-1]:.1f} ms "
        f"({len(timings)} rounds)"
    )


async def timed(rounds: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(2):
        await call()
    timings = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        await call()
        timings.append((time.perf_counter_ns() - t0) / 1e6)
    return timings


def plan_line(label: str, plan: dict[str, Any]) -> str:
    nodes: list[str] = []

    def walk(node: dict[str, Any], depth: int = 0) -> None:
        name = node["Node Type"]
        if node.get("Index Name"):
            name += f" using {node['Index Name']}"
        elif node.get("Relation Name"):
            name += f" on {node['Relation Name']}"
        extra = ""
        if node.get("Workers Launched"):
            extra = f", {node['Workers Launched']} workers"
        nodes.append(f"{name} ({node['Actual Rows'] * node.get('Actual Loops', 1):,} rows{extra})")
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    top = plan["Plan"]
    walk(top)
    hit = top.get("Shared Hit Blocks", 0)
    read = top.get("Shared Read Blocks", 0)
    return (
        f"EXPLAIN {label}: execution {plan['Execution Time']:.1f} ms, planning {plan['Planning Time']:.1f} ms, "
        f"buffers hit {hit:,} read {read:,} ({(hit + read) * 8 / 1024:.1f} MiB); " + " ← ".join(nodes)
    )


async def measure(db: Database, args: argparse.Namespace) -> None:
    communes = commune_index()
    pack = load_pack()
    policy = Policy()
    scope = province_scope(communes, args.province)
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "counter_months" in statement and not captured:
            captured.append((statement, parameters))

    async def report(period: Period) -> Any:
        async with db.transaction() as session:
            return await build_report(
                session, period=period, scope=scope, communes=communes, policy=policy,
                now=dt.datetime.now(dt.UTC), pack=pack,
            )

    year = Period.parse(str(LAST_YEAR))
    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    annual = await report(year)
    event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    for key in (str(LAST_YEAR), f"{LAST_YEAR}-H2", f"{LAST_YEAR}-11"):
        period = Period.parse(key)
        built = annual if period == year else await report(period)
        tables = (built.people, built.issued, built.redeemed)
        cells = sum(len(row) for table in tables for row in table.body)
        hidden = sum(cell.hidden for table in tables for row in table.body for cell in row)
        print(
            f"report {key} for {scope.name}: {len(built.communes)} communes, {len(built.service_types)} referral "
            f"columns, referrals issued {built.issued.grand_total.shown if built.issued.grand_total else None}, "
            f"{hidden} of {cells} body cells hidden (<{policy.threshold} or masked)"
        )
        print(summary(f"build_report {key:<8}", await timed(args.rounds, partial(report, period))), flush=True)

    metrics = [unique_metric(i, year.kind) for i in INDICATORS] + [REFERRAL_ISSUED, REFERRAL_REDEEMED]
    daily_sql = text("""
        SELECT commune, metric, detail, sum(count) FROM counters
        WHERE province = :province AND day BETWEEN :start AND :end AND metric = ANY(:metrics)
        GROUP BY commune, metric, detail
    """)
    params = {"province": args.province, "start": year.start, "end": year.end, "metrics": metrics}
    statement, parameters = captured[0]

    async def rollup_query() -> Any:
        async with db.engine.connect() as conn:
            return (await conn.exec_driver_sql(statement, parameters)).all()

    async def daily_query() -> Any:
        async with db.engine.connect() as conn:
            return (await conn.execute(daily_sql, params)).all()

    rollup_rows, daily_rows = await rollup_query(), await daily_query()
    same = {(c, m, d): int(n) for c, _p, m, d, n in rollup_rows} == {(c, m, d): int(n) for c, m, d, n in daily_rows}
    print(f"annual sums: roll-up {len(rollup_rows):,} groups, daily {len(daily_rows):,} groups, identical: {same}")
    print(summary("roll-up query alone (annual)", await timed(args.rounds, rollup_query)), flush=True)
    print(summary("daily counters query (annual)", await timed(max(5, args.rounds // 2), daily_query)), flush=True)
    async with db.engine.connect() as conn:
        explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
        plan: Any = (await conn.exec_driver_sql(explain + statement, parameters)).scalar()
        print(plan_line("roll-up", (json.loads(plan) if isinstance(plan, str) else plan)[0]))
        plan = (await conn.execute(text(explain + daily_sql.text), params)).scalar()
        print(plan_line("daily  ", (json.loads(plan) if isinstance(plan, str) else plan)[0]))
        print(f"roll-up SQL as sent by monthly_sums: {' '.join(statement.split())}")


async def run(args: argparse.Namespace) -> None:
    codes = sorted(code for code, c in commune_index().by_code.items() if c.province_code == args.province)
    if not codes:
        raise SystemExit(f"province {args.province} has no 2025 communes")
    if args.database_url and make_url(args.database_url).get_backend_name() != "postgresql":
        raise SystemExit("this benchmark is for PostgreSQL")
    async with postgres_url(args.database_url, name_prefix="antam_bench") as url:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                version = await conn.scalar(text("SHOW server_version"))
            print(machine(version))
            print(
                f"database {make_url(url).database}{'' if args.database_url else ' (throwaway)'}; "
                f"{args.events:,} events, {args.years} years to {LAST_YEAR}, province {args.province} "
                f"({len(codes)} communes)",
                flush=True,
            )
            await db.upgrade()
            await generate(db, args, codes)
            await measure(db, args)
        finally:
            await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway one)")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--province", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if args.events < 1 or not 1 <= args.years <= 20 or args.rounds < 1:
        parser.error("--events, --years (1-20) and --rounds must be positive")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        sys.exit(130)  # the throwaway database was dropped on the way out


if __name__ == "__main__":
    main()
