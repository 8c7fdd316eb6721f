"""Safety first: danger, crisis, violence, trafficking and possible HIV exposure.

The first reply carries the hotline numbers (or the 72-hour PEP message) at once, before any
question, and before the privacy notice for someone who has not seen it yet.
"""

from __future__ import annotations

from handlers.common import Outcome, Turn, nav
from handlers.info import topic
from handlers.types import Button, Engaged, HotlineList, Msg, Reply, TopicPart, TopicText

_LEAD = {
    "crisis": "safety.crisis",
    "emergency": "safety.emergency",
    "violence": "safety.violence",
    "trafficking": "safety.trafficking",
}
_FOLLOW_UP = {"crisis": "mental_health", "emergency": "violence", "violence": "violence", "trafficking": "trafficking"}


def emergency_menu(turn: Turn) -> Outcome:
    buttons = [
        Button(TopicText(topic_id, TopicPart.TITLE), f"t:{topic_id}")
        for topic_id in ("violence", "trafficking", "mental_health", "pep")
        if topic_id in turn.ctx.pack.topics
    ]
    reply = Reply((Msg("emergency.title"), HotlineList()), nav(*buttons), protect=True)
    return turn.answer(reply, effects=(Engaged("hotlines"),))


def safety_answer(turn: Turn, intent: str) -> Outcome:
    """Answer a safety intent: numbers or the PEP deadline first, then the matching topic."""
    if intent == "pep":
        if "pep" in turn.ctx.pack.topics:
            return topic(turn, "pep", lead=(Msg("safety.pep"),))
        return turn.answer(Reply((Msg("safety.pep"), HotlineList()), nav(), protect=True), effects=(Engaged("hotlines"),))
    follow = _FOLLOW_UP.get(intent)
    buttons = []
    if follow and follow in turn.ctx.pack.topics:
        buttons.append(Button(TopicText(follow, TopicPart.TITLE), f"t:{follow}"))
    reply = Reply((Msg(_LEAD.get(intent, "safety.emergency")), HotlineList()), nav(*buttons), protect=True)
    return turn.answer(reply, effects=(Engaged("hotlines"),))
