"""Safety first: danger, crisis, violence, trafficking and possible HIV exposure.

The first reply carries the hotline numbers (or the 72-hour PEP message) at once, before any
question, and before the privacy notice for someone who has not seen it yet.
"""

from __future__ import annotations

from dataclasses import replace

from content.safety import SafetyCheck
from handlers.common import Outcome, Turn, nav
from handlers.info import topic, topic_button
from handlers.types import Emphasis, Engaged, HotlineList, Msg, Reply

URGENT = Emphasis.URGENT

_LEAD = {
    "crisis": "safety.crisis",
    "emergency": "safety.emergency",
    "violence": "safety.violence",
    "trafficking": "safety.trafficking",
}
_FOLLOW_UP = {"crisis": "mental_health", "emergency": "violence", "violence": "violence", "trafficking": "trafficking"}
# The situation each lead answers, which orders the numbers under it (content/data/hotlines.yaml).
_SITUATION = {
    "safety.crisis": "crisis",
    "safety.overdose": "medical",
    "safety.bleeding": "medical",
    "safety.fire": "fire",
    "safety.trafficking": "trafficking",
    "safety.emergency": "danger",
    "safety.violence": "danger",
}
# For someone afraid of the police: the same lead without "call 113" (issue #14).
_WITHOUT_POLICE = {
    "safety.emergency": "safety.emergency_no_police",
    "safety.violence": "safety.violence_no_police",
    "safety.trafficking": "safety.trafficking_no_police",
}


def _lead(key: str, afraid_of_police: bool) -> Msg:
    """A first line, or its police-free twin for someone afraid of the police."""
    return Msg(_WITHOUT_POLICE.get(key, key) if afraid_of_police else key, emphasis=URGENT)


def _situation(key: str | None, afraid_of_police: bool) -> str | None:
    """The situation the numbers are ordered for: that of the first line, or fear of arrest."""
    return "arrest" if afraid_of_police else _SITUATION.get(key) if key else None


def emergency_menu(turn: Turn) -> Outcome:
    buttons = [
        topic_button(topic_id)
        for topic_id in ("violence", "trafficking", "mental_health", "pep")
        if topic_id in turn.ctx.pack.topics
    ]
    reply = Reply((Msg("emergency.title", emphasis=URGENT), HotlineList()), nav(*buttons), protect=True)
    return replace(turn.answer(reply, effects=(Engaged("hotlines"),)), urgent=True)


def safety_answer(
    turn: Turn, intent: str, topic_id: str | None = None, *, afraid_of_police: bool = False
) -> Outcome:
    """Answer a safety intent: numbers or the PEP deadline first, then the matching topic
    (``topic_id``, a finer one the message pointed to, else the intent's own). Someone afraid of
    the police is not told to call them, and gets the topic as a button rather than its text."""
    return replace(_safety_answer(turn, intent, topic_id, afraid_of_police), urgent=True)


def _carries_help(turn: Turn, topic_id: str | None) -> bool:
    found = turn.ctx.pack.topics.get(topic_id) if topic_id else None
    return found is not None and found.carries_help


def _safety_answer(turn: Turn, intent: str, topic_id: str | None, afraid_of_police: bool) -> Outcome:
    if intent != "pep" and topic_id is not None and _carries_help(turn, topic_id) and not afraid_of_police:
        # Its own first lines are the help ("Bị quay lén…: đừng trả tiền", the consular line).
        return topic(turn, topic_id)
    if intent == "pep":
        if "pep" in turn.ctx.pack.topics:
            return topic(turn, "pep", lead=(Msg("safety.pep", emphasis=URGENT),))
        reply = Reply((Msg("safety.pep", emphasis=URGENT), HotlineList()), nav(), protect=True)
        return turn.answer(reply, effects=(Engaged("hotlines"),))
    follow = topic_id if topic_id in turn.ctx.pack.topics else _FOLLOW_UP.get(intent)
    buttons = []
    if follow and follow in turn.ctx.pack.topics:
        buttons.append(topic_button(follow))
    lead = _LEAD.get(intent, "safety.emergency")
    reply = Reply((_lead(lead, afraid_of_police), HotlineList(_situation(lead, afraid_of_police))), nav(*buttons), protect=True)
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


def cue_answer(turn: Turn, check: SafetyCheck, topic_id: str | None) -> Outcome:
    """Answer every danger cue of a message first, whatever else it asked, then the topic."""
    return replace(_cue_answer(turn, check, topic_id), urgent=True)


def _cue_answer(turn: Turn, check: SafetyCheck, topic_id: str | None) -> Outcome:
    leads: list[Msg] = []
    seen: set[str] = set()
    first: str | None = None  # the first line's key other than the consular one
    afraid_of_police = "police_fear" in check.marks
    # A topic that carries help is shown under the leads, and says the first line of a cue it
    # answers better itself; but its own lines may say "call 113": not to someone afraid of the police.
    carry = topic_id is not None and _carries_help(turn, topic_id) and not check.pep_late and not afraid_of_police
    answered = {cue for cue, t in check.instead if t == topic_id} if carry else set()
    cues, order = check.cues, _CUE_LEADS
    if "consular" in check.help:
        # Far from home the line that works from abroad comes first: 111, 113 and 115 do not.
        cues = (*check.cues, "abroad")
        order = tuple(sorted(_CUE_LEADS, key=lambda item: item[0] != "abroad"))
    for cue, key in order:
        if cue in cues and cue not in answered and key not in seen:
            seen.add(key)
            if key == "safety.abroad":
                lines = turn.ctx.pack.abroad_hotlines()
                if not lines:
                    continue  # no verified line for abroad: the trafficking line and topic remain
                numbers = ", ".join(line.number for line in lines)
                sources = "; ".join(line.source for line in lines)
                leads.append(Msg(key, {"number": numbers, "source": sources}))
            else:
                first = first or key
                leads.append(_lead(key, afraid_of_police))
    if "pep" in check.help:
        leads.append(Msg("safety.pep_late" if check.pep_late else "safety.pep"))
    if "ec" in check.help:
        leads.append(Msg("safety.ec"))
    # One line marked as the one to act on now: the first, most urgent one.
    leads = [replace(lead, emphasis=URGENT if i == 0 else None) for i, lead in enumerate(leads)]
    if carry and topic_id is not None and (leads or answered):
        return topic(turn, topic_id, lead=tuple(leads))
    if not leads:  # only "which number do I call": the numbers themselves
        return emergency_menu(turn)
    pack = turn.ctx.pack
    buttons = []
    # The topic chosen, then the finer ones that answer a cue (someone abroad: "Khi bạn đang ở nước ngoài").
    follow = [*([topic_id] if topic_id else []), *(t for _, t in check.instead)]
    if check.pep_late:
        follow = ["hiv_testing", *follow]
    for other in dict.fromkeys(follow):
        if other in pack.topics:
            buttons.append(topic_button(other))
    reply = Reply((*leads, HotlineList(_situation(first, afraid_of_police))), nav(*buttons), protect=True)
    return turn.answer(reply, effects=(Engaged("hotlines"),))
