"""The second factor: RFC 6238 codes (SHA-1, 6 digits, 30 s) as every authenticator app makes them.

A code is accepted one step early or late (clocks on phones drift) and only once: the step
of the last accepted code is remembered, and a code for that step or an earlier one is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import os
import re

import segno
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from markupsafe import Markup

ISSUER = "An Tâm"
STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of now
SECRET_BYTES = 20
_CODE = re.compile(r"^[0-9]{6}$")


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def _totp(secret: bytes) -> TOTP:
    # SHA-1 is what authenticator apps implement for TOTP; as an HMAC it remains sound here.
    return TOTP(secret, DIGITS, SHA1(), STEP_SECONDS)


def step_of(when: dt.datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def code_at(secret: bytes, when: dt.datetime) -> str:
    """The code an authenticator shows at ``when`` (tests use it too)."""
    return _totp(secret).generate(step_of(when) * STEP_SECONDS).decode("ascii")


def clean_code(text: str) -> str | None:
    """Six digits, with the spaces a phone may add removed; None for anything else."""
    code = "".join(text.split())
    return code if _CODE.match(code) else None


def accepted_step(secret: bytes, text: str, *, now: dt.datetime, last_step: int | None) -> int | None:
    """The time step a code belongs to, when it is right and not used before; else None."""
    code = clean_code(text)
    if code is None:
        return None
    totp = _totp(secret)
    current = step_of(now)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        expected = totp.generate(step * STEP_SECONDS)
        # Check every step (no early exit), so the time does not say which one matched.
        if hmac.compare_digest(expected, code.encode("ascii")) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def readable_secret(secret: bytes) -> str:
    """The secret in base32, in groups of four, for typing into an app by hand."""
    text = base64.b32encode(secret).decode("ascii").rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def provisioning_uri(secret: bytes, username: str) -> str:
    return _totp(secret).get_provisioning_uri(username, ISSUER)


def qr_svg(uri: str, *, title: str) -> Markup:
    """An inline <svg> QR code: no script, no style attribute, no data: URI (strict CSP)."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", svgclass="qr", lineclass=None, title=title
    )
    return Markup(svg)
