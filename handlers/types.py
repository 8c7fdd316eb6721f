"""Channel-neutral inbound events, replies and effects. No platform is imported here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

_EMPTY: Mapping[str, str | int] = MappingProxyType({})


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Inbound:
    """One thing a person did: typed text, pressed a button, shared a location or started."""

    channel: str
    user_id: str
    text: str | None = None
    payload: str | None = None
    location: Location | None = None
    update_id: str | None = None
    locale_hint: str | None = None
    # A peer educator's link code the person arrived with (Telegram /start payload, ?p= …).
    start_param: str | None = None
    # Something other than text was sent: "sticker", "photo", "voice", "document", "contact"…
    media: str | None = None
    # False in a group: the bot does not converse there and stores nothing.
    private: bool = True
    # The chat message this event came with (the person's message, or the one whose button was
    # pressed), where the platform numbers them: noted for the quick exit, never its text.
    message_id: int | None = None


class Emphasis(StrEnum):
    """What a message is, where a channel can show it so: the page marks it, plain text does not."""

    # The one line to act on now (call this number, start PEP within 72 hours).
    URGENT = "urgent"
    # A referral code to show at a service; its ``code`` parameter is the code as shown.
    CODE = "code"


@dataclass(frozen=True)
class Msg:
    """A message from the interface catalog: a key and its parameters."""

    key: str
    params: Mapping[str, str | int] = field(default_factory=lambda: _EMPTY)
    emphasis: Emphasis | None = None


class TopicPart(StrEnum):
    TITLE = "title"
    SUMMARY = "summary"
    MORE = "more"
    # "Source: … · reviewed …", so a person can see where advice comes from and how fresh it is.
    SOURCE = "source"


@dataclass(frozen=True)
class TopicText:
    """A piece of a counselling topic from the content pack."""

    topic: str
    part: TopicPart


@dataclass(frozen=True)
class HotlineList:
    """The verified emergency and support numbers, rendered from the content pack.

    ``situation`` orders them for the person's situation and leaves out what does not help in it
    (content/data/hotlines.yaml: ``first_for``, ``not_for``); None keeps the file's order.
    """

    situation: str | None = None


@dataclass(frozen=True)
class GroupTitle:
    """The title of a group of topics from the content pack."""

    group: str


@dataclass(frozen=True)
class CommuneName:
    """A commune's name with its province, e.g. "Xã Bình Lư (Lai Châu)"."""

    code: int


@dataclass(frozen=True)
class ServiceEntry:
    """One service from the directory, with its distance when the person shared a location."""

    service: str
    distance_km: float | None = None


@dataclass(frozen=True)
class ServiceName:
    """A service's name only, e.g. for a button."""

    service: str


@dataclass(frozen=True)
class Dated:
    """A catalog message whose {date} parameter is a day, written the way the locale writes dates."""

    key: str
    day: dt.date
    params: Mapping[str, str | int] = field(default_factory=lambda: _EMPTY)


Text = Msg | TopicText | HotlineList | GroupTitle | CommuneName | ServiceEntry | ServiceName | Dated


@dataclass(frozen=True)
class Button:
    """A choice offered to the person; ``payload`` comes back in Inbound.payload (≤ 64 bytes)."""

    label: Text
    payload: str


class ReplyKind(StrEnum):
    MESSAGE = "message"
    # Remove the conversation from the device as far as the channel allows.
    QUICK_EXIT = "quick_exit"


@dataclass(frozen=True)
class Reply:
    """One message to send: paragraphs of text, then buttons."""

    parts: tuple[Text, ...]
    buttons: tuple[Button, ...] = ()
    # Sensitive replies cannot be forwarded or saved where the channel supports it.
    protect: bool = False
    kind: ReplyKind = ReplyKind.MESSAGE


@dataclass(frozen=True)
class EraseRecord:
    """Delete everything stored about this person."""


@dataclass(frozen=True)
class IssueReferral:
    """Store a new referral code (the runtime drew it; the flow only decided to use it)."""

    code: str
    service: str
    service_type: str
    commune: int
    expires: dt.date


@dataclass(frozen=True)
class CancelReferral:
    """The person cancelled one of their codes."""

    code: str


@dataclass(frozen=True)
class Engaged:
    """The person received part of the service package: "topic", "services", "referral", "hotlines".

    Only counted, in aggregate, for people who accepted the notice.
    """

    kind: str


@dataclass(frozen=True)
class OpenCase:
    """Open a counsellor chat for the person (the runtime draws the case and says who is on duty)."""


@dataclass(frozen=True, repr=False)
class RelayText:
    """Copy what the person typed to their counsellor (masked there); ``urgent`` after a safety
    message, which the bot answered itself (``answered``: the intent, noted for the counsellor).

    The text lives only in this turn's memory and, masked and sealed, in the open case."""

    text: str
    urgent: bool = False
    answered: str | None = None

    def __repr__(self) -> str:  # never print what the person typed
        return f"RelayText(urgent={self.urgent}, answered={self.answered!r})"


@dataclass(frozen=True)
class EndCase:
    """The person ended their counsellor chat (also by quick exit or erasure)."""


Effect = EraseRecord | IssueReferral | CancelReferral | Engaged | OpenCase | RelayText | EndCase


@dataclass(frozen=True)
class TurnFacts:
    """What the runtime supplies to a turn so flows stay pure: the day and a fresh random code."""

    today: dt.date
    new_code: str
