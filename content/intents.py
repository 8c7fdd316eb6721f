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


def tokens(text: str) -> list[str]:
    """Normalise text into comparable tokens (see the module docstring)."""
    plain = _NON_WORD.sub(" ", strip_diacritics(text[:MAX_CLASSIFIED_CHARS]))
    out: list[str] = []
    for word in plain.split():
        expanded = TEENCODE.get(word, word)
        out.extend(_squeeze(part) for part in expanded.split())
    return out


@dataclass(frozen=True)
class IntentMatch:
    intent: str
    score: float
    phrase: str | None = None


class IntentClassifier:
    """Phrase-table classifier over normalised tokens."""

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        self._index: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        for intent, items in phrases.items():
            for phrase in items:
                words = tuple(tokens(phrase))
                if words:
                    self._index[words[0]].append((words, intent))
        for candidates in self._index.values():
            candidates.sort(key=lambda item: -len(item[0]))

    def classify(self, text: str) -> IntentMatch:
        words = tokens(text)
        if not words:
            return IntentMatch("unknown", 0.0)
        best: dict[str, tuple[int, tuple[str, ...]]] = {}
        for start, word in enumerate(words):
            for phrase, intent in self._index.get(word, ()):
                if tuple(words[start : start + len(phrase)]) == phrase:
                    length = len(phrase)
                    if length > best.get(intent, (0, ()))[0]:
                        best[intent] = (length, phrase)
        if not best:
            return IntentMatch("unknown", 0.0)
        chosen = next((intent for intent in SAFETY_ORDER if intent in best), None)
        if chosen is None:
            strong = {k: v for k, v in best.items() if k not in WEAK_INTENTS} or best
            chosen = max(strong, key=lambda k: (strong[k][0], sum(map(len, strong[k][1]))))
        length, phrase = best[chosen]
        return IntentMatch(chosen, round(min(1.0, length / len(words)), 3), " ".join(phrase))


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
            key = tuple(tokens(item))
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
