"""Staff accounts and the audit log in storage, on every backend; passwords, codes and keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import unicodedata

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bootstrap import Services, open_services
from bot.clock import FixedClock
from bot.config import Settings
from bot.staff import totp
from bot.staff.commands import ensure_first_admin
from bot.staff.passwords import (
    ONE_TIME_ALPHABET,
    Passwords,
    ScryptParams,
    hash_password,
    new_one_time_password,
    one_time_form,
    password_problems,
    verify_password,
)
from storage.crypto import CryptoError, MasterSecrets, generate_master_key
from storage.keys import prune_retired_keys, rotate_keys
from storage.staff import (
    AuditEntry,
    InvalidUsername,
    Role,
    StaffAccount,
    StaffStorageError,
    UsernameTaken,
    add_audit,
    check_detail,
    create_account,
    get_account,
    normalise_username,
    open_totp,
    record_failed_login,
    set_pending_totp,
    totp_context,
)
from tests.staff_fixtures import password_hash

# --- the master key's derived keys ---------------------------------------------------------


def test_derive_gives_separate_stable_keys() -> None:
    """derive() gives 32-byte keys per purpose, stable per master key, never the pepper or KEK."""
    master = generate_master_key()
    secrets = MasterSecrets.from_master_key(master)
    again = MasterSecrets.from_master_key(master)
    cookie = secrets.derive(b"staff-session-cookie")
    assert len(cookie) == 32 and cookie == again.derive(b"staff-session-cookie")
    assert cookie != secrets.derive(b"something-else")
    assert cookie not in (master, secrets.pepper, secrets.kek)
    for info in (b"antam/v1/pseudonym-pepper", b"antam/v1/key-encryption-key"):
        assert secrets.derive(info) not in (secrets.pepper, secrets.kek)
    assert MasterSecrets.from_master_key(generate_master_key()).derive(b"staff-session-cookie") != cookie
    assert "_root" not in repr(secrets) and master.hex() not in repr(secrets)
    with pytest.raises(ValueError):
        secrets.derive(b"")
    with pytest.raises(CryptoError):
        MasterSecrets(pepper=secrets.pepper, kek=secrets.kek).derive(b"x")


def test_existing_derivations_are_unchanged() -> None:
    """Adding derive() leaves the pepper and KEK of a given master key exactly as before."""
    master = bytes(range(32))
    secrets = MasterSecrets.from_master_key(master)

    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    assert secrets.pepper == hkdf(b"antam/v1/pseudonym-pepper")
    assert secrets.kek == hkdf(b"antam/v1/key-encryption-key")
    assert secrets == MasterSecrets(pepper=secrets.pepper, kek=secrets.kek), "equality ignores the root"


# --- passwords and one-time passwords --------------------------------------------------------


def test_password_hashes_carry_their_parameters() -> None:
    """A hash names its KDF and cost, has its own salt, and verifies only the same password (NFC)."""
    stored = password_hash("một mật khẩu đủ dài")
    assert stored.startswith("scrypt$ln=15,r=8,p=1$")
    assert verify_password("một mật khẩu đủ dài", stored)
    # The same letters typed as decomposed Unicode (another keyboard) are the same password.
    assert verify_password(unicodedata.normalize("NFD", "một mật khẩu đủ dài"), stored)
    assert not verify_password("một mật khẩu đủ dài ", stored)
    assert hash_password("x" * 12) != hash_password("x" * 12), "a salt per password"
    for broken in ("", "plain", "scrypt$ln=15,r=8,p=1$$", "scrypt$ln=40,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"):
        assert not verify_password("x", broken)


async def test_cheaper_old_hashes_still_verify_and_ask_for_rehash() -> None:
    """A hash made with a lower cost still verifies, and is marked to be replaced at the next login."""
    old = hash_password("mật khẩu cũ vẫn dùng được", ScryptParams(log2_n=14))
    passwords = Passwords()
    assert await passwords.verify("mật khẩu cũ vẫn dùng được", old)
    assert passwords.needs_rehash(old)
    assert not passwords.needs_rehash(password_hash("x" * 10))


async def test_unknown_users_are_checked_against_a_dummy() -> None:
    """Without a stored hash the password is still hashed once, against a dummy of the same cost."""
    passwords = Passwords()
    runs = passwords.kdf_runs
    assert not await passwords.verify("anything at all", None)
    dummy = await passwords.dummy()
    assert dummy.startswith("scrypt$ln=15,r=8,p=1$")
    assert passwords.kdf_runs == runs + 2  # making the dummy once, then checking against it
    assert not await passwords.verify("x" * 500, password_hash("x" * 10)), "overlong input is refused"


def test_one_time_passwords() -> None:
    """One-time passwords are four groups of four unambiguous characters, random each time."""
    made = {new_one_time_password() for _ in range(200)}
    assert len(made) == 200
    for one in made:
        groups = one.split("-")
        assert len(groups) == 4 and all(len(g) == 4 for g in groups)
        assert set(one.replace("-", "")) <= set(ONE_TIME_ALPHABET)
    assert not set("01ILOU") & set(ONE_TIME_ALPHABET)
    assert one_time_form("abcd efgh-jkmn pqrs") == "ABCDEFGHJKMNPQRS"


@pytest.mark.parametrize(
    "new, confirm, problem",
    [
        ("đủ dài rồi nhé", "đủ dài rồi nhé", None),
        ("ngắn", "ngắn", "staff.password.error.short"),
        ("x" * 129, "x" * 129, "staff.password.error.long"),
        ("đủ dài rồi nhé", "khác", "staff.password.error.mismatch"),
        ("Nguyen.Van.An", "Nguyen.Van.An", "staff.password.error.username"),
        ("mật khẩu hiện tại", "mật khẩu hiện tại", "staff.password.error.same"),
        ("1111111111", "1111111111", "staff.password.error.simple"),
    ],
)
def test_password_policy(new: str, confirm: str, problem: str | None) -> None:
    """A new password has at least 12 characters, matches its confirmation, is not the username or the current one."""
    problems = password_problems(new, confirm, username="nguyen.van.an", current="mật khẩu hiện tại", one_time=False)
    if problem is None:
        assert problems == []
    else:
        assert problem in problems


def test_new_password_cannot_be_the_one_time_one_in_any_spelling() -> None:
    """The one-time password typed in lower case or without dashes still counts as the same."""
    problems = password_problems(
        "abcd-efgh-jkmn-pqrs", "abcd-efgh-jkmn-pqrs", username="lan", current="ABCD-EFGH-JKMN-PQRS", one_time=True
    )
    assert "staff.password.error.same" in problems


# --- codes -------------------------------------------------------------------------------------


def test_totp_codes_are_rfc6238() -> None:
    """The RFC 6238 SHA-1 test vector (8 digits there; the last 6 are ours)."""
    secret = b"12345678901234567890"
    at = dt.datetime.fromtimestamp(59, dt.UTC)
    assert totp.code_at(secret, at) == "287082"  # RFC: 94287082
    assert totp.accepted_step(secret, "287 082", now=at, last_step=None) == 1
    assert totp.accepted_step(secret, "287082", now=at, last_step=1) is None, "used once"
    assert totp.accepted_step(secret, "28708", now=at, last_step=None) is None
    assert totp.accepted_step(secret, "abcdef", now=at, last_step=None) is None
    uri = totp.provisioning_uri(secret, "lan")
    assert uri.startswith("otpauth://totp/") and "issuer=An" in uri and "period=30" in uri and "digits=6" in uri
    svg = str(totp.qr_svg(uri, title="Mã <QR>"))
    assert svg.startswith("<svg") and "<script" not in svg and "style=" not in svg and "&lt;QR&gt;" in svg


# --- accounts in the database --------------------------------------------------------------------


async def _staff(db: AsyncSession, username: str, clock: FixedClock) -> StaffAccount:
    return await create_account(
        db, username=username, role=Role.STAFF, commune=3390, province=12, password_hash="h", now=clock.now()
    )


@pytest.mark.parametrize("text, expected", [("  Lan.Nguyen ", "lan.nguyen"), ("ABC", "abc"), ("a_b-c.9", "a_b-c.9")])
def test_usernames_are_normalised(text: str, expected: str) -> None:
    """Usernames are stored trimmed and in lower case."""
    assert normalise_username(text) == expected


@pytest.mark.parametrize("text", ["ab", "a" * 33, "lan nguyen", "lân", "lan@x", "", "lan/../x"])
def test_bad_usernames_are_refused(text: str) -> None:
    """Usernames outside 3-32 characters of a-z, 0-9, '.', '_' and '-' are refused."""
    with pytest.raises(InvalidUsername):
        normalise_username(text)


async def test_accounts_are_unique_and_scoped(services: Services) -> None:
    """A username exists once (in any spelling); staff need a commune, admins cannot have one."""
    now = services.clock.now()
    async with services.db.transaction() as db:
        await create_account(db, username="Lan", role=Role.STAFF, commune=3390, province=12, password_hash="scrypt$hidden", now=now)
    with pytest.raises(UsernameTaken):
        async with services.db.transaction() as db:
            await create_account(db, username="LAN ", role=Role.STAFF, commune=3390, province=12, password_hash="h", now=now)
    with pytest.raises(StaffStorageError):
        async with services.db.transaction() as db:
            await create_account(db, username="noward", role=Role.STAFF, commune=None, province=12, password_hash="h", now=now)
    with pytest.raises(StaffStorageError):
        async with services.db.transaction() as db:
            await create_account(db, username="wardadmin", role=Role.ADMIN, commune=3390, province=12, password_hash="h", now=now)
    async with services.db.transaction() as db:
        assert await db.scalar(select(func.count()).select_from(StaffAccount)) == 1
        account = await get_account(db, 1)
        assert account is not None and account.username == "lan" and "hidden" not in repr(account)


async def test_failed_logins_lock_for_fifteen_minutes(services: Services, clock: FixedClock) -> None:
    """The fifth failure locks the account for 15 minutes, then it opens again."""
    async with services.db.transaction() as db:
        account = await _staff(db, "mai", clock)
    results = []
    for _ in range(5):
        async with services.db.transaction() as db:
            results.append(await record_failed_login(db, account.id, now=clock.now()))
    assert results == [False, False, False, False, True]
    async with services.db.transaction() as db:
        locked = await get_account(db, account.id)
        assert locked is not None and locked.locked(clock.now())
        assert not locked.locked(clock.now() + dt.timedelta(minutes=15, seconds=1))


async def test_concurrent_failures_all_count(services: Services, clock: FixedClock) -> None:
    """Several workers counting failures at once lose none (row lock / serialised writes)."""
    async with services.db.transaction() as db:
        account = await _staff(db, "tam", clock)

    async def fail() -> bool:
        async with services.db.transaction() as db:
            return await record_failed_login(db, account.id, now=clock.now())

    results = await asyncio.gather(*(fail() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_audit_details_never_carry_codes(services: Services, clock: FixedClock) -> None:
    """Audit details are short single lines; anything shaped like a referral code is refused."""
    assert check_detail("redeemed a code for commune 3390") == "redeemed a code for commune 3390"
    assert check_detail("exported 2026-H1 province 12 xlsx") == "exported 2026-H1 province 12 xlsx"
    assert check_detail("plan 2026-2030,\naccount tram-hanh") == "plan 2026-2030, account tram-hanh"
    for bad in ("redeemed 7K3M-9QPX", "code 7K3M9QPX here", "x" * 201):
        with pytest.raises(StaffStorageError):
            check_detail(bad)
    with pytest.raises(StaffStorageError):
        async with services.db.transaction() as db:
            await add_audit(db, now=clock.now(), actor="a", action="Bad Action!")
    async with services.db.transaction() as db:
        await add_audit(db, now=clock.now(), actor="lan", action="login", province=12)
        assert await db.scalar(select(func.count()).select_from(AuditEntry)) == 1


async def test_totp_secrets_are_sealed_and_survive_key_rotation(services: Services, clock: FixedClock) -> None:
    """A TOTP secret is bound to its account's row, and key rotation re-seals it before pruning."""
    secret = totp.new_secret()
    async with services.db.transaction() as db:
        first = await _staff(db, "one", clock)
        second = await _staff(db, "two", clock)
        ring = await services.keys.get(db)
        set_pending_totp(ring, first, secret)
        first.totp_secret = ring.seal(secret, totp_context(first.id))
        assert secret not in first.totp_secret
        second.totp_secret = first.totp_secret  # a blob copied to another row must not open
    async with services.db.transaction() as db:
        ring = await services.keys.get(db)
        two = await get_account(db, second.id)
        assert two is not None
        with pytest.raises(CryptoError):
            open_totp(ring, two)
        two.totp_secret = None
    report = await rotate_keys(services.db, services.secrets, now=clock.now())
    assert report.reencrypted >= 2  # the confirmed and the pending secret
    clock.advance(minutes=10)
    deleted, kept = await prune_retired_keys(services.db, services.secrets, now=clock.now())
    assert deleted == report.retired_key_ids and kept == []
    async with services.db.transaction() as db:
        ring = await services.keys.get(db, refresh=True)
        one = await get_account(db, first.id)
        assert one is not None
        assert open_totp(ring, one) == secret and open_totp(ring, one, pending=True) == secret


# --- the first admin -------------------------------------------------------------------------------


async def test_first_admin_is_created_once_even_by_racing_workers(settings: Settings, clock: FixedClock) -> None:
    """Several workers starting on an empty database create one admin and print its password once."""
    workers = [await open_services(settings, clock=clock, warn=lambda _m: None) for _ in range(3)]
    try:
        outputs = [io.StringIO() for _ in workers]
        created = await asyncio.gather(*(ensure_first_admin(w, out) for w, out in zip(workers, outputs, strict=True)))
        assert sorted(created) == [False, False, True]
        printed = [out.getvalue() for out in outputs if out.getvalue()]
        assert len(printed) == 1 and "admin" in printed[0] and "Mật khẩu dùng một lần / one-time password" in printed[0]
        assert not await ensure_first_admin(workers[0], io.StringIO()), "never again once an admin exists"
        async with workers[0].db.transaction() as db:
            admins = (await db.scalars(select(StaffAccount))).all()
            assert [(a.username, a.role, a.must_change_password) for a in admins] == [("admin", "admin", True)]
    finally:
        for worker in workers:
            await worker.close()
