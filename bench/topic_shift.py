"""Where the topic misses of a labelled set go, counted without printing a single message.

For a set whose labels were written before some topics existed (the held-out set and issue #14's
nine topics), this shows how many misses are answered by a topic the labels could not name:
    python -m bench.topic_shift tests/data/intent_realistic_heldout.tsv sex_work_law hiv_partner …
Only counts are printed, so the held-out set stays unread.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from bot.bootstrap import load_content
from tests.realistic_eval import _understand, read_rows


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m bench.topic_shift SET.tsv TOPIC [TOPIC …]", file=sys.stderr)
        return 2
    newer = set(argv[1:])
    ctx, _ = load_content()
    counts: Counter[str] = Counter()
    rows = [row for row in read_rows(Path(argv[0])) if row.topic not in ("-", "smalltalk")]
    for row in rows:
        found = _understand(ctx, row.text)
        if found is None or found.topic == row.topic:
            continue
        counts["misses"] += 1
        if found.topic in newer:
            counts["misses answered by a newer topic"] += 1
            counts[f"  labelled {row.topic} → {found.topic}"] += 1
    print(f"topic rows: {len(rows)}")
    for key, value in sorted(counts.items(), key=lambda item: (not item[0].startswith("misses"), item[0])):
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
