"""Understanding measured on messages written the way people at risk really type them.

Both sets were written apart from the phrase table, from a description of the people and their
situations (tests/realistic_eval.py says how each row is scored). intent_realistic_dev.tsv is
tuned against; intent_realistic_heldout.tsv is never read while tuning — only its scores are
looked at. The scores are printed with the test output.
"""

from __future__ import annotations

import pytest

from handlers.common import Context
from handlers.render import Renderer
from tests.realistic_eval import DATA, evaluate, read_rows


DEVELOPMENT_BARS = {
    # set: (safety help in the first reply, topic accuracy, English answered in English)
    "intent_realistic_dev.tsv": (0.97, 0.85, 0.90),
    "intent_realistic_dev2.tsv": (0.98, 0.80, 0.90),  # 70 % safety messages
    "intent_realistic_dev3.tsv": (0.93, 0.75, 0.90),  # 60 % safety messages, other writers' personas
    "intent_realistic_dev4.tsv": (0.93, 0.78, 0.90),  # 55 % safety, 15 % small talk, regional speech
    "intent_realistic_dev5.tsv": (0.95, 0.75, 0.90),  # 50 % safety, symptoms rather than names
}


@pytest.mark.parametrize("name", sorted(DEVELOPMENT_BARS))
def test_development_sets(
    name: str, ctx: Context, renderer: Renderer, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the sets tuned against, each keeps the bar it reached (see DEVELOPMENT_BARS)."""
    rows = read_rows(DATA / name)
    assert len(rows) >= 300
    score = evaluate(rows, ctx, renderer)
    with capsys.disabled():
        print(f"\n{name}: " + score.report())
    safety, topic, english = DEVELOPMENT_BARS[name]
    assert score.safety_first_reply >= safety
    assert score.topic_accuracy >= topic
    assert score.english >= english


def test_held_out_set(ctx: Context, renderer: Renderer, capsys: pytest.CaptureFixture[str]) -> None:
    """On messages never used for tuning, understanding does not fall below its measured level.

    Measured on 2026-12-02 (see bench/RESULTS.md): safety help in the first reply 91.0 %, topics
    82.6 %, English 96.1 %; after issue #14's nine topics, 92.5 % and 79.8 % (the labels predate
    those topics: 16 of the 99 topic misses are answered by one of them, `bench/topic_shift.py`).
    The floors below sit just under it and catch a regression. They are below the issue's targets
    (99 % / 90 % / 95 %): raising them means better generalisation, never tuning on this file.
    """
    rows = read_rows(DATA / "intent_realistic_heldout.tsv")
    assert len(rows) >= 400
    score = evaluate(rows, ctx, renderer)
    with capsys.disabled():
        # Scores only: the held-out messages must not be seen while tuning.
        print("\nrealistic held-out set: " + score.report())
    assert score.safety_first_reply >= HELD_OUT_FLOORS["safety"], f"{score.safety_first_reply:.1%}"
    assert score.topic_accuracy >= HELD_OUT_FLOORS["topic"], f"{score.topic_accuracy:.1%}"
    assert score.english >= HELD_OUT_FLOORS["english"], f"{score.english:.1%}"


HELD_OUT_FLOORS = {"safety": 0.91, "topic": 0.79, "english": 0.94}
