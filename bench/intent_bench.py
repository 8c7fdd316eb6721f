"""Benchmark understanding: time per message, on labelled messages.

    .venv/bin/python bench/intent_bench.py [--rounds N] [--classifier-only]

By default it times the whole understanding of a message — danger cues, intent, topic ranking
and language (content/understand.py) — on the realistic development set
(tests/data/intent_realistic_dev.tsv); with --classifier-only, the intent classifier alone on
intent_eval.tsv, as before. Prints the median, p90, p99 and maximum time per message, the time to
build it and the resident memory it adds, with the machine it ran on. Each round handles every
message once, in a shuffled order; the typo-correction cache is cleared between rounds so every
round pays for its corrections.
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


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def messages(name: str) -> list[str]:
    texts = []
    for name in (name,):
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines()[1:]:
            if line.strip() and not line.startswith("#"):
                texts.append(line.split("\t")[0])
    return texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--classifier-only", action="store_true")
    args = parser.parse_args()
    from content.pack import load_pack
    from content.safety import load_safety_net
    from content.understand import build_understander

    pack = load_pack()  # loaded before measuring: the pack is needed by every worker anyway
    rss_before = _rss_mib()
    started = time.perf_counter()
    classifier = IntentClassifier(load_phrases())
    if args.classifier_only:
        handle = classifier.classify
        texts = messages("intent_eval.tsv")
    else:
        understander = build_understander(pack, load_phrases(), load_safety_net(topics=frozenset(pack.topics)))
        classifier = understander.classifier
        handle = understander.understand  # type: ignore[assignment]
        texts = messages("intent_realistic_dev.tsv")
    load_ms = (time.perf_counter() - started) * 1000
    rss_added = _rss_mib() - rss_before
    rng = random.Random(7)
    timings: list[float] = []
    for _ in range(args.rounds):
        order = texts[:]
        rng.shuffle(order)
        classifier._corrections.clear()
        for text in order:
            t0 = time.perf_counter_ns()
            handle(text)
            timings.append((time.perf_counter_ns() - t0) / 1e6)
    timings.sort()
    pick = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]  # noqa: E731
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    what = "classifier" if args.classifier_only else "understanding (cues, intent, topics, language)"
    print(f"{what}: built in {load_ms:.0f} ms, +{rss_added:.1f} MiB resident; {len(texts)} messages × {args.rounds} rounds = {len(timings)} calls")
    print(
        f"per message: median {statistics.median(timings):.3f} ms, p90 {pick(0.90):.3f} ms, "
        f"p99 {pick(0.99):.3f} ms, max {timings[-1]:.3f} ms"
    )


if __name__ == "__main__":
    main()
