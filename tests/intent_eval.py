"""Score the intent classifier on a labelled set: accuracy, recall per intent, unknown precision.

Used by tests/test_intent_accuracy.py, and on its own to see the misses:
    python -m tests.intent_eval tests/data/intent_eval.tsv
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from content.intents import IntentClassifier, load_phrases
from content.pack import SAFETY_INTENTS

DATA = Path(__file__).with_name("data")


def read_set(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, _, intent = line.partition("\t")
        if (text, intent) != ("text", "intent"):
            rows.append((text, intent))
    return rows


@dataclass
class Score:
    total: int = 0
    correct: int = 0
    by_intent: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    predicted_unknown: int = 0
    correct_unknown: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    def recall(self, intent: str) -> float:
        return self.hits[intent] / self.by_intent[intent] if self.by_intent[intent] else 1.0

    @property
    def unknown_precision(self) -> float:
        return self.correct_unknown / self.predicted_unknown if self.predicted_unknown else 1.0

    def report(self) -> str:
        lines = [
            f"{self.total} utterances: accuracy {self.accuracy:.1%}, unknown precision {self.unknown_precision:.1%}",
        ]
        for intent in sorted(self.by_intent, key=lambda i: (i not in SAFETY_INTENTS, i)):
            mark = " (safety)" if intent in SAFETY_INTENTS else ""
            lines.append(f"  {intent:20} recall {self.recall(intent):6.1%}  ({self.hits[intent]}/{self.by_intent[intent]}){mark}")
        return "\n".join(lines)


def evaluate(rows: list[tuple[str, str]], classifier: IntentClassifier | None = None) -> Score:
    classifier = classifier or IntentClassifier(load_phrases())
    score = Score()
    for text, expected in rows:
        got = classifier.classify(text).intent
        score.total += 1
        score.by_intent[expected] += 1
        if got == "unknown":
            score.predicted_unknown += 1
            score.correct_unknown += expected == "unknown"
        if got == expected:
            score.correct += 1
            score.hits[expected] += 1
        else:
            score.misses.append((text, expected, got))
    return score


if __name__ == "__main__":
    result = evaluate(read_set(Path(sys.argv[1])))
    print(result.report())
    if "--misses" in sys.argv:
        for text, expected, got in result.misses:
            print(f"{expected:18} ← {got:18} {text}")
