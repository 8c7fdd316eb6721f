"""The one renderer: message keys and content references become text in the person's locale.

It also fits rendered replies to a channel (``Renderer.fit``): what a channel can do is data
(``Capabilities``), read here, so no adapter cuts a text, pages buttons or picks a catalog text
of its own. A fitted reply is one platform message.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal

from content.geo import CommuneIndex
from content.i18n import Catalogs
from content.pack import ContentPack, Service
from handlers.common import Outcome
from handlers.state import DEFAULT_LOCALE
from handlers.payloads import MAX_PAYLOAD_BYTES
from handlers.types import (
    CommuneName,
    Dated,
    GroupTitle,
    HotlineList,
    Msg,
    ReplyKind,
    ServiceEntry,
    ServiceName,
    Text,
    TopicPart,
    TopicText,
)

BABEL_LOCALES = {"vi": "vi_VN", "en": "en"}

# The text of a message that only carries the buttons that did not fit on the one before.
MORE_TEXT = "…"


class Unprompted(StrEnum):
    """Whether a channel can reach a person who did not just write."""

    ALWAYS = "always"  # Telegram: any time, while the person has not blocked the bot
    IN_WINDOW = "in_window"  # within ``reply_window`` of the person's last message (Zalo, Messenger)
    WHILE_OPEN = "while_open"  # only while the person's page is open (the web chat)
    NEVER = "never"  # a terminal


@dataclass(frozen=True)
class Capabilities:
    """What one channel can do, as data: the renderer and the runtime read it, adapters do not branch on it.

    ``delete_by_hand`` is the catalog key that explains deleting the chat by hand, added to
    the quick exit's line where the channel cannot delete (``deletes`` False).
    """

    max_text: int
    max_buttons: int | None = None  # per message; None: no limit that matters
    max_label: int | None = None  # characters of a button's label
    max_messages: int | None = None  # per inbound event (Zalo's free replies per person message)
    deletes: bool = False
    delete_window: dt.timedelta | None = None  # how old a message may be and still be deleted
    delete_by_hand: str | None = None
    protect_content: bool = False
    unprompted: Unprompted = Unprompted.NEVER
    reply_window: dt.timedelta | None = None
    sends_per_second: float | None = None  # outbound, all people together
    sends_per_second_per_person: float | None = None
    # Messages the bot may start per message the person sends, within ``reply_window``
    # (Zalo's free reply quota); None: no such quota.
    started_per_message: int | None = None


@dataclass(frozen=True)
class RenderedButton:
    label: str
    payload: str


@dataclass(frozen=True)
class RenderedReply:
    """A reply ready for a channel: plain text, buttons, and how to send it."""

    text: str
    buttons: tuple[RenderedButton, ...] = ()
    protect: bool = False
    kind: ReplyKind = ReplyKind.MESSAGE
    # The language it was rendered in: fitting to a channel may add a text in the same one.
    locale: str = DEFAULT_LOCALE

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "buttons": [{"label": b.label, "payload": b.payload} for b in self.buttons],
        }
        if self.protect:
            data["protect"] = True
        if self.kind is ReplyKind.QUICK_EXIT:
            data["quick_exit"] = True
        return data


class Renderer:
    def __init__(self, catalogs: Catalogs, pack: ContentPack, communes: CommuneIndex) -> None:
        self.catalogs = catalogs
        self.pack = pack
        self.communes = communes
        self._services = {service.id: service for service in pack.services}

    def text(self, part: Text, locale: str) -> str:
        if isinstance(part, Msg):
            return self.catalogs.text(locale, part.key, part.params)
        if isinstance(part, TopicText):
            topic = self.pack.topics[part.topic]
            texts = topic.texts(locale)
            if part.part is TopicPart.SOURCE:
                reviewed = format_date(topic.reviewed, format="long", locale=BABEL_LOCALES[locale])
                return self.catalogs.text(locale, "topic.source", {"source": topic.source, "reviewed": reviewed})
            if part.part is TopicPart.TITLE:
                return texts.title
            if part.part is TopicPart.MORE:
                return texts.more or texts.summary
            return texts.summary
        if isinstance(part, GroupTitle):
            return self.catalogs.text(locale, f"group.{part.group}")
        if isinstance(part, CommuneName):
            commune = self.communes.get(part.code)
            return commune.label if commune else str(part.code)
        if isinstance(part, ServiceEntry):
            return self._service(self._services[part.service], part.distance_km, locale)
        if isinstance(part, ServiceName):
            found = self._services.get(part.service)
            # A code may outlive a service removed from the directory: say so rather than fail.
            return found.texts(locale).name if found else self.catalogs.text(locale, "service.removed")
        if isinstance(part, Dated):
            day = format_date(part.day, format="long", locale=BABEL_LOCALES[locale])
            return self.catalogs.text(locale, part.key, {**part.params, "date": day})
        if isinstance(part, HotlineList):
            return "\n".join(
                self.catalogs.text(
                    locale,
                    "hotline.line",
                    {
                        "number": line.number,
                        "name": line.texts(locale).name,
                        "hours": line.texts(locale).hours,
                        "description": line.texts(locale).description,
                    },
                )
                for line in self.pack.shown_hotlines(part.situation)
            )
        raise TypeError(f"cannot render {part!r}")

    def _service(self, service: Service, distance: float | None, locale: str) -> str:
        texts = service.texts(locale)
        kinds = ", ".join(self.catalogs.text(locale, f"service_type.{kind}") for kind in service.types)
        lines = [self.catalogs.text(locale, "service.entry", {"name": texts.name, "kinds": kinds})]
        if distance is not None:
            km = format_decimal(distance, format="#,##0.0", locale=BABEL_LOCALES[locale])
            lines.append(self.catalogs.text(locale, "service.distance", {"km": km}))
        if texts.address:
            lines.append(self.catalogs.text(locale, "service.address", {"address": texts.address}))
        if texts.hours:
            lines.append(self.catalogs.text(locale, "service.hours", {"hours": texts.hours}))
        # A wrong number could put a person at risk: only verified numbers are shown.
        if service.phone and service.verified:
            lines.append(self.catalogs.text(locale, "service.phone", {"phone": service.phone}))
        if not service.verified:
            lines.append(self.catalogs.text(locale, "service.unverified"))
        return "\n".join(lines)

    def render(self, outcome: Outcome) -> list[RenderedReply]:
        locale = outcome.locale
        # Nothing is stored for people who did not accept, so a non-default language
        # travels inside the buttons' payloads instead.
        prefix = f"{locale}|" if outcome.state is None and locale != DEFAULT_LOCALE else ""
        rendered = []
        for reply in outcome.replies:
            buttons = []
            for button in reply.buttons:
                payload = prefix + button.payload
                if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
                    raise ValueError(f"button payload longer than {MAX_PAYLOAD_BYTES} bytes: {payload!r}")
                label = self.text(button.label, locale)
                # Catalog phrases used mid-sentence ("xét nghiệm HIV") start a button with a capital.
                buttons.append(RenderedButton(label[:1].upper() + label[1:], payload))
            text = "\n\n".join(self.text(part, locale) for part in reply.parts)
            rendered.append(RenderedReply(text, tuple(buttons), reply.protect, reply.kind, locale))
        return rendered

    def fit(self, replies: list[RenderedReply], capabilities: Capabilities) -> list[RenderedReply]:
        """The replies as messages the channel accepts, in order.

        Texts are cut at paragraph, line or word boundaries to ``max_text``; buttons are spread
        evenly over groups of at most ``max_buttons`` (7 → 4 + 3), the first group on the last
        piece of text, the others each on a message of their own; labels are cut to
        ``max_label``. A quick exit on a channel that cannot delete carries how to delete by
        hand. At most ``max_messages`` come out: the safety answer is first in every reply
        list, so what a cut drops is never the number to call.
        """
        fitted: list[RenderedReply] = []
        for reply in replies:
            text = reply.text
            if reply.kind is ReplyKind.QUICK_EXIT and not capabilities.deletes and capabilities.delete_by_hand:
                text = f"{text}\n\n{self.catalogs.text(reply.locale, capabilities.delete_by_hand)}"
            pieces = [replace(reply, text=piece, buttons=()) for piece in split_text(text, capabilities.max_text)]
            buttons = [_cut_label(button, capabilities.max_label) for button in reply.buttons]
            if buttons:
                limit = capabilities.max_buttons or len(buttons)
                groups = math.ceil(len(buttons) / limit)
                size = math.ceil(len(buttons) / groups)
                pieces[-1] = replace(pieces[-1], buttons=tuple(buttons[:size]))
                for start in range(size, len(buttons), size):
                    pieces.append(replace(reply, text=MORE_TEXT, buttons=tuple(buttons[start : start + size])))
            fitted.extend(pieces)
        if capabilities.max_messages is not None:
            return fitted[: capabilities.max_messages]
        return fitted


def _cut_label(button: RenderedButton, limit: int | None) -> RenderedButton:
    if limit is None or len(button.label) <= limit:
        return button
    return RenderedButton(button.label[: limit - 1] + "…", button.payload)


def split_text(text: str, limit: int) -> list[str]:
    """Cut a long text at paragraph, line or word boundaries into pieces of at most ``limit``.

    A paragraph boundary is preferred over a line, a line over a word, wherever one falls in
    the second half of the piece: a short piece is better than a cut mid-paragraph, but not
    one of a few words.
    """
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = -1
        for boundary in ("\n\n", "\n", " "):
            found = rest.rfind(boundary, 0, limit)
            if found > limit // 2:
                cut = found
                break
            cut = max(cut, found)
        cut = cut if cut > 0 else limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [piece for piece in pieces if piece] or [" "]
