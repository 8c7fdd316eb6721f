"""Button payloads as small typed values, and the one table that maps each kind to its flow.

A payload is what a button sends back (Telegram's callback data, Zalo's and the web chat's
button values): short text, at most 64 bytes on the wire, which is all a person with no stored
state carries while browsing. Each kind is a frozen dataclass with a fixed prefix and typed
fields; ``pack`` builds the text (and refuses one that would not fit, when the button is made,
not when a platform rejects it), ``unpack`` reads it back or says it is not of this kind.

The text format is the one already in people's chats ("t:hiv_prep", "c:accept:ab12cd34ef",
"rcy:7KQ2M9XA"), so buttons sent before this module existed keep working; a payload that no
kind accepts (an old or forged one) gets the "no longer available" answer and the menu.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Self

# Telegram's limit for callback data, in bytes; the renderer may add a language prefix ("en|").
MAX_PAYLOAD_BYTES = 64
LANGUAGE_PREFIX_BYTES = 3
_MAX_NUMBER_DIGITS = 6


class PayloadTooLong(ValueError):
    """A button's payload would not fit in MAX_PAYLOAD_BYTES (with the language prefix)."""


@dataclass(frozen=True)
class Payload:
    """A kind of payload: ``PREFIX``, then each field after a ':' (str or int fields)."""

    PREFIX: ClassVar[str]

    def pack(self) -> str:
        parts = [self.PREFIX, *(str(getattr(self, f.name)) for f in fields(self))]
        text = ":".join(parts)
        if len(text.encode("utf-8")) + LANGUAGE_PREFIX_BYTES > MAX_PAYLOAD_BYTES:
            raise PayloadTooLong(f"button payload longer than {MAX_PAYLOAD_BYTES} bytes: {text!r}")
        return text

    @classmethod
    def unpack(cls, text: str) -> Self | None:
        """The payload of this kind that ``text`` is, or None."""
        names = fields(cls)
        if not names:
            return cls() if text == cls.PREFIX else None
        head = cls.PREFIX + ":"
        if not text.startswith(head):
            return None
        # The last field takes the rest, so a value with ':' in it (a referral choice) survives.
        values = text[len(head) :].split(":", len(names) - 1)
        if len(values) != len(names) or not all(values):
            return None
        parsed: list[object] = []
        for field, value in zip(names, values, strict=True):
            if field.type in (int, "int"):
                if not value.isdigit() or len(value) > _MAX_NUMBER_DIGITS:
                    return None
                parsed.append(int(value))
            else:
                parsed.append(value)
        return cls(*parsed)


# --- the kinds, by flow ---------------------------------------------------------------------


@dataclass(frozen=True)
class Accept(Payload):
    PREFIX = "c:accept"


@dataclass(frozen=True)
class AcceptVia(Payload):
    """Accepting the notice after arriving through a peer educator's link."""

    PREFIX = "c:accept"
    peer: str


@dataclass(frozen=True)
class Decline(Payload):
    PREFIX = "c:decline"


@dataclass(frozen=True)
class NoticeDetails(Payload):
    PREFIX = "c:more"


@dataclass(frozen=True)
class Menu(Payload):
    PREFIX = "m"


@dataclass(frozen=True)
class Language(Payload):
    PREFIX = "l"
    locale: str


@dataclass(frozen=True)
class Groups(Payload):
    PREFIX = "i"


@dataclass(frozen=True)
class Group(Payload):
    PREFIX = "g"
    group: str


@dataclass(frozen=True)
class Topic(Payload):
    PREFIX = "t"
    topic: str


@dataclass(frozen=True)
class TopicMore(Payload):
    PREFIX = "tm"
    topic: str


@dataclass(frozen=True)
class Services(Payload):
    PREFIX = "s"


@dataclass(frozen=True)
class ChangeCommune(Payload):
    PREFIX = "s:change"


@dataclass(frozen=True)
class ServiceKinds(Payload):
    PREFIX = "sk"


@dataclass(frozen=True)
class CommuneServices(Payload):
    PREFIX = "w"
    commune: int


@dataclass(frozen=True)
class ChooseKind(Payload):
    PREFIX = "r"


@dataclass(frozen=True)
class ChoosePlace(Payload):
    PREFIX = "rt"
    kind: str


@dataclass(frozen=True)
class Issue(Payload):
    """A place picked from the list just shown: "service id:position" (referral.issue_by_index)."""

    PREFIX = "ri"
    choice: str


@dataclass(frozen=True)
class MyCodes(Payload):
    PREFIX = "rm"


@dataclass(frozen=True)
class AskCancel(Payload):
    PREFIX = "rc"
    code: str


@dataclass(frozen=True)
class ConfirmCancel(Payload):
    PREFIX = "rcy"
    code: str


@dataclass(frozen=True)
class Emergency(Payload):
    PREFIX = "e"


@dataclass(frozen=True)
class Privacy(Payload):
    PREFIX = "p"


@dataclass(frozen=True)
class AskErase(Payload):
    PREFIX = "p:erase"


@dataclass(frozen=True)
class ConfirmErase(Payload):
    PREFIX = "p:erase:yes"


@dataclass(frozen=True)
class KeepRecord(Payload):
    PREFIX = "p:erase:no"


@dataclass(frozen=True)
class QuickExit(Payload):
    PREFIX = "x"


@dataclass(frozen=True)
class Counsel(Payload):
    """Ask for a counsellor: the notice of what the counsellor sees comes first."""

    PREFIX = "h"


@dataclass(frozen=True)
class CounselStart(Payload):
    """Accept the notice and open the chat."""

    PREFIX = "h:start"


@dataclass(frozen=True)
class CounselEnd(Payload):
    PREFIX = "h:end"


__all__ = [
    "Accept", "AcceptVia", "AskCancel", "AskErase", "ChangeCommune", "ChooseKind", "ChoosePlace", "CommuneServices",
    "ConfirmCancel", "ConfirmErase", "Counsel", "CounselEnd", "CounselStart", "Decline", "Emergency", "Group", "Groups", "Issue", "KeepRecord", "Language",
    "MAX_PAYLOAD_BYTES", "Menu", "MyCodes", "NoticeDetails", "Payload", "PayloadTooLong", "Privacy", "QuickExit",
    "ServiceKinds", "Services", "Topic", "TopicMore",
]
