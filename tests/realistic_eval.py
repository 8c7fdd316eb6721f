"""Score understanding on messages written the way people at risk really type them.

The sets (tests/data/intent_realistic_*.tsv) were written by someone who never saw the phrase
table, from a description of the people and their situations. Each row names the intent, the
topic (or `-`, or `smalltalk`), the emergency help the first reply must carry and the language
the reply must be in. The first reply is the one the engine gives a new person, rendered as
they would read it:
    python -m tests.realistic_eval tests/data/intent_realistic_dev.tsv [--misses]
`intent_realistic_heldout.tsv` is never read while tuning: look at its scores only.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bot.bootstrap import load_content
from handlers.common import Context, Outcome
from handlers.engine import respond
from handlers.render import Renderer
from handlers.types import Inbound, Msg, TopicPart, TopicText

DATA = Path(__file__).with_name("data")
HELP_LABELS = ("113", "114", "115", "111", "pep72", "pep_late", "ec", "consular")


@dataclass(frozen=True)
class Row:
    text: str
    intent: str
    topic: str  # a topic id, "-" or "smalltalk"
    safety: tuple[str, ...]
    lang: str


def read_rows(path: Path) -> list[Row]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#") or line.startswith("text\t"):
            continue
        fields = line.split("\t")
        if len(fields) != 5:
            raise ValueError(f"{path.name}:{number}: expected 5 tab-separated fields, got {len(fields)}")
        text, intent, topic, safety, lang = (f.strip() for f in fields)
        helps = tuple(h.strip() for h in safety.split(",") if h.strip() and h.strip() != "-")
        rows.append(Row(text, intent, topic, helps, lang))
    return rows


@dataclass
class RealisticScore:
    total: int = 0
    intent_correct: int = 0
    topic_rows: int = 0
    topic_correct: int = 0
    asked: int = 0  # "which do you mean?" instead of an answer, on topic rows
    help_needed: Counter[str] = field(default_factory=Counter)
    help_given: Counter[str] = field(default_factory=Counter)
    safety_rows: int = 0
    safety_complete: int = 0
    # Someone afraid of the police is not told to call 113 (issue #14): their rows need no 113,
    # and a reply that gives it to them anyway is counted here.
    police_to_afraid: int = 0
    predicted_unknown: int = 0
    correct_unknown: int = 0
    english_rows: int = 0
    english_answered: int = 0
    smalltalk_rows: int = 0
    smalltalk_hits: int = 0
    timings_ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @staticmethod
    def _share(part: int, whole: int) -> float:
        return part / whole if whole else 1.0

    @property
    def intent_accuracy(self) -> float:
        return self._share(self.intent_correct, self.total)

    @property
    def topic_accuracy(self) -> float:
        return self._share(self.topic_correct, self.topic_rows)

    @property
    def safety_first_reply(self) -> float:
        return self._share(self.safety_complete, self.safety_rows)

    @property
    def unknown_precision(self) -> float:
        return self._share(self.correct_unknown, self.predicted_unknown)

    @property
    def english(self) -> float:
        return self._share(self.english_answered, self.english_rows)

    def recall(self, label: str) -> float:
        return self._share(self.help_given[label], self.help_needed[label])

    @property
    def median_ms(self) -> float:
        return statistics.median(self.timings_ms) if self.timings_ms else 0.0

    def report(self) -> str:
        lines = [
            f"{self.total} messages: topic accuracy {self.topic_accuracy:.1%} ({self.topic_correct}/{self.topic_rows},"
            f" {self.asked} asked back), intent accuracy {self.intent_accuracy:.1%},"
            f" unknown precision {self.unknown_precision:.1%}",
            f"  safety messages whose first reply carries every help needed: {self.safety_first_reply:.1%}"
            f" ({self.safety_complete}/{self.safety_rows})",
            f"  113 given to someone afraid of the police: {self.police_to_afraid}",
            f"  English answered in English: {self.english:.1%} ({self.english_answered}/{self.english_rows});"
            f" small talk answered as such: {self._share(self.smalltalk_hits, self.smalltalk_rows):.1%}",
            f"  understanding: median {self.median_ms:.2f} ms per message",
        ]
        for label in HELP_LABELS:
            if self.help_needed[label]:
                lines.append(f"  help {label:9} recall {self.recall(label):6.1%} ({self.help_given[label]}/{self.help_needed[label]})")
        return "\n".join(lines)


def _helps_given(outcome: Outcome, rendered: str, consular_numbers: list[str]) -> set[str]:
    """Which helps the first reply carries, read from what the person would see."""
    given = {number for number in ("113", "114", "115", "111") if number in rendered}
    first = outcome.replies[0] if outcome.replies else None
    keys = {part.key for part in first.parts if isinstance(part, Msg)} if first else set()
    summaries = (
        {part.topic for part in first.parts if isinstance(part, TopicText) and part.part is TopicPart.SUMMARY}
        if first
        else set()
    )
    if "safety.pep" in keys or "pep" in summaries:
        given.add("pep72")
    if "safety.pep_late" in keys:
        given.add("pep_late")
    if "safety.ec" in keys or "emergency_contraception" in summaries:
        given.add("ec")
    if consular_numbers and any(number in rendered for number in consular_numbers):
        given.add("consular")
    return given


@dataclass(frozen=True)
class _Understood:
    intent: str
    topic: str | None
    alternatives: tuple[str, ...] = ()
    smalltalk: str | None = None
    afraid_of_police: bool = False


def _understand(ctx: Context, text: str) -> _Understood | None:
    understander = getattr(ctx, "understander", None)
    if understander is None:
        return None
    found = understander.understand(text)
    marks = found.safety.marks if found.safety is not None else ()
    return _Understood(found.intent, found.topic, found.alternatives, found.smalltalk, "police_fear" in marks)


def _legacy(ctx: Context, text: str, outcome: Outcome) -> _Understood:
    """What an engine without topics understood: its intent, and the topic its reply opened."""
    topic = next(
        (part.topic for reply in outcome.replies[:1] for part in reply.parts if isinstance(part, TopicText)),
        None,
    )
    return _Understood(ctx.classifier.classify(text).intent, topic)


def evaluate(rows: list[Row], ctx: Context | None = None, renderer: Renderer | None = None) -> RealisticScore:
    if ctx is None or renderer is None:
        ctx, renderer = load_content()
    abroad = getattr(ctx.pack, "abroad_hotlines", list)
    consular = [line.number for line in abroad()]
    score = RealisticScore()
    for index, row in enumerate(rows):
        started = time.perf_counter()
        understood = _understand(ctx, row.text)
        score.timings_ms.append((time.perf_counter() - started) * 1000)
        outcome = respond(None, Inbound(channel="eval", user_id=f"eval-{index}", text=row.text), ctx)
        if understood is None:  # an engine from before the understanding stage (bench/ compares)
            understood = _legacy(ctx, row.text, outcome)
        rendered = renderer.render(outcome)
        first_text = rendered[0].text if rendered else ""
        score.total += 1
        score.intent_correct += understood.intent == row.intent
        problems = []
        if understood.intent != row.intent:
            problems.append(f"intent {understood.intent}")
        if row.topic not in ("-", "smalltalk"):
            score.topic_rows += 1
            if understood.topic == row.topic:
                score.topic_correct += 1
            else:
                score.asked += bool(understood.alternatives)
                problems.append(f"topic {understood.topic or '-'}{' ask ' + ','.join(understood.alternatives) if understood.alternatives else ''}")
        if row.topic == "smalltalk":
            score.smalltalk_rows += 1
            score.smalltalk_hits += understood.smalltalk is not None
        if understood.intent == "unknown" and understood.topic is None and not understood.alternatives:
            score.predicted_unknown += 1
            score.correct_unknown += row.intent == "unknown"
        if row.safety:
            score.safety_rows += 1
            given = _helps_given(outcome, first_text, consular)
            needed = [label for label in row.safety if not (understood.afraid_of_police and label == "113")]
            if understood.afraid_of_police and "113" in given:
                score.police_to_afraid += 1
                problems.append("113 to someone afraid of the police")
            for label in needed:
                score.help_needed[label] += 1
                score.help_given[label] += label in given
            missing = [label for label in needed if label not in given]
            score.safety_complete += not missing
            if missing:
                problems.append(f"MISSING {','.join(missing)}")
        if row.lang == "en":
            score.english_rows += 1
            if outcome.locale == "en":
                score.english_answered += 1
            else:
                problems.append("answered in vi")
        if problems:
            score.misses.append(f"{row.intent}/{row.topic}/{','.join(row.safety) or '-'} ← {'; '.join(problems)} :: {row.text}")
    return score


if __name__ == "__main__":
    result = evaluate(read_rows(Path(sys.argv[1])))
    print(result.report())
    if "--misses" in sys.argv:
        for miss in result.misses:
            print(miss)
