"""The one renderer: message keys and content references become text in the person's locale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal

from content.geo import CommuneIndex
from content.i18n import Catalogs
from content.pack import ContentPack, Service
from handlers.common import Outcome
from handlers.state import DEFAULT_LOCALE
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
            rendered.append(RenderedReply(text, tuple(buttons), reply.protect, reply.kind))
        return rendered
