"""A case's handle: four characters of Crockford's base32, e.g. "K7Q2", shown as "Người #K7Q2".

Drawn at random for each case; it names the conversation, never the person (a new case of the
same person gets a new handle), and no two open cases share one (the storage's unique index).
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 4
HANDLE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}$")


def new_handle() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_handle(value: object) -> bool:
    return isinstance(value, str) and bool(HANDLE.match(value))
