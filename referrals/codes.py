"""Referral codes (docs/architecture.md, "Contracts"): 8 random Crockford base32 characters, shown as XXXX-XXXX
(content/code_format.py, shared with the engine).

40 random bits per code: with the redemption throttle (a few failures per quarter hour) and
a few thousand open codes, guessing one is out of reach. Input is read leniently — any case,
with or without the dash or spaces, and the letters people confuse with digits (O→0, I/L→1)
— since a person may read the code aloud or copy it by hand. Codes are stored only as a
keyed hash (HMAC with the pepper), so the database alone cannot redeem one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
LENGTH = 8
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = str.maketrans("", "", "- \t._")


class CodeFormatError(ValueError):
    """The text cannot be a referral code."""


def new_code(randbits: Callable[[int], int] = secrets.randbits) -> str:
    """A fresh random code, without the dash (e.g. "7KQ2M9XA")."""
    value = randbits(5 * LENGTH)
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(LENGTH)))


def normalise(text: str) -> str:
    """Read a typed code: case, dashes and spaces do not matter; O, I and L read as 0, 1, 1."""
    cleaned = text.strip().upper().translate(_IGNORED).translate(_CONFUSABLE)
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        raise CodeFormatError("a referral code has 8 letters and digits, like 7KQ2-M9XA")
    return cleaned


def code_hash(pepper: bytes, code: str) -> bytes:
    """The keyed hash a code is stored under."""
    return hmac.new(pepper, b"referral:" + code.encode("ascii"), hashlib.sha256).digest()
