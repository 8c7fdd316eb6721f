"""Use cases on staff accounts, shared by `antam staff …` and the staff app's account pages.

Each takes the session, ``now`` and the acting account's name, changes one account and writes
its audit entry in the same transaction, or says which rule stopped it (a message key the page
shows). Passwords arrive
already hashed: hashing is slow on purpose and runs outside the transaction (bot/staff/passwords.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.staff import (
    AuditAction,
    Role,
    StaffAccount,
    add_audit,
    clear_totp,
    create_account,
    get_account,
    set_active,
    set_password,
)


@dataclass(frozen=True)
class Changed:
    """The account after a change, or as it was with ``refused``: the message key of the rule
    that stopped the change (staff.account.error.*; nothing was changed or audited)."""

    account: StaffAccount
    refused: str | None = None


class AccountChange(StrEnum):
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    REQUIRE_TOTP = "require_totp"
    WAIVE_TOTP = "waive_totp"
    RESET_TOTP = "totp_reset"
    COUNSELS = "counsels"  # a staff or admin account also counsels
    STOPS_COUNSELLING = "stops_counselling"


_AUDIT = {
    AccountChange.DEACTIVATE: AuditAction.ACCOUNT_DEACTIVATED,
    AccountChange.REACTIVATE: AuditAction.ACCOUNT_REACTIVATED,
    AccountChange.REQUIRE_TOTP: AuditAction.TOTP_REQUIRED,
    AccountChange.WAIVE_TOTP: AuditAction.TOTP_NOT_REQUIRED,
    AccountChange.RESET_TOTP: AuditAction.TOTP_RESET,
    AccountChange.COUNSELS: AuditAction.COUNSELS,
    AccountChange.STOPS_COUNSELLING: AuditAction.STOPS_COUNSELLING,
}


class CommuneOfProvince(Protocol):
    """What the area check needs of a commune (content/geo.py's Commune has it)."""

    @property
    def code(self) -> int: ...

    @property
    def province_code(self) -> int: ...


class AreaProblem(StrEnum):
    """Why a new account's role, commune and province do not fit together; each door words it."""

    NO_COMMUNE = "no_commune"  # a staff account without a commune
    COMMUNE = "commune"  # not a 2025 commune code
    PROVINCE = "province"  # not a 2025 province code
    ADMIN_COMMUNE = "admin_commune"  # an admin given a commune
    OUTSIDE = "outside"  # outside what the acting admin covers
    NO_AREA = "no_area"  # a counsellor with neither a commune nor a province


class AreaRefused(ValueError):
    """The new account's area does not fit its role: every problem found, in the order found."""

    def __init__(self, problems: Sequence[AreaProblem]) -> None:
        super().__init__(", ".join(problems))
        self.problems = tuple(problems)


def _code(text: str) -> int | None:
    cleaned = text.strip()
    return int(cleaned) if cleaned.isdigit() and len(cleaned) <= 6 else None


def account_area(
    role: Role,
    *,
    commune: str | None,
    province: str | None,
    communes: Mapping[int, CommuneOfProvince],
    provinces: Container[int],
    may_cover: Callable[[int | None], bool] = lambda province: True,
) -> tuple[int | None, int | None]:
    """The (commune, province) a new account of ``role`` works for, from the codes as typed (None:
    not given); raise AreaRefused. A staff account needs a 2025 commune and gets its province; an
    admin gets no commune and a province, or none for every province. ``may_cover`` says whether
    the acting admin covers a province (None: every province); the command line covers all. A
    counsellor works for a commune (and gets its province) or for a whole province."""
    if role is Role.COUNSELLOR and commune is None and province is None:
        raise AreaRefused([AreaProblem.NO_AREA])
    if role is Role.STAFF or (role is Role.COUNSELLOR and commune is not None):
        if commune is None:
            raise AreaRefused([AreaProblem.NO_COMMUNE])
        code = _code(commune)
        found = communes.get(code) if code is not None else None
        if found is None:
            raise AreaRefused([AreaProblem.COMMUNE])
        if not may_cover(found.province_code):
            raise AreaRefused([AreaProblem.OUTSIDE])
        return found.code, found.province_code
    problems = [AreaProblem.ADMIN_COMMUNE] if commune is not None else []
    chosen = None
    if province is None:
        if not may_cover(None):
            problems.append(AreaProblem.OUTSIDE)
    else:
        chosen = _code(province)
        if chosen is None or chosen not in provinces:
            problems.append(AreaProblem.PROVINCE)
        elif not may_cover(chosen):
            problems.append(AreaProblem.OUTSIDE)
    if problems:
        raise AreaRefused(problems)
    return None, chosen


def area_words(commune: int | None, province: int | None) -> str:
    """An account's area as audit detail words: "commune 3390", "province 12", "all provinces"."""
    if commune is not None:
        return f"commune {commune}"
    return f"province {province}" if province is not None else "all provinces"


async def open_account(
    session: AsyncSession,
    *,
    username: str,
    role: Role,
    commune: int | None,
    province: int | None,
    password_hash: str,
    now: dt.datetime,
    actor: str,
) -> StaffAccount:
    """Create an account that must change its one-time password; raise UsernameTaken."""
    account = await create_account(
        session, username=username, role=role, commune=commune, province=province, password_hash=password_hash, now=now
    )
    await add_audit(
        session, now=now, actor=actor, action=AuditAction.ACCOUNT_CREATED,
        detail=f"created {role} account {account.username} for {area_words(commune, province)}", province=province,
    )
    return account


async def reset_password(
    session: AsyncSession, account: StaffAccount, *, password_hash: str, now: dt.datetime, actor: str
) -> StaffAccount:
    """Give a (locked) account a new one-time password: its sessions end, any lockout is lifted."""
    set_password(account, password_hash, must_change=True)
    await add_audit(
        session, now=now, actor=actor, action=AuditAction.PASSWORD_RESET, detail=account.username,
        province=account.province,
    )
    return account


async def lock_admins(session: AsyncSession) -> Sequence[StaffAccount]:
    """Every admin account, locked until the transaction ends and read afresh."""
    return (
        await session.scalars(
            select(StaffAccount).where(StaffAccount.role == Role.ADMIN).with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()


class NotPermitted(Exception):
    """The acting account is not (or no longer) an active admin."""


class NoSuchAccount(Exception):
    """No account with that id, or one the acting admin may not manage (the same answer)."""


async def change_account(
    session: AsyncSession,
    *,
    actor_id: int,
    actor: str,
    target_id: int,
    change: AccountChange,
    may_manage: Callable[[StaffAccount], bool],
    now: dt.datetime,
) -> Changed:
    """Apply one change to a manageable account, audited; raise NotPermitted or NoSuchAccount.
    Nobody deactivates themselves or the last active admin (``Changed.refused``)."""
    # Lock the admins as well as the target: two admins deactivating each other at once must
    # not leave none.
    admins = await lock_admins(session)
    me = next((a for a in admins if a.id == actor_id), None)
    if me is None or not me.active:
        raise NotPermitted()
    account = await get_account(session, target_id, lock=True)
    if account is None or not may_manage(account):
        raise NoSuchAccount()
    if change is AccountChange.DEACTIVATE:
        if account.id == actor_id:
            return Changed(account, "staff.account.error.self")
        # Unreachable while the actor must be an active admin other than the target; kept so
        # that the rule holds by itself whatever changes around it.
        if account.is_admin and account.active and sum(a.active for a in admins) <= 1:
            return Changed(account, "staff.account.error.last_admin")
        set_active(account, False)
    elif change is AccountChange.REACTIVATE:
        set_active(account, True)
    elif change in (AccountChange.REQUIRE_TOTP, AccountChange.WAIVE_TOTP):
        account.totp_required = change is AccountChange.REQUIRE_TOTP
    elif change in (AccountChange.COUNSELS, AccountChange.STOPS_COUNSELLING):
        if account.role == Role.COUNSELLOR:
            return Changed(account, "staff.account.error.counsellor_role")
        account.counsels = change is AccountChange.COUNSELS
    else:
        clear_totp(account)
    await add_audit(
        session, now=now, actor=actor, action=_AUDIT[change], detail=account.username, province=account.province
    )
    return Changed(account)


__all__ = [
    "AccountChange", "AreaProblem", "AreaRefused", "Changed", "CommuneOfProvince", "NoSuchAccount", "NotPermitted",
    "account_area", "area_words", "change_account", "lock_admins", "open_account", "reset_password",
]
