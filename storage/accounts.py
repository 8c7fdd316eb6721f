"""Use cases on staff accounts, shared by `antam staff …` and the staff app's account pages.

Each takes the session, ``now`` and the acting account's name, changes one account and writes
its audit entry in the same transaction, or says which rule stopped it (a message key the page
shows). Passwords arrive
already hashed: hashing is slow on purpose and runs outside the transaction (bot/staff/passwords.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

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


_AUDIT = {
    AccountChange.DEACTIVATE: AuditAction.ACCOUNT_DEACTIVATED,
    AccountChange.REACTIVATE: AuditAction.ACCOUNT_REACTIVATED,
    AccountChange.REQUIRE_TOTP: AuditAction.TOTP_REQUIRED,
    AccountChange.WAIVE_TOTP: AuditAction.TOTP_NOT_REQUIRED,
    AccountChange.RESET_TOTP: AuditAction.TOTP_RESET,
}


def area_words(ward: int | None, province: int | None) -> str:
    """An account's area as audit detail words: "commune 3390", "province 12", "all provinces"."""
    if ward is not None:
        return f"commune {ward}"
    return f"province {province}" if province is not None else "all provinces"


async def open_account(
    session: AsyncSession,
    *,
    username: str,
    role: Role,
    ward: int | None,
    province: int | None,
    password_hash: str,
    now: dt.datetime,
    actor: str,
) -> StaffAccount:
    """Create an account that must change its one-time password; raise UsernameTaken."""
    account = await create_account(
        session, username=username, role=role, ward=ward, province=province, password_hash=password_hash, now=now
    )
    await add_audit(
        session, now=now, actor=actor, action=AuditAction.ACCOUNT_CREATED,
        detail=f"created {role} account {account.username} for {area_words(ward, province)}", province=province,
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
    else:
        clear_totp(account)
    await add_audit(
        session, now=now, actor=actor, action=_AUDIT[change], detail=account.username, province=account.province
    )
    return Changed(account)


__all__ = [
    "AccountChange", "Changed", "NoSuchAccount", "NotPermitted", "area_words", "change_account",
    "lock_admins", "open_account", "reset_password",
]
