"""The one renderer: message keys and content references become text in the person's locale.

Besides the plain text every channel shows, a rendered reply carries the same paragraphs as
``blocks`` of known kinds (a title, the urgent line, a referral code, a phone number, a place),
taken from the neutral reply's data, so a page can lay them out without any markup in content.

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
from handlers.payloads import MAX_PAYLOAD_BYTES, QuickExit
from handlers.types import (
    CommuneName,
    Dated,
    Emphasis,
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
QUICK_EXIT_PAYLOAD = QuickExit().pack()


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
    # The channel's own screen always shows a quick-exit control (the web chat's header), so
    # replies do not repeat the quick-exit button.
    exit_always_shown: bool = False
    # How many of a message's buttons are shown at first, the rest behind a "more" control the
    # channel's own screen offers; None: all are shown.
    buttons_shown: int | None = None


class BlockKind(StrEnum):
    """What a paragraph of a rendered reply is."""

    TITLE = "title"  # a topic's or a group's title
    URGENT = "urgent"  # the one line to act on now
    TEXT = "text"
    CODE = "code"  # a referral code: ``value`` is the code as shown
    PHONE = "phone"  # a hotline: ``value`` the number as shown, ``dial`` what to dial
    PLACE = "place"  # a service: ``lines`` its name and details; ``value``/``dial`` a verified phone
    NOTE = "note"  # a remark about the list above it (not verified yet)


@dataclass(frozen=True)
class Block:
    """One paragraph of a rendered reply with what it is; ``text`` is what plain text shows."""

    kind: BlockKind
    text: str
    value: str | None = None
    dial: str | None = None
    lines: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "text": self.text}
        if self.value is not None:
            data["value"] = self.value
        if self.dial is not None:
            data["dial"] = self.dial
        if self.lines:
            data["lines"] = list(self.lines)
        return data


def dial(number: str) -> str:
    """What a phone dials for a number as written ("1900 6168" → "19006168")."""
    return "".join(ch for ch in number if ch.isdigit() or ch == "+")


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
    # The text's paragraphs with what each is (``text`` is their texts joined by blank lines);
    # empty where a reply was cut to fit a channel, or came back from the outbox.
    blocks: tuple[Block, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "buttons": [{"label": b.label, "payload": b.payload} for b in self.buttons],
        }
        if self.blocks:
            data["blocks"] = [block.to_json() for block in self.blocks]
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
            return self._service(self._services[part.service], part.distance_km, locale, mark=True)
        if isinstance(part, ServiceName):
            found = self._services.get(part.service)
            # A code may outlive a service removed from the directory: say so rather than fail.
            return found.texts(locale).name if found else self.catalogs.text(locale, "service.removed")
        if isinstance(part, Dated):
            day = format_date(part.day, format="long", locale=BABEL_LOCALES[locale])
            return self.catalogs.text(locale, part.key, {**part.params, "date": day})
        if isinstance(part, HotlineList):
            return "\n".join(block.text for block in self.block(part, locale))
        raise TypeError(f"cannot render {part!r}")

    def _service(self, service: Service, distance: float | None, locale: str, *, mark: bool) -> str:
        texts = service.texts(locale)
        kinds = ", ".join(self.catalogs.text(locale, f"service_type.{kind}") for kind in service.types)
        # Not verified: a mark by the name where a list mixes both; the reply says once what it
        # means (``_paragraphs``).
        marked = mark and not service.verified
        name = self.catalogs.text(locale, "service.unverified", {"name": texts.name}) if marked else texts.name
        lines = [self.catalogs.text(locale, "service.entry", {"name": name, "kinds": kinds})]
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
        return "\n".join(lines)

    def block(self, part: Text, locale: str, *, mark: bool = True) -> list[Block]:
        """``part`` as blocks: several for a list of hotlines (one per number), else one.

        ``mark``: a service not verified has a mark by its name (not where all are unverified)."""
        if isinstance(part, HotlineList):
            blocks = []
            for line in self.pack.shown_hotlines(part.situation):
                texts = line.texts(locale)
                values = {"number": line.number, "name": texts.name, "hours": texts.hours, "description": texts.description}
                text = self.catalogs.text(locale, "hotline.line", values)
                blocks.append(Block(BlockKind.PHONE, text, line.number, dial(line.number)))
            return blocks
        if isinstance(part, ServiceEntry):
            found = self._services[part.service]
            text = self._service(found, part.distance_km, locale, mark=mark)
            phone = found.phone if found.phone and found.verified else None
            lines = tuple(line.strip().removeprefix("•").strip() for line in text.split("\n"))
            return [Block(BlockKind.PLACE, text, phone, dial(phone) if phone else None, lines)]
        text = self.text(part, locale)
        if isinstance(part, TopicText) and part.part is TopicPart.TITLE or isinstance(part, GroupTitle):
            return [Block(BlockKind.TITLE, text)]
        if isinstance(part, Msg) and part.emphasis is Emphasis.URGENT:
            return [Block(BlockKind.URGENT, text)]
        if isinstance(part, Msg) and part.emphasis is Emphasis.CODE and "code" in part.params:
            return [Block(BlockKind.CODE, text, str(part.params["code"]))]
        return [Block(BlockKind.TEXT, text)]

    def _paragraphs(self, parts: tuple[Text, ...], locale: str) -> list[list[Block]]:
        """The blocks of a reply's parts, one list per paragraph.

        A list with places not yet verified says so once, after the last of them, not by each:
        where some are verified, a mark by the others' names and what it means; where none is,
        that the details above are not verified."""
        entries = [(i, part) for i, part in enumerate(parts) if isinstance(part, ServiceEntry)]
        unverified = [entry for _, entry in entries if not self._services[entry.service].verified]
        mixed = 0 < len(unverified) < len(entries)
        paragraphs = [self.block(part, locale, mark=mixed) for part in parts]
        if unverified:
            key = "services.unverified_note" if mixed else "services.unverified_all"
            paragraphs.insert(entries[-1][0] + 1, [Block(BlockKind.NOTE, self.catalogs.text(locale, key))])
        return paragraphs

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
            paragraphs = self._paragraphs(reply.parts, locale)
            text = "\n\n".join("\n".join(block.text for block in paragraph) for paragraph in paragraphs)
            blocks = tuple(block for paragraph in paragraphs for block in paragraph)
            rendered.append(RenderedReply(text, tuple(buttons), reply.protect, reply.kind, locale, blocks))
        return rendered

    def fit(self, replies: list[RenderedReply], capabilities: Capabilities) -> list[RenderedReply]:
        """The replies as messages the channel accepts, in order.

        Texts are cut at paragraph, line or word boundaries to ``max_text``; buttons are spread
        evenly over groups of at most ``max_buttons`` (7 → 4 + 3), the first group on the last
        piece of text, the others each on a message of their own; labels are cut to
        ``max_label``. A quick exit on a channel that cannot delete carries how to delete by
        hand; where the channel's screen always shows a quick exit, replies do not repeat it.
        A reply cut into pieces loses its blocks (they would not match the pieces). At most ``max_messages`` come out: the safety answer is first in every reply
        list, so what a cut drops is never the number to call.
        """
        fitted: list[RenderedReply] = []
        for reply in replies:
            text = reply.text
            if reply.kind is ReplyKind.QUICK_EXIT and not capabilities.deletes and capabilities.delete_by_hand:
                text = f"{text}\n\n{self.catalogs.text(reply.locale, capabilities.delete_by_hand)}"
            cut = split_text(text, capabilities.max_text)
            blocks = reply.blocks if len(cut) == 1 and text == reply.text else ()
            pieces = [replace(reply, text=piece, buttons=(), blocks=blocks) for piece in cut]
            buttons = [
                _cut_label(button, capabilities.max_label)
                for button in reply.buttons
                if not (capabilities.exit_always_shown and _is_quick_exit(button))
            ]
            if buttons:
                limit = capabilities.max_buttons or len(buttons)
                groups = math.ceil(len(buttons) / limit)
                size = math.ceil(len(buttons) / groups)
                pieces[-1] = replace(pieces[-1], buttons=tuple(buttons[:size]))
                for start in range(size, len(buttons), size):
                    pieces.append(replace(reply, text=MORE_TEXT, buttons=tuple(buttons[start : start + size]), blocks=()))
            fitted.extend(pieces)
        if capabilities.max_messages is not None:
            return fitted[: capabilities.max_messages]
        return fitted


def _is_quick_exit(button: RenderedButton) -> bool:
    """The quick-exit button, in any language ("x", or "en|x" before consent)."""
    return button.payload.rpartition("|")[2] == QUICK_EXIT_PAYLOAD


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
