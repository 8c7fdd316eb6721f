"""Benchmark intent classification: time per message, on the labelled evaluation messages.

    .venv/bin/python bench/intent_bench.py [--rounds N]

Prints the median, p90, p99 and maximum time per message, with the machine it ran on. Each
round classifies every message once, in a shuffled order; the classifier's typo-correction
cache is cleared between rounds so every round pays for its corrections.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from content.intents import IntentClassifier, load_phrases  # noqa: E402


def messages() -> list[str]:
    texts = []
    for name in ("intent_eval.tsv",):
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines()[1:]:
            if line.strip() and not line.startswith("#"):
                texts.append(line.split("\t")[0])
    return texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    started = time.perf_counter()
    classifier = IntentClassifier(load_phrases())
    load_ms = (time.perf_counter() - started) * 1000
    texts = messages()
    rng = random.Random(7)
    timings: list[float] = []
    for _ in range(args.rounds):
        order = texts[:]
        rng.shuffle(order)
        classifier._corrections.clear()
        for text in order:
            t0 = time.perf_counter_ns()
            classifier.classify(text)
            timings.append((time.perf_counter_ns() - t0) / 1e6)
    timings.sort()
    pick = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]  # noqa: E731
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"classifier load: {load_ms:.0f} ms; {len(texts)} messages × {args.rounds} rounds = {len(timings)} calls")
    print(
        f"per message: median {statistics.median(timings):.3f} ms, p90 {pick(0.90):.3f} ms, "
        f"p99 {pick(0.99):.3f} ms, max {timings[-1]:.3f} ms"
    )


if __name__ == "__main__":
    main()
