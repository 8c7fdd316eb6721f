"""The safety net: danger cues found in any message, independent of what else it asks.

A message may ask about a job and say, in passing, that the boss keeps the person's ID card;
it may start with an exclamation of dismay and say that the condom broke. The classifier picks
one answer; this module looks for every danger cue (data/safety_cues.yaml) so that the first
reply carries each help they call for — the number to call, or the 72-hour PEP message — before
anything else. It also reads *when* an exposure happened: "tối qua" is within PEP's 72 hours,
"tuần trước" is past it and gets the after-72-hours advice first.

Pure and synchronous, like the classifier: tokens in, a SafetyCheck out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from content.intents import MAX_CLASSIFIED_CHARS, Token, analyse
from content.pack import DATA_DIR, SAFETY_INTENTS, ContentError, read_mapping

# The help a first reply can carry. Order = the order of the lines in the reply.
HELP_KINDS = (
    "crisis",  # thoughts of suicide or self-harm: 115 and someone close
    "ambulance",  # 115
    "fire",  # 114
    "police",  # 113
    "trafficking_line",  # 111
    "consular",  # the citizen-protection line, for someone abroad
    "pep",  # PEP within 72 hours (or the after-72-hours advice, by the timing)
    "ec",  # emergency contraception
    "hotlines",  # every number, for "which number do I call"
)

_DAY_WORDS = {
    "mot": 1, "hai": 2, "ba": 3, "bon": 4, "nam": 5, "sau": 6, "bay": 7, "tam": 8, "chin": 9,
    "muoi": 10, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
}
_COUNT = r"(\d{1,3}|" + "|".join(_DAY_WORDS) + r")"
# "3 ngày trước", "cách đây 5 hôm", "2 days ago", "4 bữa nay"; hours: "10 tiếng trước".
_DAYS_AGO = re.compile(
    rf"\b{_COUNT} (?:ngay|hom|bua|days?)(?: nay| truoc| roi| qua| ago| since)"
    rf"|cach day (?:hon |khoang |tam |chung |)(?:{_COUNT}) (?:ngay|hom|bua)|about {_COUNT} days ago"
)
_HOURS_AGO = re.compile(rf"\b{_COUNT} (?:tieng|gio|hours?)(?: truoc| roi| ago| nay)")
_WEEKS_AGO = re.compile(
    # "1 thằng qua app" typed without marks reads "1 tháng qua": not a time.
    rf"\b{_COUNT} (?:tuan|thang|weeks?|months?)(?: truoc| roi| qua(?! (?:app|mang|fb|zalo|facebook|tinder|grindr))| ago| nay)"
    rf"|cach day (?:hon |khoang |tam |chung |)(?:{_COUNT}) (?:tuan|thang)"
)
_WEEKDAY = re.compile(r"\b(?:thu (2|3|4|5|6|7|hai|ba|tu|nam|sau|bay)|(chu nhat|cn))\b")
_WEEKDAY_NUMBER = {"2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "hai": 2, "ba": 3, "tu": 4, "nam": 5, "sau": 6, "bay": 7}
_LAST_TIME = re.compile(r"\b(?:lan gan nhat|lan cuoi|gan nhat la|moi nhat|last time|most recent)\b")


def _clauses(words: list[Token]) -> list[int]:
    """The clause number of each word (clauses are separated by BOUNDARY tokens)."""
    numbers, current = [], 0
    for word in words:
        if word is BOUNDARY:
            current += 1
        numbers.append(current)
    return numbers


def _weekdays_apart(text: str) -> tuple[int, int] | None:
    """(word index, days) for "bể bao hôm thứ 2, nay thứ 6": the days between two named weekdays."""
    days = [
        (match.start(), 8 if match.group(2) else _WEEKDAY_NUMBER[match.group(1)], match.end())
        for match in _WEEKDAY.finditer(text)
    ]
    if len(days) < 2:
        return None
    (start, first, end), (_, second, _) = days[0], days[1]
    apart = (second - first) % 7 if second != 8 else (8 - first) % 7 or 7
    if text[end:].startswith(" tuan truoc") or text[end:].startswith(" tuan roi"):
        apart += 7
    return text.count(" ", 0, start), apart


_CUE_PRIORITY = {
    name: rank
    for rank, name in enumerate(
        ("suicide", "overdose", "bleeding", "fire", "abroad", "held", "minor_at_risk", "rape", "beaten",
         "threatened", "confined", "injured", "help_now", "condom_failure", "needle_shared", "hotline_question")
    )
}
_TIMING = frozenset({"recent", "late", "today"})
_EXPOSURE = ("condom", "needle", "shared_injection", "unprotected", "rape")
PEP_WINDOW_DAYS = 3  # 72 hours (WHO 2024 PEP guidelines; the pep topic cites them)
EC_WINDOW_DAYS = 5  # emergency contraception works up to 5 days (WHO family planning handbook 2022)


@dataclass(frozen=True)
class SafetyCheck:
    """What the safety net found: cue names, the help they call for, and when it happened."""

    cues: tuple[str, ...] = ()
    help: tuple[str, ...] = ()
    intent: str | None = None
    topic: str | None = None
    # "recent" (within 72 h), "late" (past it) or None (not said).
    timing: str | None = None
    # Marks: things the message says that shape the answer without being a danger of their own
    # ("police_fear": the person is afraid of the police, so no reply tells them to call 113).
    # Found whether or not a cue fired.
    marks: tuple[str, ...] = ()
    # (cue, topic): topics that answer a cue better when the message names them outright
    # ("người yêu có HIV": the partner topic rather than PEP's), in the cues' order.
    instead: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.cues)

    @property
    def pep_late(self) -> bool:
        return "pep" in self.help and self.timing == "late"


@dataclass(frozen=True)
class _Phrase:
    words: tuple[Token, ...]
    unless_next: frozenset[str]
    unless_prev: frozenset[str]
    # Counts only when typed with tone marks: without them the word is another one.
    marked_only: bool = False


@dataclass(frozen=True)
class _Rule:
    concepts: tuple[str, ...]
    window: int
    with_any: tuple[str, ...]
    and_any: tuple[str, ...]
    max_words: int | None


@dataclass(frozen=True)
class _Cue:
    name: str
    rules: tuple[_Rule, ...]
    help: tuple[str, ...]
    # None: the cue only adds help (emergency contraception) and leaves the intent to the rest.
    intent: str | None
    topic: str | None
    instead: tuple[str, ...] = ()


class SafetyNet:
    """Finds danger cues in a message (see the module docstring)."""

    def __init__(self, raw: dict[str, Any], topics: frozenset[str] | None = None) -> None:
        problems: list[str] = []
        self._index: dict[str, list[tuple[_Phrase, str]]] = defaultdict(list)
        concepts = raw.get("concepts") or {}
        timing = raw.get("timing") or {}
        entries = {
            **concepts,
            **{name: value if isinstance(value, dict) else {"phrases": value} for name, value in timing.items()},
        }
        for name, entry in entries.items():
            phrases = entry.get("phrases") if isinstance(entry, dict) else None
            if not isinstance(phrases, list) or not phrases:
                problems.append(f"safety_cues.yaml: concept '{name}' needs a list of phrases")
                continue
            unless_next = frozenset(str(w) for w in entry.get("unless_next") or ())
            unless_prev = frozenset(str(w) for w in entry.get("unless_prev") or ())
            marked_only = bool(entry.get("marked_only", False))
            for phrase in phrases:
                # As a Vietnamese message reads it (teencode expanded) and as an English one does
                # ("without a condom": "a" is not "anh").
                variants = {tuple(analyse(str(phrase))), tuple(analyse(str(phrase), teencode=False))}
                if not any(variants):
                    problems.append(f"safety_cues.yaml: {name}: '{phrase}' is empty once normalised")
                    continue
                for words in variants:
                    if words:
                        entry = _Phrase(words, unless_next, unless_prev, marked_only)
                        self._index[words[0].plain].append((entry, str(name)))
        self._cues: list[_Cue] = []
        for name, entry in (raw.get("cues") or {}).items():
            try:
                rules = tuple(self._rule(rule, entries) for rule in entry["rules"])
                help_kinds = tuple(entry["help"])
                intent = str(entry["intent"]) if entry["intent"] is not None else None
                topic = entry.get("topic")
                instead = tuple(str(t) for t in entry.get("instead") or ())
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"safety_cues.yaml: cue '{name}': {exc}")
                continue
            unknown = [kind for kind in help_kinds if kind not in HELP_KINDS]
            if unknown:
                problems.append(f"safety_cues.yaml: cue '{name}': unknown help {unknown}")
            if intent is not None and intent not in SAFETY_INTENTS:
                problems.append(f"safety_cues.yaml: cue '{name}': '{intent}' is not a safety intent")
            for named in (topic, *instead):
                if named is not None and topics is not None and named not in topics:
                    problems.append(f"safety_cues.yaml: cue '{name}': topic '{named}' does not exist")
            self._cues.append(_Cue(str(name), rules, help_kinds, intent, topic, instead))
        self._marks: list[tuple[str, tuple[_Rule, ...]]] = []
        for name, entry in (raw.get("marks") or {}).items():
            try:
                self._marks.append((str(name), tuple(self._rule(rule, entries) for rule in entry["rules"])))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"safety_cues.yaml: mark '{name}': {exc}")
        if problems:
            raise ContentError(problems)

    @staticmethod
    def _rule(raw: dict[str, Any], concepts: dict[str, Any]) -> _Rule:
        names = tuple(raw["near"]) if "near" in raw else (raw["concept"],)
        extra_with = tuple(raw.get("with_any") or ())
        extra_and = tuple(raw.get("and_any") or ())
        for name in (*names, *extra_with, *extra_and):
            if name not in concepts:
                raise ValueError(f"unknown concept '{name}'")
        return _Rule(names, int(raw.get("window", 0)), extra_with, extra_and, raw.get("max_words"))

    def _spans(self, words: list[Token]) -> dict[str, list[tuple[int, int]]]:
        """Where each concept is met: (first word, last word) of every match."""
        found: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for start, word in enumerate(words):
            for phrase, concept in self._index.get(word.plain, ()):
                matched = _match(words, start, phrase.words)
                if matched is None:
                    continue
                if phrase.marked_only and not all(words[i].has_marks for i in matched):
                    continue
                end = matched[-1]
                # The word before guards any phrase ("sợ muốn chết" is an idiom); the word after
                # guards one word ("bao" before "nhiêu") and the times of day ("mấy tháng" before
                # "khách" is "mấy thằng khách").
                preceding = words[start - 1].plain if start > 0 else ""
                if preceding in phrase.unless_prev:
                    continue
                if len(phrase.words) == 1 or concept in _TIMING:
                    following = words[end + 1].plain if end + 1 < len(words) else ""
                    if following in phrase.unless_next:
                        continue
                found[concept].append((start, end))
        return found

    def check(self, text: str, *, teencode: bool = True) -> SafetyCheck:
        """Every cue in the message, the help they call for (in reply order) and the timing."""
        words = clause_tokens(text, teencode=teencode)
        spans = self._spans(words)
        length = sum(word is not BOUNDARY for word in words)
        fired = [cue for cue in self._cues if any(_holds(rule, spans, length) for rule in cue.rules)]
        marks = tuple(name for name, rules in self._marks if any(_holds(rule, spans, length) for rule in rules))
        if not fired:
            return SafetyCheck(marks=marks)
        timing, days = _timing(words, spans)
        helps: set[str] = set()
        for cue in fired:
            helps.update(cue.help)
        if "abroad" in spans:
            helps.add("consular")  # any danger far from home: the line that works from abroad
        if "ec" in helps and days is not None and days > EC_WINDOW_DAYS:
            helps.discard("ec")
        # The situation that explains the others names the intent and the topic: someone held
        # abroad and beaten is being trafficked; the numbers of every cue are given anyway.
        lead = min(fired, key=lambda cue: (cue.intent is None, _CUE_PRIORITY.get(cue.name, len(_CUE_PRIORITY))))
        intent = lead.intent
        topic = lead.topic or next((cue.topic for cue in fired if cue.topic), None)
        return SafetyCheck(
            cues=tuple(cue.name for cue in fired),
            help=tuple(kind for kind in HELP_KINDS if kind in helps),
            intent=intent,
            topic=topic,
            timing=timing,
            marks=marks,
            instead=tuple((cue.name, t) for cue in fired for t in cue.instead),
        )


BOUNDARY = Token("|", "|")  # between two sentences or clauses: "bể bao. Giờ…" is not "bao giờ"
_CLAUSE = re.compile(r"[.!?;:\n…]+|,(?=\s)")
MAX_GAP = 1


def clause_tokens(text: str, *, teencode: bool = True) -> list[Token]:
    """The message's tokens, with a boundary token between its sentences and clauses."""
    out: list[Token] = []
    for clause in _CLAUSE.split(text[:MAX_CLASSIFIED_CHARS]):
        words = analyse(clause, teencode=teencode)
        if words:
            if out:
                out.append(BOUNDARY)
            out.extend(words)
    return out


def _match(words: list[Token], start: int, phrase: tuple[Token, ...]) -> list[int] | None:
    """Indices of the words matching ``phrase`` from ``start`` (one word may stand between two
    of its words), each typed with the phrase's tone marks or with none; else None."""
    if words[start].marks_disagree(phrase[0]):
        return None
    matched = [start]
    # A word may slip into a phrase of three words or more, never into a pair ("bạn vì trong"
    # is not "bắn trong").
    allowed = MAX_GAP if len(phrase) > 2 else 0
    for wanted in phrase[1:]:
        for step in range(1, allowed + 2):
            candidate = matched[-1] + step
            if candidate < len(words) and words[candidate].plain == wanted.plain:
                if words[candidate].marks_disagree(wanted):
                    return None
                matched.append(candidate)
                break
            if candidate < len(words) and words[candidate] is BOUNDARY:
                return None
        else:
            return None
    return matched


def _holds(rule: _Rule, spans: dict[str, list[tuple[int, int]]], length: int) -> bool:
    if rule.max_words is not None and length > rule.max_words:
        return False
    if any(name not in spans for name in rule.concepts):
        return False
    if rule.with_any and not any(name in spans for name in rule.with_any):
        return False
    if rule.and_any and not any(name in spans for name in rule.and_any):
        return False
    if len(rule.concepts) == 1:
        return True
    first, second = rule.concepts[0], rule.concepts[1]
    for a_start, a_end in spans[first]:
        for b_start, b_end in spans[second]:
            if (a_start, a_end) == (b_start, b_end):
                continue  # one phrase does not stand for two concepts
            distance = max(0, b_start - a_end, a_start - b_end)
            if distance <= rule.window:
                return True
    return False


def _window(days: int) -> str:
    """ "recent" (PEP can still start) or "late" (past its 72 hours)."""
    return "late" if days > PEP_WINDOW_DAYS else "recent"


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _DAY_WORDS[word]


def _timing(words: list[Token], spans: dict[str, list[tuple[int, int]]]) -> tuple[str | None, int | None]:
    """("recent" | "late" | None, days ago when said) of the exposure the message describes.

    When a message names several times ("tháng trước … hôm qua nghe nó nói"), the one nearest
    to the exposure (the condom, the needle, the assault) counts.
    """
    text = " ".join(word.plain for word in words)
    # The first mention of the exposure: later ones are often about something else ("kim mới").
    first = min((start for name in _EXPOSURE for start, _ in spans.get(name, ())), default=None)
    found: list[tuple[int, str, int | None]] = []  # (word index, recent|late, days)
    for regex, unit in ((_DAYS_AGO, 1), (_HOURS_AGO, 0), (_WEEKS_AGO, 7)):
        for match in regex.finditer(text):
            value = _count(next(group for group in match.groups() if group))
            days = value // 24 if unit == 0 else value * unit
            if unit == 1 and text[: match.start()].endswith(("hon ", "qua ")):
                days += 1  # "hơn 3 ngày", "quá 3 ngày": more than 72 hours
            index = text.count(" ", 0, match.start())
            found.append((index, _window(days), days))
    for kind in ("recent", "late"):
        for start, _ in spans.get(kind, ()):
            found.append((start, kind, None))
    between = _weekdays_apart(text)
    if between is not None:
        found.append((between[0], _window(between[1]), between[1]))
    if not found:
        # "hôm nay" alone: most often the day of writing, and then the exposure was today too.
        return ("recent", None) if "today" in spans else (None, None)
    if "recent" in spans and any(kind == "late" for _, kind, _ in found) and _LAST_TIME.search(text):
        return "recent", None  # "… mấy tháng nay, lần gần nhất là tối qua": the last time counts
    if first is not None:
        # A time in the exposure's own sentence first ("cách đây hơn 1 tuần … không dùng bcs.
        # Hôm qua thử que…"), then the nearest.
        clause = _clauses(words)
        found.sort(key=lambda item: (clause[min(item[0], len(clause) - 1)] != clause[first], abs(item[0] - first)))
    else:
        found.sort(key=lambda item: item[0])
    return found[0][1], found[0][2]


def load_safety_net(path: Path = DATA_DIR / "safety_cues.yaml", topics: frozenset[str] | None = None) -> SafetyNet:
    """Read the danger cues; raise ContentError listing every problem."""
    return SafetyNet(read_mapping(path, "hold 'concepts', 'cues' and 'timing'"), topics)
