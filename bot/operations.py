"""The `antam` commands that need the database and services: run, chat, db upgrade, keys
rotate, purge, and the staff, referral, peer, indicator and report commands.

bot/cli.py imports this module only when one of them runs (it loads the whole server).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from aiohttp import web

from bot import logs, referral_commands
from bot.app import make_app
from bot.bootstrap import Services, StartupError, open_services
from bot.channels import console
from bot.config import ConfigError, Settings, load_settings
from bot.counselling import Desk
from bot.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bot.maintenance import purge
from bot.runtime import Runtime
from bot.staff import commands as staff_commands
from content.pack import ContentError
from storage.crypto import CryptoError
from storage.db import StorageError
from storage.keys import RETIRED_KEY_GRACE, rotate_keys


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Carry out one of this module's commands; errors are printed and give the exit code."""
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        if args.command == "run":
            return asyncio.run(_with_services(settings, lambda s: _run_server(s, out)))
        if args.command == "chat":
            return asyncio.run(_with_services(settings, lambda s: _chat(s, args.user, args.json)))
        if args.command == "db":
            return asyncio.run(_db_upgrade(settings, out))
        if args.command == "keys":
            return asyncio.run(_with_services(settings, lambda s: _keys_rotate(s, out)))
        if args.command == "purge":
            return asyncio.run(_with_services(settings, lambda s: _purge(s, out)))
        if args.command == "staff":
            return staff_commands.main(settings, args, out)
        if args.command in ("referral", "peer", "indicator", "report"):
            return asyncio.run(_with_services(settings, lambda s: referral_commands.run(s, args, out)))
    except ConfigError as exc:
        print(f"antam: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ContentError as exc:
        print(f"antam: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (CryptoError, StartupError) as exc:
        print(f"antam: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as exc:
        print(f"antam: database error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[int]]) -> int:
    services = await open_services(settings)
    try:
        return await work(services)
    finally:
        await services.close()


async def _run_server(services: Services, out: TextIO) -> int:
    settings = services.settings
    # Handlers first: a SIGTERM that arrives while the server is still starting stops it cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(services), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}") from exc
    # Only once the server listens: a password printed by a start that then fails would be lost.
    await staff_commands.ensure_first_admin(services, out)
    url = f"http://{settings.http_host}:{settings.http_port}"
    print(f"An Tâm đang chạy / is running: {url}/  (Ctrl-C để dừng / to stop)", file=out, flush=True)
    try:
        await stop.wait()
    finally:
        print("Đang dừng / stopping…", file=out, flush=True)
        await runner.cleanup()
    return EXIT_OK


async def _chat(services: Services, user: str, as_json: bool) -> int:
    runtime = Runtime(services)
    if as_json:
        return await console.run_json(runtime.answer, user, sys.stdin, sys.stdout, sys.stderr)
    return await console.run_interactive(runtime.answer, user, sys.stdin, sys.stdout)


async def _db_upgrade(settings: Settings, out: TextIO) -> int:
    # Opening the services verifies the key before migrating, then migrates.
    async def done(services: Services) -> int:
        print(f"Database is up to date: {services.db.dialect}", file=out)
        return EXIT_OK

    return await _with_services(settings, done)


async def _keys_rotate(services: Services, out: TextIO) -> int:
    report = await rotate_keys(services.db, services.secrets, now=services.clock.now())
    print(f"New data key #{report.new_key_id} is active; re-encrypted {report.reencrypted} record(s).", file=out)
    if report.deleted_key_ids:
        print(f"Deleted retired key(s): {', '.join(f'#{k}' for k in report.deleted_key_ids)}.", file=out)
    if report.kept_key_ids:
        minutes = int(RETIRED_KEY_GRACE.total_seconds() // 60)
        kept = ", ".join(f"#{k}" for k in report.kept_key_ids)
        print(
            f"Retired key(s) {kept} stay readable for {minutes} minutes, in case a running worker still "
            "uses them; `antam purge` (run hourly by `antam run`) deletes them after that.",
            file=out,
        )
    return EXIT_OK


async def _purge(services: Services, out: TextIO) -> int:
    report = await purge(services)
    expired = await Desk(services).expire()  # `antam run` also does this every minute
    if expired:
        hours = services.settings.counselling_transcript_hours
        print(f"Closed {expired} counsellor chat(s) with no message for {hours} hours; their messages are deleted.", file=out)
    print(
        f"Removed {report.removed_records} record(s) inactive since before {report.cutoff.isoformat()} "
        f"(retention {services.settings.retention_days} days).",
        file=out,
    )
    if report.unlinked_referrals or report.deleted_referrals:
        print(
            f"Referral codes: {report.unlinked_referrals} expired code(s) unlinked from their holder, "
            f"{report.deleted_referrals} long-expired code(s) deleted.",
            file=out,
        )
    if report.rolled_counter_days and report.counters_kept_from is not None:
        print(
            f"Daily counters: {report.rolled_counter_days} row(s) from before "
            f"{report.counters_kept_from.isoformat()} summed into monthly totals and deleted.",
            file=out,
        )
    if report.deleted_key_ids:
        print(f"Deleted retired key(s): {', '.join(f'#{k}' for k in report.deleted_key_ids)}.", file=out)
    return EXIT_OK
