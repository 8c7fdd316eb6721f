"""Recognise what a person means from free Vietnamese text (DESIGN §4 intent ids).

Text is normalised the way people type on phones: case, tone marks and other diacritics
are dropped ("đ" → "d" explicitly, since Unicode does not decompose it), punctuation and
emoji become spaces, common teencode is expanded and stretched letters ("cứuuuu") are
cut back; a one-letter typo in a longer word is corrected against the phrases' vocabulary.

1. Phrases from data/intents.yaml are normalised the same way and matched as words in order,
   with at most one extra word between two of them; where both the person and the phrase
   wrote tone marks, most must agree ("từ từ" is not "tự tử"). Safety intents win over
   everything else (crisis > emergency > violence > trafficking > pep); among the rest the
   longest phrase wins; greetings and "menu" only when nothing more specific is there.
2. Weak cues (the table's `_weak` section, e.g. a lone "cứu" or "help") decide only in a
   message of at most three words in which no phrase of another intent matched.
3. Otherwise word evidence decides: every word and adjacent word pair of the phrase table
   weighs for the intents whose phrases hold it, by how concentrated it is among intents
   (see _WordScorer). Its weights come from the phrase table alone, never from test data.
   The best intent is named only when its evidence passes a threshold and, unless it is a
   safety intent, clearly beats the runner-up; otherwise the message stays "unknown".
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from content.pack import DATA_DIR, INTENT_IDS, ContentError, read_mapping

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
    "qh": "quan he", "kcj": "khong co gi", "cty": "cong ty", "dth": "dien thoai", "bt": "binh thuong",
    "bth": "binh thuong", "nc": "noi chuyen", "ny": "nguoi yeu", "hqua": "hom qua", "kq": "ket qua",
    "cx": "cung", "nx": "nua", "mn": "moi nguoi", "mng": "moi nguoi", "dag": "dang", "tnao": "the nao",
    "hk": "khong", "hog": "khong", "khum": "khong", "wa": "qua", "hnay": "hom nay", "ngta": "nguoi ta",
    "lun": "luon", "iu": "yeu", "thik": "thich", "bhyt": "bao hiem y te", "zay": "vay", "dzay": "vay",
    "wan": "quan", "rui": "roi", "oy": "roi", "bjk": "biet", "bjt": "biet", "pit": "biet", "chx": "chua",
    "cg": "cung", "xl": "xin loi", "cv": "cong viec", "gd": "gia dinh", "fai": "phai",
    "ak": "a", "nt": "nhan tin", "lm": "lam", "mng": "moi nguoi", "hqa": "hom qua",
}
# Shorthand typed with tone marks ("mún", "bít", "hổng"): expanded keeping the marks it implies.
MARKED_TEENCODE: dict[str, str] = {
    "mún": "muốn", "bít": "biết", "hông": "không", "hổng": "không", "hok": "không", "wá": "quá",
    "zậy": "vậy", "dzậy": "vậy", "rùi": "rồi", "ròi": "rồi", "kím": "kiếm", "fải": "phải", "iu": "yêu",
    "đc": "được", "đk": "được", "đt": "điện thoại", "sđt": "số điện thoại", "đag": "đang", "ạk": "ạ",
    "bít": "biết", "pít": "biết", "thík": "thích", "hum": "hôm", "wen": "quen", "qhệ": "quan hệ",
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


def analyse(text: str, *, teencode: bool = True) -> list[Token]:
    """Normalise text into tokens (see the module docstring), keeping the marks as typed.

    ``teencode=False`` for English text, where "a", "e" or "k" are not Vietnamese shorthand.
    """
    lowered = unicodedata.normalize("NFC", text[:MAX_CLASSIFIED_CHARS].lower())
    out: list[Token] = []
    for word in _NON_WORD_MARKED.split(lowered):
        if word:
            out.extend(_analyse_word(word, teencode))
    return out


@functools.lru_cache(maxsize=65536)
def _analyse_word(word: str, teencode: bool) -> tuple[Token, ...]:
    """The tokens of one lower-case NFC word (cached: people use few words, very often)."""
    plain_word = _NON_WORD.sub(" ", strip_diacritics(word)).strip()
    if not plain_word:
        return ()
    if " " in plain_word:  # letters outside Vietnamese, e.g. "hiv2u": keep the pieces plain
        return tuple(Token(_squeeze(piece), _squeeze(piece)) for piece in plain_word.split())
    marked = MARKED_TEENCODE.get(word) if teencode else None
    if marked is not None:
        return tuple(Token(strip_diacritics(part), part) for part in marked.split())
    expanded = TEENCODE.get(plain_word) if teencode else None
    # Teencode is typed without tone marks, though "đ" is often kept ("đc", "đt").
    if expanded is not None and word.replace("đ", "d") == plain_word:
        return tuple(Token(part, part) for part in expanded.split())
    squeezed = _squeeze(plain_word)
    # Only a word with a stretched letter needs the slower marked squeeze.
    return (Token(squeezed, word if squeezed == plain_word else _squeeze_marked(word)),)


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


WEAK_CUE_MAX_WORDS = 3  # a weak cue decides only in a message this short ("cứuuu", "help me")


class PhraseTable(dict[str, list[str]]):
    """Trigger phrases per intent, and weak cues that count only when nothing else matched."""

    def __init__(self, strong: dict[str, list[str]], weak: dict[str, list[str]] | None = None) -> None:
        super().__init__(strong)
        self.weak: dict[str, list[str]] = dict(weak or {})


class IntentClassifier:
    """Phrase-table classifier over normalised tokens, tolerant of one-letter typos."""

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        weak = phrases.weak if isinstance(phrases, PhraseTable) else {}
        self._weak = [(tuple(analyse(cue)), intent) for intent, cues in weak.items() for cue in cues]
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
        self._scorer = _WordScorer((ws, intent) for cands in self._index.values() for ws, intent in cands)

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

    def words(self, text: str, *, teencode: bool = True) -> list[Token]:
        """The message's tokens, with one-letter typos in longer words corrected."""
        return [self._correct(token) for token in analyse(text, teencode=teencode)]

    def classify(self, text: str) -> IntentMatch:
        return self.classify_words(self.words(text))

    def classify_words(self, words: list[Token]) -> IntentMatch:
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
        if (not best or best.keys() <= WEAK_INTENTS) and len(words) <= WEAK_CUE_MAX_WORDS:
            for cue, intent in self._weak:
                if any(_match_at(words, start, cue) is not None for start in range(len(words)) if words[start].plain == cue[0].plain):
                    return IntentMatch(intent, round(len(cue) / len(words), 3), " ".join(t.marked for t in cue))
        if not best or best.keys() <= WEAK_INTENTS:
            # A greeting or "menu" phrase counts as just enough evidence: only clearly stronger
            # word evidence for another intent overrides it.
            guess = self._scorer.guess(words, dict.fromkeys(best, ACCEPT))
            if guess is not None:
                return IntentMatch(guess[0], round(guess[1] / (guess[1] + 1.0), 3))
            if not best:
                return IntentMatch("unknown", 0.0)
        chosen = next((intent for intent in SAFETY_ORDER if intent in best), None)
        if chosen is None:
            strong = {k: v for k, v in best.items() if k not in WEAK_INTENTS} or best
            chosen = max(strong, key=lambda k: (strong[k][0], sum(len(t.plain) for t in strong[k][1])))
        strength, phrase = best[chosen]
        return IntentMatch(chosen, round(min(1.0, strength / len(words)), 3), " ".join(t.marked for t in phrase))


# Second stage: word evidence, used only when no phrase (or only a greeting/menu phrase) matched.
WORD_SMOOTHING = 1.5  # P(intent | word) = n / (N + this): a word seen in few phrases counts less
SPREAD_LIMIT = 24.0  # a word spread as evenly as over this many intents says nothing ("không", "bị")
PAIR_WEIGHT = 1.5  # two adjacent words of a phrase are stronger evidence than either alone
ACCEPT = 0.8  # least evidence to name an intent
# A single word never reaches SAFETY_ACCEPT (its weight is below 1): "chết", "cứu" or "giữ"
# alone do not name a safety intent; a word pair of a phrase or two telling words do.
SAFETY_ACCEPT = 1.0  # least evidence to name a safety intent, which needs no margin over the runner-up
MARGIN = 1.2  # any other intent must have this many times the evidence of the runner-up
SAFETY_MARGIN = 1.0  # a safety intent may have this many times less evidence than the best (1: none)


@functools.lru_cache(maxsize=4096)
def _marks(word: str) -> str:
    """The diacritics of a word, wherever they were placed on it."""
    decomposed = unicodedata.normalize("NFD", word.replace("đ", "d\u0335"))
    return "".join(sorted(ch for ch in decomposed if unicodedata.category(ch) == "Mn"))


def _concentration(per_intent: Counter[str]) -> float:
    """1 for a word found in the phrases of one intent, 0 for one spread over SPREAD_LIMIT or more."""
    total = sum(per_intent.values())
    entropy = -sum(n / total * math.log(n / total) for n in per_intent.values())
    return max(0.0, 1.0 - entropy / math.log(SPREAD_LIMIT))


def _weigh(feature: str, per_intent: Counter[str], single: dict[str, float]) -> list[tuple[str, float]]:
    """The evidence a word or word pair gives each intent whose phrases hold it."""
    if " " in feature:
        first, second = feature.split()
        strength = PAIR_WEIGHT * max(single[first], single[second])
    else:
        strength = single[feature]
    if strength <= 0:
        return []
    scale = strength / (sum(per_intent.values()) + WORD_SMOOTHING)
    return [(intent, n * scale) for intent, n in per_intent.items()]


class _WordScorer:
    """Evidence for each intent from the words and adjacent word pairs of a message.

    Weights come from the phrase table alone. A word (or pair) counts for an intent as
    P(intent | word), estimated from how many phrases of each intent hold it and damped for
    words seen in few phrases, times how concentrated the word is: one found only in the
    phrases of one intent is full evidence for it, one spread as evenly as over SPREAD_LIMIT
    intents or more ("không", "em", "bị") none at all. A pair counts only as much as its more
    concentrated word, so two common words side by side ("em bị") prove nothing.
    """

    def __init__(self, phrases: Iterable[tuple[tuple[Token, ...], str]]) -> None:
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        forms: dict[tuple[str, str], set[str]] = defaultdict(set)
        for words, intent in phrases:
            plain = [word.plain for word in words]
            for feature in {*plain, *(f"{a} {b}" for a, b in zip(plain, plain[1:]))}:
                counts[feature][intent] += 1
            for word in words:
                forms[word.plain, intent].add(word.marked)

        single = {feature: _concentration(c) for feature, c in counts.items() if " " not in feature}
        self._weights = {f: weights for f, c in counts.items() if (weights := _weigh(f, c, single))}
        # Phrases are written with their tone marks: a word typed with other marks is another
        # word ("sáng" is not "sang", "hấu" not "hậu"), wherever the marks sit ("xoá", "xóa").
        self._spellings = {key: frozenset(map(_marks, spellings)) for key, spellings in forms.items()}

    def _agrees(self, typed: tuple[Token, ...], intent: str) -> bool:
        return all(
            not word.has_marks or _marks(word.marked) in self._spellings.get((word.plain, intent), ())
            for word in typed
        )

    def evidence(self, words: list[Token]) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        seen: set[str] = set()
        for index, word in enumerate(words):
            features: list[tuple[str, tuple[Token, ...]]] = [(word.plain, (word,))]
            if index + 1 < len(words):
                following = words[index + 1]
                features.append((f"{word.plain} {following.plain}", (word, following)))
            for feature, typed in features:
                entries = self._weights.get(feature)
                if entries is None or feature in seen:
                    continue
                seen.add(feature)
                for intent, weight in entries:
                    if self._agrees(typed, intent):
                        totals[intent] += weight
        return totals

    def guess(self, words: list[Token], floor: dict[str, float]) -> tuple[str, float] | None:
        """The intent the evidence clearly points to, with its evidence, or None.

        ``floor`` is the least evidence some intents are known to have already.
        """
        totals = self.evidence(words)
        for intent, least in floor.items():
            totals[intent] = max(totals.get(intent, 0.0), least)
        if not totals:
            return None
        ranked = sorted(totals.items(), key=lambda item: -item[1])
        intent, evidence = ranked[0]
        # A safety intent with enough evidence of its own, not far behind the best, wins.
        for safety in SAFETY_ORDER:
            found = totals.get(safety, 0.0)
            if found >= SAFETY_ACCEPT and found * SAFETY_MARGIN >= evidence:
                return safety, found
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        if intent not in SAFETY_ORDER and intent not in floor and evidence >= ACCEPT and evidence >= MARGIN * runner_up:
            return intent, evidence
        return None


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


def load_phrases(path: Path = DATA_DIR / "intents.yaml") -> PhraseTable:
    """Read the trigger-phrase table and its weak cues; raise ContentError listing every problem."""
    problems: list[str] = []
    raw = read_mapping(path, "map intent ids to lists of phrases")
    phrases: dict[str, list[str]] = {}
    owner: dict[tuple[str, ...], str] = {}
    weak_raw = raw.pop("_weak", None) or {}
    weak: dict[str, list[str]] = {}
    if not isinstance(weak_raw, dict):
        problems.append("intents.yaml: _weak must map intent ids to lists of cues")
        weak_raw = {}
    for intent, items in weak_raw.items():
        if intent not in INTENT_IDS or intent == "unknown":
            problems.append(f"intents.yaml: _weak: '{intent}' is not an intent id")
        elif not isinstance(items, list) or not all(isinstance(item, str) and analyse(item) for item in items):
            problems.append(f"intents.yaml: _weak: {intent}: must be a list of non-empty strings")
        else:
            weak[str(intent)] = list(items)
            for item in items:
                owner[tuple(token.marked for token in analyse(item))] = str(intent)
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
    return PhraseTable(phrases, weak)
