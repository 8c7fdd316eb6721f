"""Short answers to small talk ("cảm ơn", "ok", "có ai không"), and the question asked when unsure.

Small talk never gets the whole welcome text again, also from someone who declined the notice:
one friendly line and the way back to the menu. A message whose best answer is weak gets
"Bạn muốn hỏi về…?" with the likeliest topics as buttons instead of a guess.
"""

from __future__ import annotations

from handlers.common import MENU, QUICK_EXIT, Outcome, Turn, nav
from handlers.info import topic_button
from handlers.types import Button, Msg, Reply

_KEYS = {
    "thanks": "smalltalk.thanks",
    "ack": "smalltalk.ack",
    "laugh": "smalltalk.ack",
    "anyone": "smalltalk.anyone",
    "bye": "smalltalk.bye",
}


def smalltalk(turn: Turn, kind: str) -> Outcome:
    if kind == "bye":
        return turn.answer(Reply((Msg(_KEYS[kind]),), (MENU, QUICK_EXIT)))
    return turn.answer(Reply((Msg(_KEYS.get(kind, "smalltalk.ack")),), nav()))


def clarify(turn: Turn, topics: tuple[str, ...]) -> Outcome:
    """Offer the likeliest topics as buttons."""
    buttons = [topic_button(topic_id) for topic_id in topics if topic_id in turn.ctx.pack.topics]
    return turn.answer(Reply((Msg("clarify.which"),), nav(*buttons)))
