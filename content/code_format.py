"""How a referral code is shown to people: "7KQ2M9XA" → "7KQ2-M9XA".

The one place for it, below both the engine (handlers/, which shows a code) and referrals/ (which
makes and reads codes, referrals/codes.py); neither may import the other.
"""

from __future__ import annotations


def display(code: str) -> str:
    """"7KQ2M9XA" → "7KQ2-M9XA"."""
    return f"{code[:4]}-{code[4:]}"


__all__ = ["display"]
