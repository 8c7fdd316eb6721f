"""Health and support services: which kinds of help, and where they are given.

The directory of verified places per commune comes with the referrals work; until a commune
has verified entries, the person is told so plainly and shown the kind of place to go to.
"""

from __future__ import annotations

from handlers.common import Outcome, Turn, nav
from handlers.types import Button, Msg, Reply, TopicPart, TopicText

SERVICE_TOPICS = ("hiv_testing", "prep", "pep", "sti", "condoms", "hiv_treatment", "mental_health", "legal_aid")


def services_menu(turn: Turn) -> Outcome:
    buttons = [
        Button(TopicText(topic_id, TopicPart.TITLE), f"t:{topic_id}")
        for topic_id in SERVICE_TOPICS
        if topic_id in turn.ctx.pack.topics
    ]
    reply = Reply((Msg("services.title"), Msg("services.directory_pending")), nav(*buttons))
    return turn.answer(reply)
