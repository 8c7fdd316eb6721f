"""The `antam` command line (docs/architecture.md, "Contracts"). Every command says what it did; errors exit non-zero.

`antam intent` and `antam content check` need only the content pack: they run here, without
importing the server. Every other command is in bot/operations.py, imported when it runs.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from bot.arguments import parser
from bot.exit_codes import EXIT_FAILURE, EXIT_OK
from content.i18n import load_catalogs
from content.intents import load_phrases
from content.pack import ContentError, ContentPack, load_pack, stale_reviews
from content.safety import load_safety_net
from content.understand import build_understander


def _intent(text: str | None, out: TextIO) -> int:
    pack = load_pack()
    understander = build_understander(pack, load_phrases(), load_safety_net(topics=frozenset(pack.topics)))

    def show(line: str) -> None:
        found = understander.understand(line)
        shown: dict[str, object] = {"text": line, "intent": found.intent, "score": found.score, "topic": found.topic}
        shown["safety"] = {
            "cues": list(found.safety.cues),
            "help": list(found.safety.help),
            "timing": found.safety.timing,
            "marks": list(found.safety.marks),
        }
        shown["language"] = found.language
        if found.alternatives:
            shown["ask"] = list(found.alternatives)
        if found.smalltalk:
            shown["smalltalk"] = found.smalltalk
        out.write(json.dumps(shown, ensure_ascii=False) + "\n")

    if text is not None:
        show(text)
    else:
        for line in sys.stdin:
            show(line.rstrip("\r\n"))
    out.flush()
    return EXIT_OK


def _topic_ids() -> frozenset[str] | None:
    """The content pack's topic ids, or None when the pack itself has problems (listed apart)."""
    try:
        return frozenset(load_pack().topics)
    except ContentError:
        return None


def _content_check(out: TextIO) -> int:
    problems: list[str] = []
    counts = {}
    loaders: tuple[tuple[str, Callable[[], object]], ...] = (
        ("pack", load_pack),
        ("intents", load_phrases),
        ("catalogs", load_catalogs),
        ("safety cues", lambda: load_safety_net(topics=_topic_ids())),
    )
    for name, loader in loaders:
        try:
            loaded = loader()
        except ContentError as exc:
            problems.extend(exc.problems)
            continue
        counts[name] = loaded
    if "pack" in counts:
        loaded_pack = counts["pack"]
        assert isinstance(loaded_pack, ContentPack)
        problems.extend(stale_reviews(loaded_pack, dt.date.today()))
    if problems:
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(f"antam content check: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_FAILURE
    pack = load_pack()
    print(
        f"Content pack OK: {len(pack.topics)} topics, {len(pack.hotlines)} hotlines "
        f"({sum(line.verified for line in pack.hotlines)} verified), {len(pack.services)} services "
        f"({sum(s.verified for s in pack.services)} verified), {len(load_phrases())} intents with phrases, "
        f"{len(load_catalogs().keys())} interface messages in vi and en.",
        file=out,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = sys.stdout
    if args.command in ("intent", "content"):
        try:
            return _intent(args.text, out) if args.command == "intent" else _content_check(out)
        except ContentError as exc:
            print(f"antam: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        except KeyboardInterrupt:
            return 130
    from bot import operations  # the server's imports, only for the commands that need it

    return operations.run(args, out)
