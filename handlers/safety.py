"""Safety first: danger, crisis, violence, trafficking and possible HIV exposure.

The first reply carries the hotline numbers (or the 72-hour PEP message) at once, before any
question, and before the privacy notice for someone who has not seen it yet.
"""

from __future__ import annotations

from dataclasses import replace

from content.safety import SafetyCheck
from handlers.common import Outcome, Turn, nav
from handlers.info import topic
from handlers.types import Button, Engaged, HotlineList, Msg, Reply, Text, TopicPart, TopicText

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
    return replace(turn.answer(reply, effects=(Engaged("hotlines"),)), urgent=True)


def safety_answer(turn: Turn, intent: str) -> Outcome:
    """Answer a safety intent: numbers or the PEP deadline first, then the matching topic."""
    return replace(_safety_answer(turn, intent), urgent=True)


def _safety_answer(turn: Turn, intent: str) -> Outcome:
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


# The line each danger cue puts first, most urgent first (content/data/safety_cues.yaml).
_CUE_LEADS: tuple[tuple[str, str], ...] = (
    ("suicide", "safety.crisis"),
    ("overdose", "safety.overdose"),
    ("bleeding", "safety.bleeding"),
    ("fire", "safety.fire"),
    ("injured", "safety.emergency"),
    ("threatened", "safety.emergency"),
    ("help_now", "safety.emergency"),
    ("rape", "safety.violence"),
    ("beaten", "safety.violence"),
    ("held", "safety.trafficking"),
    ("confined", "safety.emergency"),
    ("minor_at_risk", "safety.trafficking"),
    ("abroad", "safety.abroad"),
)
# Topics whose short answer carries the rest of what the person needs right now.
_CARRYING_TOPICS = frozenset({"pep", "sexual_violence", "emergency_contraception"})


def cue_answer(turn: Turn, check: SafetyCheck, topic_id: str | None) -> Outcome:
    """Answer every danger cue of a message first, whatever else it asked, then the topic."""
    return replace(_cue_answer(turn, check, topic_id), urgent=True)


def _cue_answer(turn: Turn, check: SafetyCheck, topic_id: str | None) -> Outcome:
    leads: list[Text] = []
    seen: set[str] = set()
    cues, order = check.cues, _CUE_LEADS
    if "consular" in check.help:
        # Far from home the line that works from abroad comes first: 111, 113 and 115 do not.
        cues = (*check.cues, "abroad")
        order = tuple(sorted(_CUE_LEADS, key=lambda item: item[0] != "abroad"))
    for cue, key in order:
        if cue in cues and key not in seen:
            seen.add(key)
            if key == "safety.abroad":
                lines = turn.ctx.pack.abroad_hotlines()
                if not lines:
                    continue  # no verified line for abroad: the trafficking line and topic remain
                numbers = ", ".join(line.number for line in lines)
                sources = "; ".join(line.source for line in lines)
                leads.append(Msg(key, {"number": numbers, "source": sources}))
            else:
                leads.append(Msg(key))
    if "pep" in check.help:
        leads.append(Msg("safety.pep_late" if check.pep_late else "safety.pep"))
    if "ec" in check.help:
        leads.append(Msg("safety.ec"))
    if not leads:  # only "which number do I call": the numbers themselves
        return emergency_menu(turn)
    pack = turn.ctx.pack
    if topic_id in _CARRYING_TOPICS and topic_id in pack.topics and not check.pep_late:
        return topic(turn, topic_id, lead=tuple(leads))
    buttons = []
    follow = [topic_id] if topic_id else []
    if check.pep_late:
        follow = ["hiv_testing", *follow]
    for other in dict.fromkeys(follow):
        if other in pack.topics:
            buttons.append(Button(TopicText(other, TopicPart.TITLE), f"t:{other}"))
    reply = Reply((*leads, HotlineList()), nav(*buttons), protect=True)
    return turn.answer(reply, effects=(Engaged("hotlines"),))
