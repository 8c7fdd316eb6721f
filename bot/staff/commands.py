"""`antam staff …`: accounts from the command line, and the first admin at `antam run`.

One-time passwords are printed once and never stored or logged; the person changes theirs at
the first login. Exit codes: 0 done, 1 failed (e.g. the username exists), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from bot.bootstrap import Services, open_services
from bot.config import Settings
from bot.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bot.staff.passwords import hash_password, new_one_time_password, one_time_form
from content.geo import CommuneIndex, commune_index
from storage.accounts import AreaProblem, AreaRefused, account_area, open_account, reset_password
from storage.staff import (
    AuditAction,
    InvalidUsername,
    Role,
    UsernameTaken,
    add_audit,
    count_active_admins,
    create_first_admin,
    get_by_username,
    list_accounts,
    normalise_username,
)

CLI_ACTOR = "cli"
FIRST_ADMIN = "admin"

_AREA_WORDS = {
    AreaProblem.NO_COMMUNE: "a staff account needs --commune CODE (its 2025 commune code)",
    AreaProblem.COMMUNE: "--commune {commune}: not a 2025 commune code",
    AreaProblem.PROVINCE: "--province {province}: not a 2025 province code",
    AreaProblem.ADMIN_COMMUNE: "an admin covers a province (--province CODE) or every province, not a commune",
    AreaProblem.OUTSIDE: "outside the area covered",  # not met here: the command line covers every province
    AreaProblem.NO_AREA: "a counsellor needs --commune CODE or --province CODE",
}


def _area(args: argparse.Namespace, communes: CommuneIndex) -> tuple[int | None, int | None]:
    """The new account's (commune, province); raise AreaRefused (storage/accounts.py)."""
    return account_area(
        Role(args.role), commune=args.commune, province=args.province,
        communes=communes.by_code, provinces=communes.provinces,
    )


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, before anything is opened (None: fine)."""
    if args.action in ("add", "reset"):
        try:
            normalise_username(args.username)
        except InvalidUsername as exc:
            return str(exc)
    if args.action != "add":
        return None
    try:
        _area(args, commune_index())
    except AreaRefused as refused:
        return _AREA_WORDS[refused.problems[0]].format(commune=args.commune, province=args.province)
    return None


def main(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    problem = usage_problem(args)
    if problem is not None:
        print(f"antam staff: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_with_services(settings, args, out))


async def _with_services(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    services = await open_services(settings)
    try:
        return await run(services, args, out)
    finally:
        await services.close()


async def run(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "add":
        return await _add(services, args, out)
    if args.action == "list":
        return await _list(services, out)
    return await _reset(services, args, out)


def _scope_label(services: Services, commune: int | None, province: int | None) -> str:
    communes = services.context.communes
    if commune is not None:
        found = communes.get(commune)
        return f"{found.label} [{commune:05d}]" if found else str(commune)
    if province is not None:
        return f"{communes.provinces.get(province, province)} [{province:02d}]"
    return "all provinces"


async def _add(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    role = Role(args.role)
    commune, province = _area(args, services.context.communes)  # checked by usage_problem
    one_time = new_one_time_password()
    password_hash = await asyncio.to_thread(hash_password, one_time_form(one_time))
    try:
        async with services.db.transaction() as db:
            account = await open_account(
                db, username=args.username, role=role, commune=commune, province=province, password_hash=password_hash,
                now=services.clock.now(), actor=CLI_ACTOR,
            )
            if args.counsels:
                account.counsels = True
    except UsernameTaken:
        print(f"antam staff: the username {normalise_username(args.username)!r} is taken", file=sys.stderr)
        return EXIT_FAILURE
    also = " (also counsels)" if args.counsels and role is not Role.COUNSELLOR else ""
    print(f"Created {role} account {account.username!r}{also} for {_scope_label(services, commune, province)}.", file=out)
    _print_one_time(out, account.username, one_time)
    return EXIT_OK


async def _list(services: Services, out: TextIO) -> int:
    now = services.clock.now()
    async with services.db.transaction() as db:
        accounts = await list_accounts(db)
    if not accounts:
        print("No staff accounts yet.", file=out)
        return EXIT_OK
    print(f"{'username':<32}  {'role':<10}  {'status':<22}  {'2FA':<8}  area", file=out)
    for account in accounts:
        status = "active" if account.active else "deactivated"
        if account.locked(now):
            status += ", locked"
        if account.must_change_password:
            status += ", new"
        factor = "on" if account.has_totp else ("required" if account.totp_required else "off")
        area = _scope_label(services, account.commune, account.province)
        role = account.role + ("+" if account.counsels and account.role != Role.COUNSELLOR else "")
        print(f"{account.username:<32}  {role:<10}  {status:<22}  {factor:<8}  {area}", file=out)
    return EXIT_OK


async def _reset(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    one_time = new_one_time_password()
    password_hash = await asyncio.to_thread(hash_password, one_time_form(one_time))
    now = services.clock.now()
    async with services.db.transaction() as db:
        account = await get_by_username(db, args.username, lock=True)
        if account is None:
            print(f"antam staff: no account named {normalise_username(args.username)!r}", file=sys.stderr)
            return EXIT_FAILURE
        await reset_password(db, account, password_hash=password_hash, now=now, actor=CLI_ACTOR)
    print(f"New one-time password for {account.username!r}; its sessions have ended and any lockout is lifted.",
          file=out)
    if not account.active:
        print("Note: this account is deactivated; an admin can reactivate it in the web app.", file=out)
    _print_one_time(out, account.username, one_time)
    return EXIT_OK


def _print_one_time(out: TextIO, username: str, one_time: str) -> None:
    print(f"  Tên đăng nhập / username:               {username}", file=out)
    print(f"  Mật khẩu dùng một lần / one-time password: {one_time}", file=out)
    print("  Mật khẩu này chỉ hiện một lần; phải đổi khi đăng nhập lần đầu.", file=out)
    print("  It is shown only this once and must be changed at the first login.", file=out, flush=True)


def staff_url(settings: Settings) -> str:
    base = settings.public_url or f"http://{settings.http_host}:{settings.http_port}"
    return base.rstrip("/") + "/staff/"


async def ensure_first_admin(services: Services, out: TextIO) -> bool:
    """On a database with no active admin, create `admin` and print its one-time password once.

    Several workers starting together create one account: the username is unique and the
    insert does nothing on a conflict, so only the worker whose row went in prints.
    """
    async with services.db.transaction() as db:
        if await count_active_admins(db):
            return False
    one_time = new_one_time_password()
    password_hash = await asyncio.to_thread(hash_password, one_time_form(one_time))
    now = services.clock.now()
    async with services.db.transaction() as db:
        account = await create_first_admin(db, username=FIRST_ADMIN, password_hash=password_hash, now=now)
        if account is not None:
            await add_audit(db, now=now, actor="system", action=AuditAction.FIRST_ADMIN, detail=account.username)
        elif not await count_active_admins(db):
            # Not a race lost to another worker: an account named "admin" exists but is no admin
            # or is deactivated. Say what to do instead of creating anything.
            print(
                "antam: there is no active admin account and the name 'admin' is taken; create one with "
                "`antam staff add NAME --role admin` or give 'admin' a new password with `antam staff reset admin`.",
                file=sys.stderr,
            )
    if account is None:
        return False
    print("", file=out)
    print("Tài khoản quản trị đầu tiên đã được tạo / The first admin account was created:", file=out)
    print(f"  Đăng nhập tại / log in at {staff_url(services.settings)}", file=out)
    _print_one_time(out, account.username, one_time)
    print("", file=out, flush=True)
    return True
