"""Staff accounts of the web app and their audit log.

An account is a username, a role and a scope: a staff member works for one commune (a 2025
commune code, with its province kept beside it so province admins can filter in SQL); an admin
covers one province, or every province when it has none. Passwords are stored only as
self-describing KDF hashes made above this layer; a TOTP secret is sealed with the key ring,
bound to its account's row.

The audit log says who did what and when, for admins. Its detail is short and never names a
person at risk: no referral code, pseudonym, address or free text, only counts, communes,
periods and formats ("redeemed a code for commune 3390"). A failed login for a name that is no
account keeps only a masked form of what was typed (``masked_username``: its first two
characters), since it may be a password typed into the wrong field or someone's real name.

Time is an argument everywhere (``now``); nothing here reads a clock.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Integer,
    String,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import KeyRing, sealed_key_id
from storage.db import insert_for
from storage.models import Base, SealedBytes, sealed_with_key

USERNAME = re.compile(r"^[a-z0-9._-]{3,32}$")
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
DETAIL_MAX = 200
# What a referral code looks like (docs/architecture.md, "Contracts"): such a thing must never reach the audit log.
# Codes are shown in upper case; usernames are lower case and years are digits only.
_CODE_LIKE = re.compile(
    r"(?<![0-9A-Za-z])(?=[0-9-]{0,8}[A-HJKMNP-TV-Z])[0-9A-HJKMNP-TV-Z]{4}-?[0-9A-HJKMNP-TV-Z]{4}(?![0-9A-Za-z])"
)
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{1,31}$")


class Role(StrEnum):
    STAFF = "staff"
    ADMIN = "admin"
    # Only counsels (the counsellor chat), for a province or one commune of it; sees no figures.
    COUNSELLOR = "counsellor"


class AuditAction(StrEnum):
    """Actions this module's callers record; later pages may add their own (same format)."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOCKED = "locked"
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password_changed"
    TOTP_ENABLED = "totp_enabled"
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    ACCOUNT_REACTIVATED = "account_reactivated"
    PASSWORD_RESET = "password_reset"
    TOTP_REQUIRED = "totp_required"
    TOTP_NOT_REQUIRED = "totp_not_required"
    TOTP_RESET = "totp_reset"
    FIRST_ADMIN = "first_admin"
    COUNSELS = "counsels"
    STOPS_COUNSELLING = "stops_counselling"


class StaffStorageError(Exception):
    """A staff account operation is not possible; the message says why (no personal data)."""


class InvalidUsername(StaffStorageError, ValueError):
    """A username is not 3-32 characters of a-z, 0-9, '.', '_' and '-'."""


class UsernameTaken(StaffStorageError):
    """Another account already has this username."""


class StaffAccount(Base):
    """One person who works with An Tâm's web app (never a person the bot serves)."""

    __tablename__ = "staff_accounts"
    __table_args__ = (
        CheckConstraint("role IN ('staff', 'admin', 'counsellor')", name="role"),
        # A staff account works for exactly one commune; an admin for a province or all.
        CheckConstraint("role <> 'staff' OR (ward IS NOT NULL AND province IS NOT NULL)", name="staff_scope"),
        CheckConstraint("role <> 'admin' OR ward IS NULL", name="admin_scope"),
        CheckConstraint("role <> 'counsellor' OR province IS NOT NULL", name="counsellor_scope"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    # Takes counselling cases (always true of the counsellor role; staff and admins may too).
    counsels: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # The column keeps its first name, "ward" (as do the CHECK constraints above: they are SQL).
    commune: Mapped[int | None] = mapped_column("ward", Integer)
    province: Mapped[int | None] = mapped_column(Integer, index=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Confirmed second factor, and one shown for enrolment but not yet confirmed with a code.
    totp_secret: Mapped[bytes | None] = mapped_column(SealedBytes)
    totp_pending: Mapped[bytes | None] = mapped_column(SealedBytes)
    totp_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The last 30-second step whose code was accepted: a code works once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Sessions carry the version they were made under; bumping it ends every session at once.
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:  # never print a hash or a sealed secret, even in a traceback
        return f"StaffAccount(id={self.id!r}, username={self.username!r}, role={self.role!r})"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and aware(self.locked_until) > now


class AuditEntry(Base):
    """Who did what, when; ``province`` is the province the action concerned (None: national)."""

    __tablename__ = "staff_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(32), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(String(DETAIL_MAX), nullable=False, default="")
    province: Mapped[int | None] = mapped_column(Integer, index=True)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def normalise_username(text: str) -> str:
    """The stored form of a username: trimmed, NFKC, lower case; raise InvalidUsername otherwise."""
    name = unicodedata.normalize("NFKC", text).strip().lower()
    if not USERNAME.match(name):
        raise InvalidUsername("a username is 3-32 characters of a-z, 0-9, '.', '_' and '-'")
    return name


# --- accounts ------------------------------------------------------------------------------


async def get_account(session: AsyncSession, account_id: int, *, lock: bool = False) -> StaffAccount | None:
    query = select(StaffAccount).where(StaffAccount.id == account_id)
    if lock:
        query = query.with_for_update()
    account: StaffAccount | None = await session.scalar(query.execution_options(populate_existing=True))
    return account


async def get_by_username(session: AsyncSession, username: str, *, lock: bool = False) -> StaffAccount | None:
    """The account with this username (any spelling that normalises to it), or None."""
    try:
        name = normalise_username(username)
    except InvalidUsername:
        return None
    query = select(StaffAccount).where(StaffAccount.username == name)
    if lock:
        query = query.with_for_update()
    account: StaffAccount | None = await session.scalar(query.execution_options(populate_existing=True))
    return account


async def list_accounts(session: AsyncSession, *, province: int | None = None) -> Sequence[StaffAccount]:
    """Every account, or only those inside ``province`` (staff of its communes, its admins)."""
    query = select(StaffAccount).order_by(StaffAccount.username)
    if province is not None:
        query = query.where(StaffAccount.province == province)
    return (await session.scalars(query)).all()


async def create_account(
    session: AsyncSession,
    *,
    username: str,
    role: Role,
    commune: int | None,
    province: int | None,
    password_hash: str,
    now: dt.datetime,
    must_change_password: bool = True,
) -> StaffAccount:
    """Add an account; raise UsernameTaken when the name exists (also under a concurrent insert)."""
    name = normalise_username(username)
    if role is Role.STAFF and (commune is None or province is None):
        raise StaffStorageError("a staff account needs a commune and its province")
    if role is Role.ADMIN and commune is not None:
        raise StaffStorageError("an admin account covers a province or every province, not a commune")
    if role is Role.COUNSELLOR and province is None:
        raise StaffStorageError("a counsellor account needs a province, and may name one commune of it")
    inserted = await _insert_if_absent(
        session,
        username=name,
        role=str(role),
        commune=commune,
        province=province,
        password_hash=password_hash,
        must_change_password=must_change_password,
        created_at=now,
        counsels=role is Role.COUNSELLOR,
    )
    if inserted is None:
        raise UsernameTaken(f"the username {name!r} is taken")
    account = await get_account(session, inserted)
    assert account is not None
    return account


async def create_first_admin(
    session: AsyncSession, *, username: str, password_hash: str, now: dt.datetime
) -> StaffAccount | None:
    """Create the first admin when there is no active admin; None when one exists (or won a race)."""
    if await count_active_admins(session):
        return None
    inserted = await _insert_if_absent(
        session,
        username=normalise_username(username),
        role=str(Role.ADMIN),
        commune=None,
        province=None,
        password_hash=password_hash,
        must_change_password=True,
        created_at=now,
    )
    return None if inserted is None else await get_account(session, inserted)


async def _insert_if_absent(session: AsyncSession, **values: object) -> int | None:
    # ON CONFLICT DO NOTHING: two workers (or two admins) creating the same name at once get
    # one row and a clean "taken", never a half-failed transaction.
    insert = insert_for(session.get_bind().dialect.name)
    defaults = {"totp_required": False, "failed_logins": 0, "active": True, "session_version": 0}
    statement = (
        insert(StaffAccount)
        .values(**{**defaults, **values})
        .on_conflict_do_nothing(index_elements=["username"])
        .returning(StaffAccount.id)
    )
    inserted: int | None = (await session.execute(statement)).scalar_one_or_none()
    return inserted


async def count_active_admins(session: AsyncSession) -> int:
    query = select(func.count()).select_from(StaffAccount).where(
        StaffAccount.role == Role.ADMIN, StaffAccount.active.is_(True)
    )
    return int(await session.scalar(query) or 0)


def end_sessions(account: StaffAccount) -> None:
    """Make every session of this account invalid from its next request on."""
    account.session_version = (account.session_version or 0) + 1


def set_password(account: StaffAccount, password_hash: str, *, must_change: bool) -> None:
    """Replace the password, end every session and clear a lockout."""
    account.password_hash = password_hash
    account.must_change_password = must_change
    account.failed_logins = 0
    account.locked_until = None
    end_sessions(account)


def set_active(account: StaffAccount, active: bool) -> None:
    account.active = active
    if not active:
        end_sessions(account)


async def record_failed_login(session: AsyncSession, account_id: int, *, now: dt.datetime) -> bool:
    """Count a failed password or code; lock for LOCKOUT after MAX_FAILURES. True when locked now."""
    account = await get_account(session, account_id, lock=True)
    if account is None:
        return False
    if account.locked(now):
        return True
    account.failed_logins = (account.failed_logins or 0) + 1
    if account.failed_logins >= MAX_FAILURES:
        account.failed_logins = 0
        account.locked_until = now + LOCKOUT
        await session.flush()
        return True
    await session.flush()
    return False


def record_login(account: StaffAccount, *, now: dt.datetime) -> None:
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now


# --- the second factor -----------------------------------------------------------------------


def totp_context(account_id: int, *, pending: bool = False) -> bytes:
    """Associated data binding a sealed TOTP secret to its account and column."""
    column = "totp_pending" if pending else "totp_secret"
    return f"staff_accounts.{column}:{account_id}".encode()


def open_totp(ring: KeyRing, account: StaffAccount, *, pending: bool = False) -> bytes | None:
    sealed = account.totp_pending if pending else account.totp_secret
    return None if sealed is None else ring.open(sealed, totp_context(account.id, pending=pending))


def set_pending_totp(ring: KeyRing, account: StaffAccount, secret: bytes) -> None:
    account.totp_pending = ring.seal(secret, totp_context(account.id, pending=True))


def confirm_totp(ring: KeyRing, account: StaffAccount, *, step: int) -> None:
    """Turn the pending secret (checked by the caller with a code) into the account's factor."""
    secret = open_totp(ring, account, pending=True)
    if secret is None:
        raise StaffStorageError("no second factor is waiting for confirmation")
    account.totp_secret = ring.seal(secret, totp_context(account.id))
    account.totp_pending = None
    account.totp_last_step = step


def clear_totp(account: StaffAccount) -> None:
    account.totp_secret = None
    account.totp_pending = None
    account.totp_last_step = None
    end_sessions(account)


async def reencrypt_staff_secrets(session: AsyncSession, ring: KeyRing) -> int:
    """Seal every TOTP secret again under the active key (for key rotation)."""
    count = 0
    query = select(StaffAccount).where(
        or_(StaffAccount.totp_secret.is_not(None), StaffAccount.totp_pending.is_not(None))
    )
    for account in (await session.scalars(query.with_for_update())).all():
        for pending in (False, True):
            sealed = account.totp_pending if pending else account.totp_secret
            if sealed is None or sealed_key_id(sealed) == ring.active_id:
                continue
            context = totp_context(account.id, pending=pending)
            resealed = ring.seal(ring.open(sealed, context), context)
            if pending:
                account.totp_pending = resealed
            else:
                account.totp_secret = resealed
            count += 1
    await session.flush()
    return count


async def staff_secrets_using_key(session: AsyncSession, key_id: int) -> int:
    """How many TOTP secrets (confirmed or pending) are sealed with data key ``key_id``."""
    query = (
        select(func.count())
        .select_from(StaffAccount)
        .where(
            or_(
                sealed_with_key(StaffAccount.totp_secret, key_id),
                sealed_with_key(StaffAccount.totp_pending, key_id),
            )
        )
    )
    return int(await session.scalar(query) or 0)


# --- audit log -----------------------------------------------------------------------------


def masked_username(typed: str) -> str:
    """What the audit log keeps of a typed name that is no account: "ng…" (never the whole name)."""
    name = unicodedata.normalize("NFKC", typed).strip().lower()
    shown = "".join(ch for ch in name[:2] if ch.isascii() and (ch.isalnum() or ch in "._-"))
    return f"{shown}…"


def check_detail(detail: str) -> str:
    """Refuse details that could carry client data: overlong, multi-line, or a code's shape."""
    cleaned = " ".join(detail.split())
    if len(cleaned) > DETAIL_MAX:
        raise StaffStorageError(f"an audit detail is at most {DETAIL_MAX} characters")
    if _CODE_LIKE.search(cleaned):
        raise StaffStorageError("an audit detail must not contain a referral code")
    return cleaned


async def add_audit(
    session: AsyncSession,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    detail: str = "",
    province: int | None = None,
) -> AuditEntry:
    if not _ACTION.match(action):
        raise StaffStorageError("an audit action is 2-32 characters of a-z, 0-9, '_' and '.'")
    entry = AuditEntry(at=now, actor=actor[:32], action=action, detail=check_detail(detail), province=province)
    session.add(entry)
    await session.flush()
    return entry


async def audit_page(
    session: AsyncSession, *, province: int | None, offset: int, limit: int
) -> tuple[Sequence[AuditEntry], int]:
    """A page of the log, newest first, and the number of entries; ``province`` filters."""
    query = select(AuditEntry)
    counting = select(func.count()).select_from(AuditEntry)
    if province is not None:
        query = query.where(AuditEntry.province == province)
        counting = counting.where(AuditEntry.province == province)
    rows = (
        await session.scalars(
            query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).offset(offset).limit(limit)
        )
    ).all()
    return rows, int(await session.scalar(counting) or 0)
