"""The one renderer: message keys and content references become text in the person's locale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from content.i18n import Catalogs
from content.pack import ContentPack
from handlers.common import Outcome
from handlers.state import DEFAULT_LOCALE
from handlers.types import GroupTitle, HotlineList, Msg, ReplyKind, Text, TopicPart, TopicText

MAX_PAYLOAD_BYTES = 64


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
    def __init__(self, catalogs: Catalogs, pack: ContentPack) -> None:
        self.catalogs = catalogs
        self.pack = pack

    def text(self, part: Text, locale: str) -> str:
        if isinstance(part, Msg):
            return self.catalogs.text(locale, part.key, part.params)
        if isinstance(part, TopicText):
            texts = self.pack.topics[part.topic].texts(locale)
            if part.part is TopicPart.TITLE:
                return texts.title
            if part.part is TopicPart.MORE:
                return texts.more or texts.summary
            return texts.summary
        if isinstance(part, GroupTitle):
            return self.catalogs.text(locale, f"group.{part.group}")
        if isinstance(part, HotlineList):
            return "\n".join(
                self.catalogs.text(
                    locale,
                    "hotline.line",
                    {"number": line.number, "name": line.texts(locale).name, "description": line.texts(locale).description},
                )
                for line in self.pack.shown_hotlines()
            )
        raise TypeError(f"cannot render {part!r}")

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
                buttons.append(RenderedButton(self.text(button.label, locale), payload))
            text = "\n\n".join(self.text(part, locale) for part in reply.parts)
            rendered.append(RenderedReply(text, tuple(buttons), reply.protect, reply.kind))
        return rendered
