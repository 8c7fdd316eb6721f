"""Understanding one message: its intent, the topic that answers it, danger cues, its language.

Three stages, each pure and fast:
1. The safety net (content/safety.py) looks for every danger cue, whatever else the message asks.
2. The intent classifier (content/intents.py) names one of the contract's intent ids.
3. The topic index (content/topic_index.py) ranks the counselling topics by their own words,
   so that every topic can be reached by typing, not only the ones an intent opens.

They are combined here: a cue decides the safety intent; a topic the classifier's intent
answers is preferred, unless the topic index points much more clearly elsewhere; a message
whose best answer is weak is not guessed at — the person is asked which of the likeliest
topics they mean (never for a danger cue, which is answered at once).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from content import language
from content.intents import IntentClassifier, IntentMatch, Token, analyse
from content.pack import SAFETY_INTENTS, ContentPack
from content.safety import SafetyCheck, SafetyNet
from content.topic_index import RankedTopic, TopicIndex

# Intents answered by something other than a counselling topic.
NON_TOPIC_INTENTS = frozenset(
    {"greeting", "menu", "services_nearby", "privacy", "delete_data", "quick_exit", "human_counselor"}
)
TOPIC_ACCEPT = 4.0  # least topic-index score to answer with a topic when no intent was named
TOPIC_MARGIN = 1.25  # … and the best must beat the runner-up by this factor
TOPIC_ASK = 8.0  # least score to answer with a topic, or to ask which of the likeliest is meant
STRONG_TOPIC = 7.0  # a greeting or "menu" phrase gives way to a topic this clear
CHILD_FACTOR = 1.3  # a finer topic wins over the one its intent opens with this much more evidence
PHRASE_BONUS = 12.0  # how much a phrase of an intent weighs for its topics, in topic-index points
WORD_BONUS = 4.0  # … and word evidence for it
NAME_BONUS = 20.0  # what naming a topic's subject adds to its evidence
ASK_LIMIT = 3
# Safety intents a message afraid of the police gets the law's answer for, when no danger cue
# fired ("em sợ bị công an bắt"): the police are no help to someone who fears them.
POLICE_IS_NOT_HELP = frozenset({"emergency", "violence"})
LAW_INTENT = "legal_aid"

# Short messages that need a short friendly answer, not the welcome text again.
SMALLTALK: dict[str, str] = {}
for kind, phrases in {
    "thanks": "cam on|cam on ban|cam on nhieu|thanks|thank you|thank u|thank|tks|thx|ty|da cam on|"
    "cam on an tam|cam on em|cam on chi|cam on anh|ok cam on|ok thanks|thanks a lot|thank you so much|"
    "many thanks|cam on nhieu lam|cam on rat nhieu|cam on ad|thanks nha|thank you nha|ok em cam on|"
    "da em cam on|hihi cam on|cam on ban nha|cam on chi nhieu|thanks so much|thank you very much|tks nha|"
    "cam on vi da tra loi|cam on da giup|cam on da lang nghe|thanks for your help|thank you for helping|cam o",
    "ack": "ok|oke|oki|okie|okay|okela|uh|uhm|um|u|da|vang|ok roi|duoc roi|dc roi|hieu roi|roi|biet roi|"
    "got it|alright|fine|nice|tot|tot qua|hay qua|cool|ok ban|ok em|da vang|vang a|da a|ukm|uk|oh|o|a|"
    "ok a|oke a|okie a|da ok|uh ok|um ok|o ha|vay ha|that ha|oh ok|ok ok|great|good|ok good|hieu roi a|"
    "vang em hieu roi|ok de em thu|de em xem|de em coi|de em suy nghi|em se thu|ok chi|ok anh|chuc ngu ngon|"
    "good night|ngu ngon|ngu ngon nha|chuc ban ngu ngon|alright thanks|sure|yes|yeah|ok thank|dc|duoc",
    "anyone": "co ai khong|co ai ko|co ai k|co ai o do khong|co ai o day khong|co ai khong a|ai do|"
    "co nguoi khong|ban la ai|ban la nguoi hay may|ban la nguoi that khong|bot ha|may ha|"
    "la bot ha|nguoi that khong|bot ha tuong nguoi that|tuong nguoi that|are you a bot|is anyone there|anyone there|anybody there|who are you|"
    "are you real|are you human|is this a bot|hello anyone|alo co ai khong|co ai tra loi khong|"
    "sao khong ai tra loi|sao ko ai tra loi|ban co that khong|an tam la ai|bot oi|ad oi co do khong|"
    "co do khong|co do ko|con do khong|con do ko|ai dang tra loi vay|ai dang tra loi|ban ten gi|you there|"
    "are you there|hello co ai khong|alo alo|alo co ai khong|co ai online khong|ban co o do khong|"
    "day la bot ha|day la may ha|nguoi that hay bot|is this a real person|am i talking to a bot|"
    "ngu chua bot|bot ngu chua|ban ngu chua|an com chua|ban an com chua|ban khoe khong|how are you",
    "laugh": "hi hi|hihi|haha|hehe|kk|kkk|hix|hic|lol|huhu|hu hu",
    "bye": "tam biet|bye|bye bye|bai|bb|goodbye|hen gap lai|see you|chao nhe|thoi nhe",
}.items():
    for phrase in phrases.split("|"):
        SMALLTALK[phrase] = kind
# Words that open a message without adding anything to small talk ("hi, is this a bot?").
_OPENERS = ("xin chao", "chao ban", "chao", "alo", "hello", "hi", "hey", "ad oi", "ban oi", "oi")
# A message made only of these is an acknowledgement ("oki e hiểu r", "dạ vâng ạ").
_ACK_WORDS = frozenset("ok oki oke okie okay da vang u uh um uhm hieu roi r biet duoc dc a ah nha nhe em e minh".split())
_FILLERS = frozenset("nha nhe nhieu a ad admin nhiu lam qua so much ban em chi anh you very vay z ha ah nhi".split())


@dataclass(frozen=True)
class Understanding:
    """What a message means, as far as An Tâm can tell."""

    intent: str
    score: float
    topic: str | None = None
    safety: SafetyCheck = field(default_factory=SafetyCheck)
    # "en" / "vi" when the message is clearly written in it, else None.
    language: str | None = None
    # When unsure: the likeliest topics to offer as "Bạn muốn hỏi về…?".
    alternatives: tuple[str, ...] = ()
    # thanks, ack, anyone, laugh, bye: small talk that gets a short friendly answer.
    smalltalk: str | None = None
    # What the intent classifier alone said (the commune-name check reads it).
    classified: str = "unknown"


# Markers of small talk in a short message that asks for nothing else, and the kind they make.
_SMALLTALK_MARKERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("bye", frozenset({"bye", "bai", "tam biet", "ngu ngon", "good night", "mai noi tiep", "hen gap lai", "see you"})),
    ("thanks", frozenset({"cam on", "thank", "thanks", "tks", "thx"})),
    ("anyone", frozenset({"bot", "robot", "may ha", "nguoi that", "real person", "ai tra loi", "ad oi", "co ai", "tuoi roi"})),
    ("ack", frozenset({"hihi", "haha", "hehe", "lol", "ok", "oke", "oki", "u", "e", "ua", "the a", "vay ha", "de thuong",
                       "dep trai", "hay qua", "hay day", "hay dzu", "good morning", "morning", "hoi choi", "ke chuyen"})),
)
SMALLTALK_MAX_WORDS = 10


def plain_words(text: str) -> list[str]:
    """The plain words of a message as typed, teencode not expanded: what small talk is read from."""
    return [token.plain for token in analyse(text, teencode=False)]


def smalltalk_guess(plain: list[str]) -> str | None:
    """The small talk a short message most likely is, from its markers ("bye bot, mai nói tiếp")."""
    if not plain or len(plain) > SMALLTALK_MAX_WORDS:
        return None
    grams = {*plain, *(" ".join(plain[i : i + 2]) for i in range(len(plain) - 1)),
             *(" ".join(plain[i : i + 3]) for i in range(len(plain) - 2))}
    for kind, markers in _SMALLTALK_MARKERS:
        if grams & markers:
            return kind
    return None


def thanks_first(plain: list[str]) -> bool:
    """The message opens with a thank-you ("cảm ơn nhiều lắm, em đỡ lo rồi")."""
    return plain[:2] in (["cam", "on"], ["thank", "you"]) or plain[:1] in (["thanks"], ["tks"], ["thx"])


def smalltalk_kind(text: str) -> str | None:
    """The kind of small talk a short message is, if it is nothing more."""
    return _smalltalk_kind(plain_words(text))


def _smalltalk_kind(plain: list[str]) -> str | None:
    if not plain or len(plain) > 7:
        return None
    whole = " ".join(plain)
    if whole in SMALLTALK:
        return SMALLTALK[whole]
    for opener in _OPENERS:
        if whole.startswith(opener + " ") and whole[len(opener) + 1 :] in SMALLTALK:
            return SMALLTALK[whole[len(opener) + 1 :]]
    kept = [word for word in plain if word not in _FILLERS]
    if kept and " ".join(kept) in SMALLTALK:
        return SMALLTALK[" ".join(kept)]
    if all(word in _ACK_WORDS for word in plain) and any(word in ("ok", "oki", "oke", "okie", "okay", "hieu", "vang", "da") for word in plain):
        return "ack"
    return None


class Understander:
    """The three stages together (see the module docstring)."""

    def __init__(self, pack: ContentPack, classifier: IntentClassifier, net: SafetyNet, index: TopicIndex) -> None:
        self.pack = pack
        self.classifier = classifier
        self.net = net
        self.index = index
        self._intent_of = {topic.id: topic.intent for topic in pack.topics.values()}

    def understand(self, text: str) -> Understanding:
        lang = language.detect(text)
        words = self.classifier.words(text, teencode=lang != "en")
        match = self.classifier.classify_words(words)
        check = self.net.check(text, teencode=lang != "en") if words else SafetyCheck()
        found = self._understand(text, lang, words, match, check)
        # Marks ride along on every answer (a reply to someone afraid of the police names no 113).
        safety = found.safety if found.safety else check
        return replace(found, classified=match.intent, safety=safety)

    def _understand(
        self, text: str, lang: str | None, words: list[Token], match: IntentMatch, check: SafetyCheck
    ) -> Understanding:
        if not words:
            return Understanding("unknown", 0.0, language=lang)
        ranked = tuple(r for r in self.index.rank(words) if r.anchored)
        named = self.index.named(words)
        if named:
            # Naming a subject adds to its topics' evidence in every branch below.
            scores = {r.topic: r.score for r in ranked}
            for topic_id in named:
                scores[topic_id] = scores.get(topic_id, 0.0) + NAME_BONUS
            ranked = tuple(
                RankedTopic(t, round(v, 3)) for t, v in sorted(scores.items(), key=lambda item: -item[1])
            )
        if check:
            return self._safety(check, ranked, named, lang)
        plain = plain_words(text)
        small = _smalltalk_kind(plain)
        if small is not None:
            return Understanding("greeting", 1.0, language=lang, smalltalk=small)
        phrase_matched = match.phrase is not None
        best_named = next((r for r in ranked if r.topic in named), None)
        if match.intent == "pep" and best_named is not None and self._intent_of.get(best_named.topic) != "pep":
            # A PEP phrase without a danger cue ("phơi nhiễm") gives way to a subject named outright
            # ("PrEP – dự phòng trước phơi nhiễm"): the safety net already caught any real exposure.
            return self._topic(best_named, ranked, lang)
        if "police_fear" in check.marks and match.intent in POLICE_IS_NOT_HELP and phrase_matched:
            # Fear of the police is no danger cue: unless a finer topic fits (blackmail), what the
            # law lets them do is the answer; "call 113" helps no one afraid of arrest.
            finer = self._choose_in(match.intent, ranked)
            if finer is None or finer == self._primary(match.intent):
                topic = self._choose_in(LAW_INTENT, ranked)
                return Understanding(LAW_INTENT, match.score, topic, safety=check, language=lang)
        if match.intent in SAFETY_INTENTS and phrase_matched:
            # The classifier's own safety phrases: answered as before, with the intent's topic.
            topic = self._choose_in(match.intent, ranked)
            return Understanding(match.intent, match.score, topic, language=lang)
        best = ranked[0] if ranked else None
        if thanks_first(plain) and match.intent in ("unknown", "greeting") and (best is None or best.score < TOPIC_ASK):
            return Understanding("greeting", 1.0, language=lang, smalltalk="thanks")
        weak = match.intent in ("unknown", "greeting") or not phrase_matched
        if weak and (best is None or best.score < TOPIC_ASK):
            guessed = smalltalk_guess(plain)
            if guessed is not None:
                return Understanding("greeting", 1.0, language=lang, smalltalk=guessed)
        if match.intent in NON_TOPIC_INTENTS:
            if best is not None and best.topic in named and best.score >= STRONG_TOPIC:
                return self._topic(best, ranked, lang)
            if match.intent in ("greeting", "menu") and best is not None and best.score >= STRONG_TOPIC:
                return self._topic(best, ranked, lang)
            if phrase_matched or best is None or best.score < TOPIC_ACCEPT:
                return Understanding(match.intent, match.score, language=lang)
        elif match.intent not in ("unknown", *SAFETY_INTENTS):
            # The classifier's intent counts as evidence for its topics, the more for a phrase met.
            bonus = PHRASE_BONUS if phrase_matched else WORD_BONUS * match.score
            combined = {r.topic: r.score for r in ranked}
            for topic_id, intent in self._intent_of.items():
                if intent == match.intent:
                    combined[topic_id] = combined.get(topic_id, 0.0) + bonus
            chosen = max(combined, key=lambda t: combined[t])
            if phrase_matched or combined[chosen] >= TOPIC_ASK:
                intent = self._intent_of.get(chosen) or match.intent
                return Understanding(intent, match.score, chosen, language=lang)
        if best is None or best.score < TOPIC_ASK:
            return Understanding("unknown", 0.0, language=lang)
        runner = ranked[1].score if len(ranked) > 1 else 0.0
        if best.score >= TOPIC_ACCEPT and best.score >= TOPIC_MARGIN * runner:
            return self._topic(best, ranked, lang)
        offered = tuple(r.topic for r in ranked[:ASK_LIMIT] if r.score >= 0.5 * best.score)
        return Understanding("unknown", 0.0, language=lang, alternatives=offered)

    def _topic(self, best: RankedTopic, ranked: tuple[RankedTopic, ...], lang: str | None) -> Understanding:
        intent = self._intent_of.get(best.topic) or "unknown"
        return Understanding(intent, round(best.score / (best.score + TOPIC_ACCEPT), 3), best.topic, language=lang)

    def _safety(
        self, check: SafetyCheck, ranked: tuple[RankedTopic, ...], named: Collection[str], lang: str | None
    ) -> Understanding:
        # A topic the message names that answers its cue better ("người yêu có HIV").
        topic = next((t for _, t in check.instead if t in named), check.topic)
        intent = check.intent or (self._intent_of.get(topic) if topic else None) or "emergency"
        if check.pep_late and intent == "pep":
            # Past PEP's window the next step is testing: the reply leads with that advice.
            intent, topic = "hiv_testing", "hiv_testing"
        elif topic is None and ranked and ranked[0].score >= TOPIC_ASK:
            topic = ranked[0].topic  # heavy bleeding after an abortion: the abortion topic follows
        return Understanding(intent, 1.0, topic, safety=check, language=lang)

    def _choose_in(self, intent: str, ranked: tuple[RankedTopic, ...]) -> str | None:
        """The topic answering ``intent``: a finer one only when its words clearly point to it."""
        primary = self._primary(intent)
        scores = {r.topic: r.score for r in ranked}
        inside = self._best_ranked_in(intent, ranked)
        if inside is None or inside.topic == primary:
            return primary or (inside.topic if inside else None)
        if primary is None or inside.score >= CHILD_FACTOR * scores.get(primary, 0.0):
            return inside.topic
        return primary

    def _best_ranked_in(self, intent: str, ranked: tuple[RankedTopic, ...]) -> RankedTopic | None:
        return next((r for r in ranked if self._intent_of.get(r.topic) == intent), None)

    def _primary(self, intent: str) -> str | None:
        topic = self.pack.topic_for_intent(intent)
        return topic.id if topic else None


def build_understander(pack: ContentPack, phrases: dict[str, list[str]], net: SafetyNet) -> Understander:
    """The understander over a loaded content pack, phrase table and safety net."""
    return Understander(pack, IntentClassifier(phrases), net, TopicIndex(pack, phrases))


__all__ = ["Understander", "Understanding", "build_understander", "smalltalk_kind"]
