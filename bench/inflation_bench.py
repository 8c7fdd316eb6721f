"""How many fake "reached" people a minute one address, or one IPv6 /64, can add through the web chat.

    .venv/bin/python bench/inflation_bench.py [--seconds 120] [--max-people 5000] [--before DIR]

Each scenario starts An Tâm's real web server on 127.0.0.1 (a random port) on the embedded
default (SQLite and a key in a throwaway directory), with 127.0.0.1 as a trusted proxy, so
X-Forwarded-For stands for the visitor's address. A fake visitor then does what the probe
did, as fast as the server lets it, for ``--seconds`` or ``--max-people`` (whichever comes
first): a fresh session id, accept the notice, open one topic (two POST /chat/send). On a 429
it waits 0.2 s and tries again. Scenarios:

* ``one address`` — every request from 203.0.113.7;
* ``one /64``     — each fake person from a new address in 2001:db8:1:2::/64.

Reported: fake people attempted, people counted "reached" (the monthly counter, read from the
database), and both per minute. ``--before DIR`` first runs the scenarios against another
checkout of An Tâm (e.g. the code before the limits: ``git archive COMMIT | tar -x -C DIR``),
each checkout in a process of its own; the bench only uses what both have.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def scenario(name: str, address_of: Any, args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    from aiohttp import web

    from bot.app import make_app
    from bot.bootstrap import open_services
    from bot.config import load_settings
    from referrals.counters import daily_sums

    with tempfile.TemporaryDirectory(prefix="antam-inflation-") as data_dir:
        settings = load_settings({"ANTAM_DATA_DIR": data_dir, "ANTAM_TRUSTED_PROXIES": "127.0.0.1"}, env_file=None)
        services = await open_services(settings, warn=lambda _message: None)
        app = make_app(services, maintenance=False, telegram=False, exit_url="/healthz")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url, origin = f"http://127.0.0.1:{port}/chat/send", f"http://127.0.0.1:{port}"
        attempted = refused = 0
        started = time.monotonic()
        try:
            async with aiohttp.ClientSession() as http:

                async def send(session_id: str, address: str, payload: str) -> None:
                    nonlocal refused
                    headers = {"X-Forwarded-For": address, "Origin": origin}
                    while time.monotonic() - started < args.seconds:
                        body = {"session": session_id, "payload": payload}
                        async with http.post(url, json=body, headers=headers) as response:
                            await response.read()
                            if response.status != 429:
                                return
                        refused += 1
                        await asyncio.sleep(0.2)

                while time.monotonic() - started < args.seconds and attempted < args.max_people:
                    session_id, address = secrets.token_urlsafe(18), address_of(attempted)
                    await send(session_id, address, "c:accept")
                    await send(session_id, address, "t:pep")
                    attempted += 1
            elapsed = time.monotonic() - started
            async with services.db.transaction() as session:
                sums = await daily_sums(
                    session, start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1),
                    metrics=["reached:m", "not_counted_limit"], by=("metric",),
                )
        finally:
            await runner.cleanup()
            await services.close()
    minutes = elapsed / 60
    reached, held_back = sums.get(("reached:m",), 0), sums.get(("not_counted_limit",), 0)
    return {
        "name": name, "seconds": elapsed, "attempted": attempted, "reached": reached, "not_counted": held_back,
        "refused": refused, "attempted_per_min": attempted / minutes, "reached_per_min": reached / minutes,
    }


async def run_scenarios(args: argparse.Namespace) -> None:
    """In the child process: the checkout to measure is first on PYTHONPATH."""
    import bot

    print(f"code: {Path(bot.__file__).resolve().parent.parent}", flush=True)
    scenarios = [
        ("one address", lambda n: "203.0.113.7"),
        ("one /64", lambda n: f"2001:db8:1:2::{n + 1:x}"),
    ]
    print(f"{'scenario':<12} {'seconds':>7} {'attempted':>9} {'reached':>7} {'not counted':>11} {'429s':>6} "
          f"{'attempted/min':>13} {'reached/min':>11}")
    for name, address_of in scenarios:
        r = await scenario(name, address_of, args)
        print(f"{r['name']:<12} {r['seconds']:7.1f} {r['attempted']:9d} {r['reached']:7d} {r['not_counted']:11d} "
              f"{r['refused']:6d} {r['attempted_per_min']:13.1f} {r['reached_per_min']:11.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--max-people", type=int, default=5000)
    parser.add_argument("--before", help="another checkout of An Tâm to measure first (e.g. the code before the limits)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600 or not 1 <= args.max_people <= 100_000:
        parser.error("--seconds must be 1-600 and --max-people 1-100000")
    if args.child:
        asyncio.run(run_scenarios(args))
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from update_bench import machine

    print(machine("not used (SQLite, the embedded default)"))
    print(f"each scenario: at most {args.seconds:.0f} s or {args.max_people} fake people")
    for label, code in (("before", args.before), ("after", str(ROOT))):
        if code is None:
            continue
        print(f"\n{label}:", flush=True)
        # A process of its own, so that the checkout measured is the one imported.
        env = {**os.environ, "PYTHONPATH": str(Path(code).resolve())}
        command = [sys.executable, __file__, "--child", "1", "--seconds", str(args.seconds),
                   "--max-people", str(args.max_people)]
        subprocess.run(command, env=env, cwd=tempfile.gettempdir(), check=True, timeout=4 * args.seconds + 120)


if __name__ == "__main__":
    main()
