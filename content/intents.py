"""Recognise what a person means from free Vietnamese text (DESIGN §4 intent ids).

Text is normalised the way people type on phones: case, tone marks and other diacritics
are dropped ("đ" → "d" explicitly, since Unicode does not decompose it), punctuation and
emoji become spaces, common teencode is expanded and stretched letters ("cứuuuu") are
cut back. Trigger phrases from data/intents.yaml are normalised the same way and matched as
whole-word runs. Safety intents win over everything else; among the rest the longest phrase
wins; greetings and "menu" only when nothing more specific is there.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from content.pack import DATA_DIR, INTENT_IDS, ContentError

# Highest first: a message naming both violence and suicidal thoughts is a crisis.
SAFETY_ORDER = ("crisis", "emergency", "violence", "trafficking", "pep")
WEAK_INTENTS = frozenset({"greeting", "menu"})
MAX_CLASSIFIED_CHARS = 1000

TEENCODE: dict[str, str] = {
    "ko": "khong", "k": "khong", "kh": "khong", "hok": "khong", "hong": "khong", "hem": "khong",
    "khg": "khong", "kg": "khong", "dc": "duoc", "dk": "duoc", "j": "gi", "ji": "gi",
    "ntn": "nhu the nao", "xn": "xet nghiem", "bcs": "bao cao su", "e": "em", "a": "anh",
    "mk": "minh", "mik": "minh", "vs": "voi", "ng": "nguoi", "bik": "biet", "bit": "biet",
    "z": "vay", "v": "vay", "r": "roi", "ck": "chong", "vk": "vo", "cj": "chi", "chj": "chi",
    "sdt": "so dien thoai", "dt": "dien thoai", "bv": "benh vien", "bs": "bac si", "ns": "noi",
    "ms": "moi", "lm": "lam", "trc": "truoc", "tks": "thanks", "thank": "thanks", "ok": "ok",
}

_NON_WORD = re.compile(r"[^a-z0-9]+")
# Stretched letters ("cứuuuu", "alooo"): a run of three or more is cut back, to two for
# the vowels Vietnamese doubles ("cứu" → "cuu", "xoong"), else to one; doubles stay as typed.
_RUN = re.compile(r"([a-z])\1{2,}")


def _squeeze(word: str) -> str:
    return _RUN.sub(lambda m: m.group(1) * (2 if m.group(1) in "uo" else 1), word)


def strip_diacritics(text: str) -> str:
    """Lower-case and remove every Vietnamese tone mark and diacritic, mapping đ/Đ to d."""
    text = text.lower().replace("đ", "d").replace("Đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


@dataclass(frozen=True)
class Token:
    """A normalised word: ``plain`` without any marks, ``marked`` as typed (lower-case, NFC)."""

    plain: str
    marked: str

    @property
    def has_marks(self) -> bool:
        return self.marked != self.plain

    def marks_disagree(self, other: Token) -> bool:
        """Both were written with tone marks, and different ones ("từ" and "tự")."""
        return self.has_marks and other.has_marks and self.marked != other.marked


_NON_WORD_MARKED = re.compile(r"[^\w]+|_")


def analyse(text: str) -> list[Token]:
    """Normalise text into tokens (see the module docstring), keeping the marks as typed."""
    lowered = unicodedata.normalize("NFC", text[:MAX_CLASSIFIED_CHARS].lower())
    out: list[Token] = []
    for word in _NON_WORD_MARKED.split(lowered):
        plain_word = _NON_WORD.sub(" ", strip_diacritics(word)).strip()
        if not plain_word:
            continue
        if " " in plain_word:  # letters outside Vietnamese, e.g. "hiv2u": keep the pieces plain
            out.extend(Token(_squeeze(piece), _squeeze(piece)) for piece in plain_word.split())
            continue
        expanded = TEENCODE.get(plain_word)
        if expanded is not None and word == plain_word:
            out.extend(Token(part, part) for part in expanded.split())
        else:
            out.append(Token(_squeeze(plain_word), _squeeze_marked(word)))
    return out


def tokens(text: str) -> list[str]:
    """The plain form of every token of ``text``."""
    return [token.plain for token in analyse(text)]


def _squeeze_marked(word: str) -> str:
    """Cut back stretched letters like _squeeze, treating "ứ" and "u" as the same letter."""
    out = list(word)
    result: list[str] = []
    index = 0
    while index < len(out):
        plain = strip_diacritics(out[index])
        end = index
        while end < len(out) and strip_diacritics(out[end]) == plain:
            end += 1
        length = end - index
        keep = length if length < 3 else (2 if plain in "uo" else 1)
        result.extend(out[index : index + keep])
        index = end
    return "".join(result)


@dataclass(frozen=True)
class IntentMatch:
    intent: str
    score: float
    phrase: str | None = None


class IntentClassifier:
    """Phrase-table classifier over normalised tokens, tolerant of one-letter typos."""

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        self._index: dict[str, list[tuple[tuple[Token, ...], str]]] = defaultdict(list)
        for intent, items in phrases.items():
            for phrase in items:
                words = tuple(analyse(phrase))
                if words:
                    self._index[words[0].plain].append((words, intent))
        for candidates in self._index.values():
            candidates.sort(key=lambda item: -len(item[0]))
        self._vocabulary = sorted({t.plain for cands in self._index.values() for ws, _ in cands for t in ws})
        self._known = frozenset(self._vocabulary)
        self._corrections: dict[str, str | None] = {}

    def _correct(self, token: Token) -> Token:
        """Replace an unknown word of five letters or more by the one known word one edit away."""
        if token.plain in self._known or len(token.plain) < 5 or token.plain.isdigit():
            return token
        if token.plain not in self._corrections:
            if len(self._corrections) > 50_000:
                self._corrections.clear()
            best = process.extractOne(
                token.plain, self._vocabulary, scorer=Levenshtein.distance, score_cutoff=1
            )
            self._corrections[token.plain] = best[0] if best else None
        corrected = self._corrections[token.plain]
        return Token(corrected, corrected) if corrected else token

    def classify(self, text: str) -> IntentMatch:
        words = [self._correct(token) for token in analyse(text)]
        if not words:
            return IntentMatch("unknown", 0.0)
        best: dict[str, tuple[float, tuple[Token, ...]]] = {}
        for start, word in enumerate(words):
            for phrase, intent in self._index.get(word.plain, ()):
                gaps = _match_at(words, start, phrase)
                if gaps is None:
                    continue
                # A phrase met word for word outranks the same phrase with a word slipped in.
                strength = len(phrase) - 0.5 * gaps
                if strength > best.get(intent, (0.0, ()))[0]:
                    best[intent] = (strength, phrase)
        if not best:
            return IntentMatch("unknown", 0.0)
        chosen = next((intent for intent in SAFETY_ORDER if intent in best), None)
        if chosen is None:
            strong = {k: v for k, v in best.items() if k not in WEAK_INTENTS} or best
            chosen = max(strong, key=lambda k: (strong[k][0], sum(len(t.plain) for t in strong[k][1])))
        strength, phrase = best[chosen]
        return IntentMatch(chosen, round(min(1.0, strength / len(words)), 3), " ".join(t.marked for t in phrase))


MAX_GAP = 1  # words that may stand between two words of a phrase: "không (còn) muốn sống"


def _match_at(words: list[Token], start: int, phrase: tuple[Token, ...]) -> int | None:
    """Match ``phrase`` from ``start``; return the number of words skipped, or None."""
    matched = [words[start]]
    position, gaps = start, 0
    for wanted in phrase[1:]:
        for step in range(1, MAX_GAP + 2):
            candidate = position + step
            if candidate < len(words) and words[candidate].plain == wanted.plain:
                matched.append(words[candidate])
                gaps += step - 1
                position = candidate
                break
        else:
            return None
    return gaps if _same_words(matched, phrase) else None


def _same_words(window: list[Token], phrase: tuple[Token, ...]) -> bool:
    """The words are the same, and where both sides wrote tone marks, most of them agree.

    "từ từ" is not "tự tử", but "xét nghiêm" (one mark wrong) still is "xét nghiệm".
    """
    compared = disagreeing = 0
    for typed, wanted in zip(window, phrase, strict=True):
        if typed.plain != wanted.plain:
            return False
        if typed.has_marks and wanted.has_marks:
            compared += 1
            disagreeing += typed.marks_disagree(wanted)
    return disagreeing * 2 <= compared if compared > 1 else disagreeing == 0


def load_phrases(path: Path = DATA_DIR / "intents.yaml") -> dict[str, list[str]]:
    """Read the trigger-phrase table; raise ContentError listing every problem."""
    problems: list[str] = []
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContentError([f"intents.yaml: cannot read: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ContentError(["intents.yaml: must map intent ids to lists of phrases"])
    phrases: dict[str, list[str]] = {}
    owner: dict[tuple[str, ...], str] = {}
    for intent, items in raw.items():
        if intent not in INTENT_IDS or intent == "unknown":
            problems.append(f"intents.yaml: '{intent}' is not an intent id with phrases")
            continue
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            problems.append(f"intents.yaml: {intent}: must be a list of strings")
            continue
        for item in items:
            key = tuple(token.marked for token in analyse(item))
            if not key:
                problems.append(f"intents.yaml: {intent}: phrase '{item}' is empty once normalised")
            elif owner.get(key, intent) != intent:
                problems.append(f"intents.yaml: '{item}' is under both {owner[key]} and {intent}")
            owner.setdefault(key, intent)
        phrases[str(intent)] = list(items)
    for intent in INTENT_IDS:
        if intent != "unknown" and intent not in phrases:
            problems.append(f"intents.yaml: no phrases for '{intent}'")
    if problems:
        raise ContentError(problems)
    return phrases
