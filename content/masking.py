"""Hiding what would tell a counsellor who a person is, before the counsellor sees a message.

Masked: phone numbers and other long numbers (nine digits or more, however they are spaced:
Vietnamese mobiles have ten, a citizen's ID card twelve), e-mail addresses, @handles and links
(with or without http, e.g. "zalo.me/…", "fb.com/…", "t.me/…"). Short numbers stay: ages, prices,
dates, the 111/113/115 hotlines. What the person typed is never changed for the person; only the
counsellor's copy is masked, and the person is told once why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PHONE_MASK = "[đã ẩn số]"
HANDLE_MASK = "[đã ẩn tài khoản]"
LINK_MASK = "[đã ẩn liên kết]"
EMAIL_MASK = "[đã ẩn email]"

# Top-level domains people here meet in links; a bare "word.word" is otherwise left alone
# ("ok.vậy" is not a link).
_TLDS = (
    "com|net|org|vn|me|io|co|info|biz|app|link|ly|gl|to|tv|xyz|site|online|asia|edu|gov|int|us|uk|"
    "cc|ws|page|dev|top|club|live|shop|store"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_LINK = re.compile(
    r"(?:(?:https?|ftp)://|www\.)\S+"
    rf"|\b[\w-]+(?:\.[\w-]+)*\.(?:{_TLDS})\b(?:[/?#]\S*)?",
    re.IGNORECASE | re.UNICODE,
)
_HANDLE = re.compile(r"(?<![\w@])@[\w.]{2,}", re.UNICODE)
# A run of digits with spaces, dots, dashes or brackets between them, optionally after a "+".
_NUMBER = re.compile(r"\+?\(?\d(?:[\d\s.()\-]*\d)?")
MIN_DIGITS = 9


@dataclass(frozen=True)
class Masked:
    text: str
    masked: bool


def _numbers(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in match.group(0))
        return PHONE_MASK if digits >= MIN_DIGITS else match.group(0)

    return _NUMBER.sub(replace, text)


def mask(text: str) -> Masked:
    """``text`` as a counsellor may see it, and whether anything was hidden."""
    hidden = _EMAIL.sub(EMAIL_MASK, text)
    hidden = _LINK.sub(LINK_MASK, hidden)
    hidden = _HANDLE.sub(HANDLE_MASK, hidden)
    hidden = _numbers(hidden)
    return Masked(hidden, hidden != text)
