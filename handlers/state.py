"""The stored conversation state: a small, versioned, JSON-serialisable value."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

LOCALES = ("vi", "en")
# Deep-link payloads are A-Za-z0-9_- (Telegram); 32 leaves room for it inside a 64-byte button payload.
PEER_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DEFAULT_LOCALE = "vi"
_VERSION = 1


# A referral code as stored in a person's state: 8 characters of Crockford base32.
REFERRAL_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")
# A counselling case's handle (counselling/handles.py): 4 characters of the same alphabet.
CASE_HANDLE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}$")


@dataclass(frozen=True)
class HeldCode:
    """A referral code the person holds: shown again in "my codes" until used or expired."""

    code: str
    service: str
    service_type: str
    expires: dt.date

    def to_json(self) -> list[str]:
        return [self.code, self.service, self.service_type, self.expires.isoformat()]

    @classmethod
    def from_json(cls, raw: object) -> HeldCode | None:
        if not (isinstance(raw, list) and len(raw) == 4 and all(isinstance(v, str) for v in raw)):
            return None
        if not REFERRAL_CODE.match(raw[0]):
            return None
        try:
            return cls(raw[0], raw[1], raw[2], dt.date.fromisoformat(raw[3]))
        except ValueError:
            return None


class Step(StrEnum):
    """Where the person is in the conversation."""

    MENU = "menu"
    TOPIC = "topic"
    AWAIT_COMMUNE = "await_commune"
    CONFIRM_ERASE = "confirm_erase"


@dataclass(frozen=True)
class State:
    """What is kept between messages for a person who accepted the privacy notice.

    People who did not accept have no stored state at all; the engine sees ``None``.
    """

    step: Step = Step.MENU
    locale: str = DEFAULT_LOCALE
    topic: str | None = None
    # The commune the person chose for services (2025 code); kept only inside the sealed record.
    commune: int | None = None
    # The peer educator's link the person first arrived through (aggregate attribution only).
    peer: str | None = None
    # Referral codes not yet used, cancelled or expired.
    codes: tuple[HeldCode, ...] = ()
    # Codes issued in one month ("2026-03", count): issuance is limited per person and month.
    issued: tuple[str, int] | None = None
    # The counsellor chat the person has open: the case's id and handle ("K7Q2"), and whether
    # they were told that numbers, accounts and links are hidden from the counsellor.
    case: tuple[int, str] | None = None
    masking_told: bool = False

    def moved(self, step: Step, *, topic: str | None = None) -> State:
        return replace(self, step=step, topic=topic)

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "v": _VERSION,
            "step": self.step.value,
            "locale": self.locale,
            "topic": self.topic,
            "commune": self.commune,
            "peer": self.peer,
        }
        if self.codes:
            data["codes"] = [code.to_json() for code in self.codes]
        if self.issued is not None:
            data["issued"] = list(self.issued)
        if self.case is not None:
            data["case"] = list(self.case)
        if self.masking_told:
            data["mt"] = True
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> State:
        """Read a stored state; anything unexpected falls back to the menu, never raises."""
        try:
            data: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        try:
            step = Step(str(data.get("step")))
        except ValueError:
            step = Step.MENU
        raw_locale = data.get("locale")
        locale = raw_locale if isinstance(raw_locale, str) and raw_locale in LOCALES else DEFAULT_LOCALE
        topic = data.get("topic") if isinstance(data.get("topic"), str) else None
        raw_commune = data.get("commune")
        commune = raw_commune if isinstance(raw_commune, int) and not isinstance(raw_commune, bool) else None
        raw_peer = data.get("peer")
        peer = raw_peer if isinstance(raw_peer, str) and PEER_CODE.match(raw_peer) else None
        codes = tuple(
            held for raw in data.get("codes") or () if (held := HeldCode.from_json(raw)) is not None
        ) if isinstance(data.get("codes"), list) else ()
        raw_issued = data.get("issued")
        issued = (
            (raw_issued[0], raw_issued[1])
            if isinstance(raw_issued, list) and len(raw_issued) == 2
            and isinstance(raw_issued[0], str) and isinstance(raw_issued[1], int)
            else None
        )
        raw_case = data.get("case")
        case = (
            (raw_case[0], raw_case[1])
            if isinstance(raw_case, list) and len(raw_case) == 2 and isinstance(raw_case[0], int)
            and not isinstance(raw_case[0], bool) and isinstance(raw_case[1], str) and CASE_HANDLE.match(raw_case[1])
            else None
        )
        return cls(
            step=step, locale=locale, topic=topic, commune=commune, peer=peer, codes=codes, issued=issued,
            case=case, masking_told=data.get("mt") is True,
        )
