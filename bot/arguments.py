"""The `antam` command line's arguments (docs/architecture.md, "Contracts").

Only the standard library and constants are imported here, so that `antam intent` and
`antam content check` start without loading the server (SQLAlchemy, aiohttp, the Telegram
client): bot/cli.py imports a command's implementation only when that command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from referrals.counting import ENGAGEMENTS, UNIQUE_INDICATORS

# The roles `antam staff add --role` accepts: storage/staff.py's Role values (a test keeps the
# two in step; that module imports SQLAlchemy, which this one must not).
ROLES = ("staff", "admin", "counsellor")


def parser() -> argparse.ArgumentParser:
    """The whole `antam` command line: every command, its actions and options."""
    top = argparse.ArgumentParser(prog="antam", description="An Tâm: confidential outreach and referral bot")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    _referral_parsers(commands)
    _staff_parsers(commands)
    return top



def _referral_parsers(commands: argparse._SubParsersAction) -> None:
    referral = commands.add_parser("referral", help="referral codes")
    referral_actions = referral.add_subparsers(dest="action", required=True, metavar="ACTION")
    redeem_parser = referral_actions.add_parser("redeem", help="mark a referral code used at a service")
    redeem_parser.add_argument("code", help="the code the person shows, e.g. 7KQ2-M9XA")
    _scope_arguments(redeem_parser, allow_all=False)

    peer = commands.add_parser("peer", help="peer-educator links")
    peer_actions = peer.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = peer_actions.add_parser("add", help="create a peer link with its QR codes")
    add.add_argument(
        "--commune", "--ward", dest="commune", metavar="CODE", type=int, required=True,
        help="the 2025 code of the commune (xã/phường) the peer educator works in (--ward still works)",
    )
    add.add_argument("--alias", required=True, help="a nickname for the link (never a real name)")
    add.add_argument("--out", type=Path, help="folder for the QR code images (default: DATA_DIR/peers)")
    add.add_argument("--bot-username", help="the Telegram bot's username, for the t.me link")
    listing = peer_actions.add_parser("list", help="list peer links")
    _scope_arguments(listing, allow_all=True, required=False)
    for name, text in (("deactivate", "stop a link attributing new counts"), ("activate", "turn a link on again")):
        toggle = peer_actions.add_parser(name, help=text)
        toggle.add_argument("code")
    stats = peer_actions.add_parser("stats", help="a peer link's own counts, small cells hidden")
    stats.add_argument("code")
    stats.add_argument("--period", required=True, help="2026-03, 2026-H1 or 2026")

    indicator = commands.add_parser("indicator", help="population estimates, targets, the minimum package")
    indicator_actions = indicator.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_parser = indicator_actions.add_parser("set", help="set a commune's estimate and/or target for a year")
    set_parser.add_argument(
        "--commune", "--ward", dest="commune", metavar="CODE", type=int, required=True,
        help="the 2025 commune (xã/phường) code (--ward still works)",
    )
    set_parser.add_argument("--year", type=int, required=True)
    set_parser.add_argument("--indicator", default="reached", choices=UNIQUE_INDICATORS)
    set_parser.add_argument("--estimate", type=int, help="population-size estimate for the year")
    set_parser.add_argument("--target", type=float, help="target percentage (default 70)")
    show = indicator_actions.add_parser("show", help="estimates and targets for a year")
    show.add_argument("--year", type=int, required=True)
    _scope_arguments(show, allow_all=True, required=False)
    package = indicator_actions.add_parser("package", help="show or set what counts a person as reached")
    package.add_argument("kinds", nargs="?", help=f"comma-separated, from: {','.join(ENGAGEMENTS)}")
    threshold = indicator_actions.add_parser("threshold", help="show or set the small-cell threshold")
    threshold.add_argument("value", nargs="?", type=int)

    report = commands.add_parser("report", help="the periodic report (small cells hidden)")
    report.add_argument("scope_all", nargs="?", choices=["all"], help="every commune")
    report.add_argument("--period", required=True, help="2026-03, 2026-H1 or 2026")
    _scope_arguments(report, allow_all=True, required=False)
    report.add_argument("--format", default="table", choices=["table", "csv", "xlsx", "dhis2"])
    report.add_argument("--output", type=Path, help="write to this file (required for xlsx unless stdout is redirected)")
    report.add_argument("--locale", default="vi", choices=["vi", "en"])
    report.add_argument("--dhis2-mapping", type=Path, help="YAML/JSON data-element and org-unit mapping")



def _scope_arguments(parser: argparse.ArgumentParser, *, allow_all: bool, required: bool = True) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--commune", "--ward", dest="commune", metavar="CODE", type=int,
        help="a commune, xã/phường (2025 code, e.g. 3390 for Xã Bình Lư; --ward still works)",
    )
    group.add_argument("--province", type=int, help="a province (2025 code, e.g. 12 for Lai Châu)")
    if allow_all:
        group.add_argument("--all", action="store_true", help="every commune")



def _staff_parsers(commands: argparse._SubParsersAction) -> None:
    """Add `staff add|list|reset` to the `antam` parser (``commands`` is its subparsers object)."""
    staff = commands.add_parser("staff", help="staff accounts of the web app")
    actions = staff.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create an account and print its one-time password")
    add.add_argument("username", help="3-32 characters of a-z, 0-9, '.', '_' and '-'")
    add.add_argument("--role", required=True, choices=ROLES)
    where = add.add_mutually_exclusive_group()
    where.add_argument(
        "--commune", "--ward", dest="commune", metavar="CODE",
        help="the 2025 code of the commune (xã/phường) a staff account works for (--ward still works)",
    )
    where.add_argument(
        "--province", metavar="CODE", help="the province an admin or a counsellor covers (an admin without it: all)"
    )
    add.add_argument("--counsels", action="store_true", help="a staff or admin account that also counsels")
    actions.add_parser("list", help="list the accounts")
    reset = actions.add_parser("reset", help="give an account a new one-time password")
    reset.add_argument("username")

