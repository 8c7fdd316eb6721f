"""Intent recognition measured on labelled sets of messages written the way people type.

intent_eval.tsv is the development set: phrases and the few numeric parameters are tuned
against it. intent_heldout.tsv was written separately and is never read while tuning; only its
scores are looked at, to check that the tuning generalises.
"""

from __future__ import annotations

import pytest

from content.pack import SAFETY_INTENTS
from tests.intent_eval import DATA, evaluate, read_set


def test_development_set_meets_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """Overall ≥ 95 %, every safety intent ≥ 98 % recall, `unknown` precision ≥ 90 %."""
    rows = read_set(DATA / "intent_eval.tsv")
    assert len(rows) >= 400
    score = evaluate(rows)
    with capsys.disabled():
        print("\n" + score.report())
    assert score.accuracy >= 0.95
    for intent in SAFETY_INTENTS:
        assert score.recall(intent) >= 0.98, intent
    assert score.unknown_precision >= 0.90


def test_held_out_set_generalises(capsys: pytest.CaptureFixture[str]) -> None:
    """On messages never used for tuning, recognition does not fall below its measured level.

    Measured on 2026-11-22: accuracy 93.3 %, recall crisis 100 %, violence 100 %,
    trafficking 100 %, pep 93.3 %, emergency 86.7 %, unknown precision 80.6 %.
    That is below the development bar (95 % / 98 % / 90 %): unseen phrasings still slip
    through. These floors catch a regression; raising them means better generalisation, not
    tuning on this file.
    """
    rows = read_set(DATA / "intent_heldout.tsv")
    assert len(rows) >= 200
    score = evaluate(rows)
    with capsys.disabled():
        print("\nheld-out: " + score.report().splitlines()[0])
        for intent in sorted(SAFETY_INTENTS):
            print(f"  {intent:12} recall {score.recall(intent):.1%}")
    # Numbers only in failure messages: the held-out messages must not be seen while tuning.
    assert score.accuracy >= 0.92, f"accuracy {score.accuracy:.1%}"
    for intent in SAFETY_INTENTS:
        recall = score.recall(intent)
        assert recall >= 0.85, f"{intent} recall {recall:.1%}"
    assert score.unknown_precision >= 0.78, f"unknown precision {score.unknown_precision:.1%}"
