"""Staff passwords: scrypt hashes that carry their own parameters, one-time passwords, policy.

The policy: at least 12 characters, not containing the username, and not easily guessed —
zxcvbn's estimate (common passwords, keyboard runs, dates, repeats, words with digits, plus a
few Vietnamese words it does not know) must reach "safely unguessable".

A stored hash reads ``scrypt$ln=15,r=8,p=1$<salt>$<key>`` (base64 without padding), so the
cost can be raised later: old hashes still verify and are replaced at the next login. Hashing
runs in a worker thread (it takes ~0.1 s and 32 MiB on purpose) and at most a few at once, so
a burst of logins neither blocks the event loop nor exhausts memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MIN_LENGTH = 12
# zxcvbn's score (0-4) a new password needs: 3 = "safely unguessable" (about 10^8 guesses and
# more), which refuses common passwords, keyboard runs, dates, repeats and dictionary words
# with a few digits.
MIN_STRENGTH = 3
# Words zxcvbn's English lists lack that a Vietnamese staff password is likely to be built on:
# "password", the product, the place, love words, common family names, the role.
GUESSABLE_WORDS = (
    "matkhau", "mat khau", "antam", "an tam", "vietnam", "hanoi", "saigon", "hochiminh", "anhyeuem",
    "emyeuanh", "yeuem", "tramyte", "yte", "canbo", "quantri", "admin", "xinchao", "nguyen", "tran",
    "le", "pham", "hoang", "huynh", "phan", "vu", "vo", "dang", "bui", "do", "ho", "ngo", "duong", "ly",
)
MAX_LENGTH = 128  # a longer input is refused before the KDF sees it
# No 0/O, 1/I/L, U/V look-alikes: read aloud or copied from a screen by hand without doubt.
ONE_TIME_ALPHABET = "ABCDEFGHJKMNPQRSTWXYZ23456789"
ONE_TIME_GROUPS = 4
ONE_TIME_GROUP = 4
_FORMAT = re.compile(r"^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")


@dataclass(frozen=True)
class ScryptParams:
    log2_n: int = 15
    r: int = 8
    p: int = 1
    length: int = 32
    salt_bytes: int = 16

    def kdf(self, salt: bytes) -> Scrypt:
        return Scrypt(salt=salt, length=self.length, n=2**self.log2_n, r=self.r, p=self.p)


DEFAULT_PARAMS = ScryptParams()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _encode(password: str) -> bytes:
    # NFC: the same Vietnamese letters typed on two keyboards are the same password.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """Hash a password (blocking; use Passwords.hash from async code)."""
    salt = os.urandom(params.salt_bytes)
    key = params.kdf(salt).derive(_encode(password))
    return f"scrypt$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[ScryptParams, bytes, bytes] | None:
    match = _FORMAT.match(stored)
    if match is None:
        return None
    log2_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    try:
        salt, key = _unb64(match.group(4)), _unb64(match.group(5))
    except (binascii.Error, ValueError):
        return None
    if len(key) < 16 or len(salt) < 8:
        return None
    return ScryptParams(log2_n=log2_n, r=r, p=p, length=len(key), salt_bytes=len(salt)), salt, key


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (blocking; constant-time comparison)."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    params, salt, key = parsed
    try:
        params.kdf(salt).verify(_encode(password), key)
    except InvalidKey:
        return False
    return True


class Passwords:
    """Hash and verify off the event loop, a few at a time; unknown users cost the same."""

    def __init__(self, params: ScryptParams = DEFAULT_PARAMS, *, concurrency: int = 4) -> None:
        self.params = params
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: asyncio.Task[str] | None = None
        self.kdf_runs = 0  # how many hashes this process computed (tests check unknown users cost one)

    async def hash(self, password: str) -> str:
        async with self._slots:
            self.kdf_runs += 1
            return await asyncio.to_thread(hash_password, password, self.params)

    async def verify(self, password: str, stored: str | None) -> bool:
        """Check a password; with no stored hash, check against a dummy so the time is the same."""
        if len(password) > MAX_LENGTH:
            password = password[:MAX_LENGTH]
            stored = None
        target = stored if stored is not None else await self.dummy()
        async with self._slots:
            self.kdf_runs += 1
            matched = await asyncio.to_thread(verify_password, password, target)
        return matched and stored is not None

    def warm(self) -> None:
        """Start making the dummy hash in the background, so no login waits for it."""
        if self._dummy is None:
            self._dummy = asyncio.ensure_future(self.hash(secrets.token_urlsafe(24)))

    async def dummy(self) -> str:
        self.warm()
        assert self._dummy is not None
        # shield: a login cancelled while waiting must not cancel the shared computation.
        return await asyncio.shield(self._dummy)

    async def close(self) -> None:
        if self._dummy is not None and not self._dummy.done():
            self._dummy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dummy
        self._dummy = None

    def needs_rehash(self, stored: str) -> bool:
        parsed = _parse(stored)
        if parsed is None:
            return True
        params = parsed[0]
        return (params.log2_n, params.r, params.p) < (self.params.log2_n, self.params.r, self.params.p)


def new_one_time_password() -> str:
    """A random password to give out once: four groups of four, e.g. ``K7QM-3XTP-9HWD-RC4N``."""
    groups = (
        "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(ONE_TIME_GROUP)) for _ in range(ONE_TIME_GROUPS)
    )
    return "-".join(groups)


def one_time_form(text: str) -> str:
    """The form a one-time password is hashed and checked in: upper case, no spaces or dashes.

    Typed on a phone it may come back in lower case or with spaces; it is the same password.
    """
    return "".join(ch for ch in text.upper() if ch not in " -\t")


def password_problems(new: str, confirm: str, *, username: str, current: str, one_time: bool) -> list[str]:
    """Why a new password is refused, as catalog keys (empty: accepted)."""
    problems: list[str] = []
    if new != confirm:
        problems.append("staff.password.error.mismatch")
    if len(new) < MIN_LENGTH:
        problems.append("staff.password.error.short")
    elif len(new) > MAX_LENGTH:
        problems.append("staff.password.error.long")
    if _contains_username(new, username):
        problems.append("staff.password.error.username")
    same_as_current = hmac.compare_digest(_encode(new), _encode(current))
    if one_time:
        same_as_current = same_as_current or hmac.compare_digest(
            one_time_form(new).encode(), one_time_form(current).encode()
        )
    if same_as_current:
        problems.append("staff.password.error.same")
    if new and len(set(new)) < 4:
        problems.append("staff.password.error.simple")
    elif MIN_LENGTH <= len(new) <= MAX_LENGTH and strength(new, username) < MIN_STRENGTH:
        problems.append("staff.password.error.common")
    return problems


def _plain(text: str) -> str:
    """Lower case, without diacritics (đ → d): "Mật Khẩu" and "mat khau" are the same guess."""
    from content.intents import strip_diacritics

    return strip_diacritics(unicodedata.normalize("NFC", text).lower())


def _contains_username(new: str, username: str) -> bool:
    """The username inside the password, also without its dots and dashes or with other case."""
    plain = _plain(new)
    squeezed = re.sub(r"[^a-z0-9]", "", plain)
    name = username.lower()
    core = re.sub(r"[^a-z0-9]", "", name)
    return name in plain or (len(core) >= 3 and core in squeezed)


def strength(password: str, username: str = "") -> int:
    """zxcvbn's 0-4 score, the weakest of the password as typed, without diacritics and without spaces.

    zxcvbn (MIT) ships its word and password lists inside the package: nothing is fetched.
    """
    from zxcvbn import zxcvbn

    hints = [username, *re.split(r"[._-]+", username), *GUESSABLE_WORDS]
    plain = _plain(password)
    # Also without spaces: "mat khau 123456" is the guess "matkhau123456" with spaces in it.
    candidates = {unicodedata.normalize("NFC", password)[:72], plain[:72], "".join(plain.split())[:72]}
    return min(int(zxcvbn(candidate, user_inputs=hints)["score"]) for candidate in candidates)
