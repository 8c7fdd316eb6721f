"""The `antam` command line (docs/architecture.md, "Contracts"). Every command says what it did; errors exit non-zero."""

from __future__ import annotations

import argparse
import datetime as dt
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

from aiohttp import web

from bot import logs, referral_commands
from bot.app import make_app
from bot.bootstrap import Services, StartupError, open_services
from bot.channels import console
from bot.config import ConfigError, Settings, load_settings
from bot.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bot.maintenance import purge
from bot.runtime import Runtime
from bot.staff import commands as staff_commands
from content.i18n import load_catalogs
from content.intents import load_phrases
from content.pack import ContentError, ContentPack, load_pack, stale_reviews
from content.safety import load_safety_net
from content.understand import build_understander
from storage.crypto import CryptoError
from storage.db import StorageError
from storage.keys import RETIRED_KEY_GRACE, rotate_keys



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antam", description="An Tâm: confidential outreach and referral bot")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="start the web server and every configured channel")
    chat = commands.add_parser("chat", help="talk to the bot in this terminal")
    chat.add_argument("--user", default="console", help="who is talking (pseudonymised like any platform id)")
    chat.add_argument("--json", action="store_true", help="scripted: JSON lines in and out")
    intent = commands.add_parser("intent", help="show the intent recognised in a text")
    intent.add_argument("text", nargs="?", help="the text; without it, one JSON line per stdin line")
    content = commands.add_parser("content", help="the content pack")
    content.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "check", help="validate the content pack and catalogs"
    )
    db = commands.add_parser("db", help="the database")
    db.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "upgrade", help="apply pending migrations"
    )
    keys = commands.add_parser("keys", help="encryption keys")
    keys.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "rotate", help="re-encrypt every record under a new data key"
    )
    commands.add_parser("purge", help="delete records inactive longer than the retention period")
    referral_commands.add_parsers(commands)
    staff_commands.add_parsers(commands)
    return parser


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


def _intent(text: str | None, out: TextIO) -> int:
    pack = load_pack()
    understander = build_understander(pack, load_phrases(), load_safety_net(topics=frozenset(pack.topics)))

    def show(line: str) -> None:
        found = understander.understand(line)
        shown: dict[str, object] = {"text": line, "intent": found.intent, "score": found.score, "topic": found.topic}
        shown["safety"] = {
            "cues": list(found.safety.cues),
            "help": list(found.safety.help),
            "timing": found.safety.timing,
            "marks": list(found.safety.marks),
        }
        shown["language"] = found.language
        if found.alternatives:
            shown["ask"] = list(found.alternatives)
        if found.smalltalk:
            shown["smalltalk"] = found.smalltalk
        out.write(json.dumps(shown, ensure_ascii=False) + "\n")

    if text is not None:
        show(text)
    else:
        for line in sys.stdin:
            show(line.rstrip("\r\n"))
    out.flush()
    return EXIT_OK


def _topic_ids() -> frozenset[str] | None:
    """The content pack's topic ids, or None when the pack itself has problems (listed apart)."""
    try:
        return frozenset(load_pack().topics)
    except ContentError:
        return None


def _content_check(out: TextIO) -> int:
    problems: list[str] = []
    counts = {}
    loaders: tuple[tuple[str, Callable[[], object]], ...] = (
        ("pack", load_pack),
        ("intents", load_phrases),
        ("catalogs", load_catalogs),
        ("safety cues", lambda: load_safety_net(topics=_topic_ids())),
    )
    for name, loader in loaders:
        try:
            loaded = loader()
        except ContentError as exc:
            problems.extend(exc.problems)
            continue
        counts[name] = loaded
    if "pack" in counts:
        loaded_pack = counts["pack"]
        assert isinstance(loaded_pack, ContentPack)
        problems.extend(stale_reviews(loaded_pack, dt.date.today()))
    if problems:
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(f"antam content check: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_FAILURE
    pack = load_pack()
    print(
        f"Content pack OK: {len(pack.topics)} topics, {len(pack.hotlines)} hotlines "
        f"({sum(line.verified for line in pack.hotlines)} verified), {len(pack.services)} services "
        f"({sum(s.verified for s in pack.services)} verified), {len(load_phrases())} intents with phrases, "
        f"{len(load_catalogs().keys())} interface messages in vi and en.",
        file=out,
    )
    return EXIT_OK


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "intent":
            return _intent(args.text, out)
        if args.command == "content":
            return _content_check(out)
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



