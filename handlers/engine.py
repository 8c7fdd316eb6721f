"""The engine: given the stored state and one inbound event, decide the replies.

Pure and synchronous: no I/O, no clock, no platform objects. Button payloads are routed
first (they carry everything they need, so a person with no stored state can still browse),
then a pending confirmation, then the intent of the free text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace

from content.intents import strip_diacritics
from content.pack import SAFETY_INTENTS
from content.understand import NON_TOPIC_INTENTS, Understanding
from handlers import counselling, info, menu, onboarding, privacy, safety, services, smalltalk
from handlers import payloads as p
from handlers.common import Context, Outcome, Turn
from handlers.routes import route_payload
from handlers.state import DEFAULT_LOCALE, LOCALES, PEER_CODE, State, Step
from handlers.types import Button, Inbound, Msg, Reply, TurnFacts

MAX_TEXT_CHARS = 4096
MAX_PAYLOAD_CHARS = 64
_LOCALE_PREFIX = re.compile(r"^(vi|en)\|")
_WORDS = re.compile(r"[^a-z0-9]+")
_START_COMMANDS = frozenset({"/start", "start", "/batdau"})
_MENU_COMMANDS = frozenset({"/menu"})
_QUICK_EXIT_COMMANDS = frozenset({"/thoat", "/exit"})
_ERASE_COMMANDS = frozenset({"/xoa", "/erase"})
_HELP_COMMANDS = frozenset({"/trogiup", "/help"})
# Typed on its own, a language name switches to it at any point of the conversation.
_LANGUAGE_WORDS = {"english": "en", "tieng anh": "en", "tieng viet": "vi", "vietnamese": "vi"}

Flow = Callable[[Turn], Outcome]


def _plain(text: str) -> str:
    """Lower case, no marks, words separated by single spaces: for comparing short answers."""
    return " ".join(_WORDS.sub(" ", strip_diacritics(text)).split())


def clean_text(raw: str | None) -> str:
    """Make typed text safe to handle: valid Unicode, NFC, no control characters, bounded."""
    if not raw:
        return ""
    text = raw[: MAX_TEXT_CHARS * 2].encode("utf-8", "replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " "
        for ch in text
        if ch not in "\u200b\u200c\u200d\ufeff"
    )
    return " ".join(text.split())[:MAX_TEXT_CHARS]


def _locale_for(state: State | None, inbound: Inbound, payload: str) -> tuple[str, str]:
    match = _LOCALE_PREFIX.match(payload)
    if match:
        return match.group(1), payload[match.end() :]
    if state is not None:
        return state.locale, payload
    hint = (inbound.locale_hint or "").split("-")[0].lower()
    return (hint if hint in LOCALES else DEFAULT_LOCALE), payload


def respond(state: State | None, inbound: Inbound, ctx: Context, facts: TurnFacts | None = None) -> Outcome:
    """Answer one inbound event; ``facts`` (today, a fresh code) come from the runtime."""
    payload = clean_text(inbound.payload)[:MAX_PAYLOAD_CHARS] if inbound.payload else ""
    locale, payload = _locale_for(state, inbound, payload)
    turn = Turn(state=state, locale=locale, ctx=ctx, facts=facts)
    if not inbound.private:
        return turn.answer(Reply((Msg("input.private_only"),)), state=state)
    if payload:
        return route_payload(turn, payload)
    if inbound.start_param is not None:
        peer = inbound.start_param if PEER_CODE.match(inbound.start_param) else None
        return onboarding.greet(Turn(state, locale, ctx, "start", facts), peer=peer)
    in_chat = state is not None and state.case is not None
    if inbound.media is not None and in_chat:
        return _with_intent(turn, f"media:{inbound.media}", counselling.text_only)
    if inbound.media is not None:
        key = "input.contact" if inbound.media == "contact" else "input.media"
        return _with_intent(turn, f"media:{inbound.media}", lambda t: menu.show_menu(t, Msg(key)))
    text = clean_text(inbound.text)
    if inbound.location is not None and not text:
        return services.nearest(Turn(state, locale, ctx, "location", facts), inbound.location)
    if not text:
        return _with_intent(turn, "empty", lambda t: _not_understood(t, "input.empty"))
    command = text.split()[0].lower().split("@")[0]
    if command in _START_COMMANDS and len(text.split()) == 2 and PEER_CODE.match(text.split()[1]):
        return onboarding.greet(Turn(state, locale, ctx, "start", facts), peer=text.split()[1])
    if command.startswith("/") or command == "start":
        return _route_command(turn, command)
    if state is not None and state.step is Step.CONFIRM_ERASE:
        answer = _plain(text)
        if answer in privacy.YES_WORDS:
            return privacy.confirm_erase(turn)
        if answer in privacy.NO_WORDS:
            return privacy.cancel_erase(turn)
        # Anything else: they moved on; the erasure is cancelled and the text answered.
        state = state.moved(Step.MENU)
        turn = Turn(state=state, locale=locale, ctx=ctx, facts=facts)
    if in_chat:
        # During a counsellor chat what the person types goes to the counsellor (after a pending
        # "erase everything?" question, which a typed yes or no still answers).
        return _relay(turn, text)
    language = _LANGUAGE_WORDS.get(_plain(text))
    if language is not None:
        return menu.switch_language(Turn(state, locale, ctx, "language", facts), language)
    understood = ctx.understander.understand(text)
    # English writing switches to English; Vietnamese writing goes back to Vietnamese only for
    # someone with no stored choice (a person who chose English keeps it until they choose again).
    switched = understood.language is not None and understood.language != locale
    if switched and understood.language == DEFAULT_LOCALE and state is not None:
        switched = False
    if switched:
        # Answer in the language the person writes in, and remember it (with a way back).
        locale = understood.language or locale
        state = replace(state, locale=locale) if state is not None else None
        turn = Turn(state=state, locale=locale, ctx=ctx, facts=facts)
    outcome = _answer_text(turn, text, understood)
    return _with_way_back(outcome) if switched and locale != DEFAULT_LOCALE else outcome


def _answer_text(turn: Turn, text: str, understood: Understanding) -> Outcome:
    state, locale, ctx, facts = turn.state, turn.locale, turn.ctx, turn.facts
    intent = understood.intent
    if understood.safety:
        t = Turn(state, locale, ctx, intent, facts)
        return safety.cue_answer(t, understood.safety, understood.topic)
    if understood.smalltalk is not None:
        return smalltalk.smalltalk(Turn(state, locale, ctx, "smalltalk", facts), understood.smalltalk)
    awaiting = state is not None and state.step is Step.AWAIT_COMMUNE
    if intent not in SAFETY_INTENTS and (awaiting or understood.classified == "unknown"):
        place = services.commune_typed(Turn(state, locale, ctx, "commune", facts), text, fuzzy=awaiting)
        if place is not None:
            return place
        if awaiting and intent == "unknown" and not understood.alternatives:
            return services.commune_not_found(Turn(state, locale, ctx, "commune", facts))
    if awaiting and state is not None:
        turn = Turn(state=state.moved(Step.MENU), locale=locale, ctx=ctx, facts=facts)
    if understood.alternatives:
        return smalltalk.clarify(Turn(turn.state, locale, ctx, "clarify", facts), understood.alternatives)
    topic_id = understood.topic
    if intent in SAFETY_INTENTS:
        afraid = "police_fear" in understood.safety.marks
        return safety.safety_answer(Turn(turn.state, locale, ctx, intent, facts), intent, topic_id, afraid_of_police=afraid)
    if topic_id is not None and topic_id in ctx.pack.topics and intent not in NON_TOPIC_INTENTS:
        return info.topic(Turn(turn.state, locale, ctx, intent, facts), topic_id)
    return _route_intent(turn, intent)


def _relay(turn: Turn, text: str) -> Outcome:
    """During a counsellor chat: the text goes to the counsellor; a safety message is also
    answered by the bot at once, exactly as outside the chat."""
    understood = turn.ctx.understander.understand(text)
    answer = None
    t = Turn(turn.state, turn.locale, turn.ctx, understood.intent, turn.facts)
    if understood.safety:
        answer = safety.cue_answer(t, understood.safety, understood.topic)
    elif understood.intent in SAFETY_INTENTS:
        afraid = "police_fear" in understood.safety.marks
        answer = safety.safety_answer(t, understood.intent, understood.topic, afraid_of_police=afraid)
    return counselling.relay(Turn(turn.state, turn.locale, turn.ctx, "counselling_message", turn.facts), text, understood, answer)


def _with_way_back(outcome: Outcome) -> Outcome:
    """Add a one-tap way back to Vietnamese to the last reply of an automatic switch."""
    if not outcome.replies:
        return outcome
    *first, last = outcome.replies
    back = Button(Msg("language.to_vi"), p.Language("vi").pack())
    return replace(outcome, replies=(*first, replace(last, buttons=(*last.buttons, back))))


def _with_intent(turn: Turn, intent: str, flow: Flow) -> Outcome:
    return flow(Turn(turn.state, turn.locale, turn.ctx, intent, turn.facts))


def _route_command(turn: Turn, command: str) -> Outcome:
    if command in _START_COMMANDS:
        return _with_intent(turn, "start", onboarding.greet)
    if command in _MENU_COMMANDS:
        return _with_intent(turn, "menu", menu.show_menu)
    if command in _QUICK_EXIT_COMMANDS:
        return _with_intent(turn, "quick_exit", privacy.quick_exit)
    if command in _ERASE_COMMANDS:
        return _with_intent(turn, "delete_data", privacy.ask_erase)
    if command in _HELP_COMMANDS:
        return _with_intent(turn, "help", lambda t: menu.show_menu(t, Msg("help.text")))
    return _with_intent(turn, "unknown_command", lambda t: _not_understood(t, "input.unknown"))


def _route_intent(turn: Turn, intent: str) -> Outcome:
    t = Turn(turn.state, turn.locale, turn.ctx, intent, turn.facts)
    if intent in SAFETY_INTENTS:
        return safety.safety_answer(t, intent)
    if intent == "greeting":
        return onboarding.greet(t)
    if intent == "menu":
        return menu.show_menu(t)
    if intent == "services_nearby":
        return services.services_menu(t)
    if intent == "privacy":
        return privacy.privacy_menu(t)
    if intent == "delete_data":
        return privacy.ask_erase(t)
    if intent == "quick_exit":
        return privacy.quick_exit(t)
    if intent == "human_counselor":
        return counselling.offer(t)
    found = t.ctx.pack.topic_for_intent(intent)
    if found is not None:
        return info.topic(t, found.id)
    if intent != "unknown":
        return info.groups(t, lead=Msg("info.no_topic_yet"))
    if t.state is None:
        return onboarding.welcome(t)
    return _not_understood(t, "input.unknown")


def _not_understood(turn: Turn, key: str) -> Outcome:
    return menu.show_menu(turn, Msg(key))

