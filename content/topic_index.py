"""Rank counselling topics by their own words: the retrieval stage below the intents.

Each topic is a document built from its phrases (how people ask about it), its titles and its
texts in both languages, and the trigger phrases of the intent that opens it. Words and adjacent
word pairs are compared without diacritics (teencode expanded, as everywhere), weighted with
BM25: a word found in few topics ("trễ kinh", "sùi", "methadone") says much, one found in most
("bạn", "có", "không") says nothing. Vietnamese compounds are two syllables, so word pairs
carry most of the meaning ("mang thai", "phá thai", "giang mai"); that is why no separate word
segmenter is needed (a segmenter would find the same compounds, with a model to load).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from content.intents import Token, analyse
from content.pack import ContentPack, Topic

# Field weights: how people ask > what the topic is called > what it says.
PHRASE_WEIGHT = 3.0
TITLE_WEIGHT = 2.0
INTENT_PHRASE_WEIGHT = 0.75
SUMMARY_WEIGHT = 1.0
MORE_WEIGHT = 0.25
PAIR_BOOST = 1.6  # a word pair is stronger evidence than either word alone
K1 = 1.2
B = 0.4  # topics differ much in length; only part of it is normalised away

# Words that carry no topic in Vietnamese or English messages, whatever the texts say.
STOPWORDS = frozenset(
    """
    em anh chi toi minh ban tui tao may no ho ta chung con co khong la va hay hoac thi ma cua cho
    duoc bi nay do kia gi nhu the nao roi se da dang voi o den tu khi neu vi nen cung rat qua lam
    nhung cac mot nguoi oi a ah a nhe nha nhi vay day dau luc ra vao len xuong di ve sao bao
    gio bay hom nay mai dc ko k j thi lai moi van con chua biet muon can hoi xin cam on
    nhieu it hon nhat het luon nua thoi ai cai tren duoi sau truoc gan xa cu ngay thang nam tuan
    toi dem sang chieu trua khuya hoi nao ve gio duoc roi vao ra lai moi nhe ha ho hoac hay hieu
    thay noi nghe biet lam xong ok oke vay z v r thi ma la thi co ca tat moi mot hai ba bon
    tien gia re mac ngon dep xau nho lon to cao thap
    i me my you your we it is are was were be been am do does did have has had a an the to of in on
    at for with and or but if so not no yes can could would should will what where how when who why
    this that there here about from get got just really very please help want need know
    """.split()
)


@dataclass(frozen=True)
class RankedTopic:
    topic: str
    score: float
    # The message shares a word of the topic's phrases or titles (see TopicIndex).
    anchored: bool = True


def features(words: Iterable[Token]) -> list[str]:
    """The words and adjacent word pairs of a text that can carry a topic."""
    plain = [word.plain for word in words]
    out = [word for word in plain if word not in STOPWORDS and len(word) > 1]
    for first, second in zip(plain, plain[1:]):
        if first in STOPWORDS and second in STOPWORDS:
            continue
        out.append(f"{first} {second}")
    return out


# How a speaker names themself inside a name ("người yêu *em* có hiv"), without tone marks.
PRONOUNS = frozenset("em e toi tui minh t chi anh tao to ta".split())

class TopicIndex:
    """BM25 over topic documents (see the module docstring).

    A topic is *anchored* in a message when they share a word or word pair of the topic's
    phrases or titles: words found only in its longer texts suggest a topic, never decide it.
    """

    def __init__(self, pack: ContentPack, intent_phrases: dict[str, list[str]] | None = None) -> None:
        intent_phrases = intent_phrases or {}
        self._docs: dict[str, dict[str, float]] = {}
        self._anchors: dict[str, frozenset[str]] = {}
        for topic in pack.topics.values():
            self._docs[topic.id] = self._document(topic, intent_phrases)
            strong = [*topic.names, *topic.phrases, topic.vi.title, topic.en.title]
            for intent in topic.intents:
                strong.extend(intent_phrases.get(intent, ()))
            self._anchors[topic.id] = frozenset(f for text in strong for f in features(analyse(text)))
        self._names: dict[tuple[str, ...], set[str]] = {}
        for topic in pack.topics.values():
            for name in topic.names:
                key = tuple(word.plain for word in analyse(name))
                if key:
                    self._names.setdefault(key, set()).add(topic.id)
        # The same names with the speaker left out: "người yêu em có hiv" names "người yêu có hiv".
        self._bare_names: dict[tuple[str, ...], set[str]] = {}
        for key, ids in self._names.items():
            bare = tuple(word for word in key if word not in PRONOUNS)
            if len(bare) >= 2:
                self._bare_names.setdefault(bare, set()).update(ids)
        self._longest_name = max((len(key) for key in self._names), default=0)
        self._lengths = {topic: sum(doc.values()) for topic, doc in self._docs.items()}
        self._average = sum(self._lengths.values()) / max(1, len(self._lengths))
        df: Counter[str] = Counter()
        for doc in self._docs.values():
            df.update(doc.keys())
        total = len(self._docs)
        idf = {
            term: math.log(1 + (total - n + 0.5) / (n + 0.5)) * (PAIR_BOOST if " " in term else 1.0)
            for term, n in df.items()
        }
        # Each term's BM25 weight in each topic, computed once: a message only sums them.
        self._postings: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for topic_id, doc in self._docs.items():
            norm = K1 * (1 - B + B * self._lengths[topic_id] / self._average)
            for term, tf in doc.items():
                self._postings[term].append((topic_id, idf[term] * tf * (K1 + 1) / (tf + norm)))

    @staticmethod
    def _document(topic: Topic, intent_phrases: dict[str, list[str]]) -> dict[str, float]:
        doc: dict[str, float] = defaultdict(float)

        def add(text: str | None, weight: float) -> None:
            if not text:
                return
            for feature in set(features(analyse(text))):
                doc[feature] += weight

        for phrase in (*topic.names, *topic.phrases):
            add(phrase, PHRASE_WEIGHT)
        for intent in topic.intents:
            for phrase in intent_phrases.get(intent, ()):
                add(phrase, INTENT_PHRASE_WEIGHT)
        for texts in (topic.vi, topic.en):
            add(texts.title, TITLE_WEIGHT)
            add(texts.summary, SUMMARY_WEIGHT)
            add(texts.more, MORE_WEIGHT)
        return dict(doc)

    def named(self, words: list[Token]) -> frozenset[str]:
        """The topics whose subject the message names ("giang mai" → syphilis)."""
        plain = [word.plain for word in words]
        bare = [word for word in plain if word not in PRONOUNS]
        found: set[str] = set()
        for size in range(1, self._longest_name + 1):
            for start in range(len(plain) - size + 1):
                found.update(self._names.get(tuple(plain[start : start + size]), ()))
            for start in range(len(bare) - size + 1):
                found.update(self._bare_names.get(tuple(bare[start : start + size]), ()))
        return frozenset(found)

    def rank(self, words: list[Token], limit: int = 5) -> list[RankedTopic]:
        """The best topics for a message, best first, with their BM25 scores (0: nothing shared)."""
        query = set(features(words))
        scores: dict[str, float] = defaultdict(float)
        for term in query:
            for topic, weight in self._postings.get(term, ()):
                scores[topic] += weight
        ranked = sorted(scores.items(), key=lambda item: -item[1])[:limit]
        return [RankedTopic(topic, round(score, 3), bool(query & self._anchors[topic])) for topic, score in ranked]
