"""Load and validate the content pack: counselling topics and hotlines (DESIGN §5).

Content is data. Every problem in the pack is collected and reported together, so
`antam content check` can list them all at once.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

DATA_DIR = Path(__file__).with_name("data")
LOCALES = ("vi", "en")
GROUPS = ("hiv_sti", "reproductive", "drugs", "wellbeing", "safety", "livelihood", "privacy")
INTENT_IDS = (
    "greeting menu hiv_testing prep pep condoms hiv_treatment sti mental_health crisis violence "
    "trafficking legal_aid drugs reproductive_health jobs vocational_training loans services_nearby "
    "emergency human_counselor privacy delete_data quick_exit unknown"
).split()
SAFETY_INTENTS = frozenset({"crisis", "emergency", "violence", "trafficking", "pep"})
# The old anti-trafficking line, however it is written ("1800 1567", "1800-1567", "18001567"…).
OBSOLETE_NUMBER = re.compile(r"1800[\s.\-–]*1567")
MAX_SUMMARY_WORDS = 120
MAX_MORE_WORDS = 300
# A topic is reachable by typing: at least this many ways to ask for it (names and phrases).
MIN_WAYS_TO_ASK = 3
# A topic's content is looked at again at least this often (issue #14): older is a problem for
# `antam content check`, and a warning when An Tâm starts (a stale review never silences it).
REVIEW_MONTHS = 18
# What a person would read as a phone number: an international number, a Vietnamese landline or
# mobile, a 1800/1900 line, or an emergency short code.
PHONE_NUMBER = re.compile(
    r"(?<![\w/.])(?:\+\d{2}(?:[ .]?\d){7,12}|0\d{2,3}(?:[ .]?\d){6,8}|1[89]00(?:[ .]?\d){4,6}|11[1-5])(?![\w/])"
)

TopicId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicTexts(_Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]
    summary: Annotated[str, StringConstraints(min_length=1)]
    more: str | None = None

    @field_validator("summary")
    @classmethod
    def _short_summary(cls, value: str) -> str:
        if len(value.split()) > MAX_SUMMARY_WORDS:
            raise ValueError(f"summary has {len(value.split())} words, at most {MAX_SUMMARY_WORDS}")
        return value.strip()

    @field_validator("more")
    @classmethod
    def _short_more(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) > MAX_MORE_WORDS:
            raise ValueError(f"'more' has {len(value.split())} words, at most {MAX_MORE_WORDS}")
        return value.strip() if value else None


class Topic(_Strict):
    id: TopicId
    group: Literal["hiv_sti", "reproductive", "drugs", "wellbeing", "safety", "livelihood", "privacy"]
    # Intents that open this topic directly (each intent opens at most one topic).
    intents: list[str] = Field(default_factory=list)
    # The coarse intent a topic that no intent opens answers more finely ("syphilis" under "sti").
    under: str | None = None
    # How people ask about it, in either language: the retrieval stage reads these first.
    phrases: list[str] = Field(default_factory=list)
    # What people call the subject itself ("giang mai", "PrEP", "phá thai"): naming it is strong
    # evidence for this topic, whatever coarse intent the rest of the message suggests.
    names: list[str] = Field(default_factory=list)
    sensitive: bool
    # Its short answer leads with the help a frightened reader needs (a number, the 72-hour
    # deadline): a safety answer shows it at once, under the danger's own first line if any.
    carries_help: bool = False
    source: Annotated[str, StringConstraints(min_length=3)]
    reviewed: dt.date
    related: list[TopicId] = Field(default_factory=list)
    vi: TopicTexts
    en: TopicTexts

    def texts(self, locale: str) -> TopicTexts:
        return self.en if locale == "en" else self.vi

    @property
    def intent(self) -> str | None:
        """The intent id this topic answers: the one that opens it, else the one it is under."""
        return self.intents[0] if self.intents else self.under


class HotlineTexts(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    hours: Annotated[str, StringConstraints(min_length=1, max_length=40)]  # when it answers, e.g. "24/7"
    description: Annotated[str, StringConstraints(min_length=1, max_length=200)]


# The situations a list of numbers is shown for (handlers/safety.py): each line may lead the list
# in some of them, and be left out of it in others.
Situation = Literal["crisis", "medical", "danger", "trafficking", "fire", "arrest"]


class Hotline(_Strict):
    id: TopicId
    number: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 .]{1,17}$")]
    verified: bool
    source: Annotated[str, StringConstraints(min_length=3)]
    verified_on: dt.date | None = None
    national: bool = False
    # A line for people outside Vietnam: shown to someone abroad, never in the list of local numbers.
    abroad: bool = False
    # Shown first where one of these is the situation (115 for someone who wants to die) …
    first_for: list[Situation] = Field(default_factory=list)
    # … and not at all in these (113 for someone afraid of arrest).
    not_for: list[Situation] = Field(default_factory=list)
    vi: HotlineTexts
    en: HotlineTexts

    def texts(self, locale: str) -> HotlineTexts:
        return self.en if locale == "en" else self.vi


SERVICE_TYPES = (
    "health_station", "hiv_testing", "prep", "pep", "arv", "sti", "methadone", "needles", "condoms",
    "counselling", "reproductive", "employment", "vocational", "loans", "legal_aid", "womens_union",
    "social_assistance",
)
# Kinds of place a person is pointed to but given no referral code for: a commune health
# station and the Women's Union are open to everyone and count no redemption.
NOT_REFERRABLE = frozenset({"health_station", "womens_union"})
ServiceType = Literal[
    "health_station", "hiv_testing", "prep", "pep", "arv", "sti", "methadone", "needles", "condoms",
    "counselling", "reproductive", "employment", "vocational", "loans", "legal_aid", "womens_union",
    "social_assistance",
]


class ServiceTexts(_Strict):
    name: Annotated[str, StringConstraints(min_length=3, max_length=120)]
    address: str | None = None
    hours: str | None = None


class Service(_Strict):
    """A place a person can go to. Unverified details are never shown to a person as confirmed."""

    id: TopicId
    types: Annotated[list[ServiceType], Field(min_length=1)]
    province: int
    commune: int | None = None  # 2025 commune code where it is; None for province-wide bodies
    coverage: Literal["commune", "province"]
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9][0-9 .]{2,15}$")] | None = None
    latitude: Annotated[float, Field(ge=8, le=24)] | None = None
    longitude: Annotated[float, Field(ge=102, le=110)] | None = None
    verified: bool
    verified_on: dt.date | None = None
    source: Annotated[str, StringConstraints(min_length=3)]
    # The service agreed not to ask a person's name when a referral code is shown: promised to
    # the person only when the entry is verified (issue #14).
    no_name_asked: bool = False
    staff_note: str | None = None  # shown to staff only
    vi: ServiceTexts
    en: ServiceTexts

    def texts(self, locale: str) -> ServiceTexts:
        return self.en if locale == "en" else self.vi

    def serves(self, commune: int, province: int) -> bool:
        return self.commune == commune if self.coverage == "commune" else self.province == province


class ContentError(Exception):
    """The content pack has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the content pack:\n" + "\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ContentPack:
    topics: dict[str, Topic]
    hotlines: tuple[Hotline, ...]
    services: tuple[Service, ...] = ()

    def services_for(self, commune: int, province: int) -> list[Service]:
        """Services a person in ``commune`` can use: those in the commune, then province-wide ones."""
        found = [s for s in self.services if s.serves(commune, province)]
        return sorted(found, key=lambda s: (s.coverage != "commune", s.id))

    def communes_with_services(self) -> list[int]:
        """Communes that have at least one service of their own, in file order."""
        seen: list[int] = []
        for service in self.services:
            if service.commune is not None and service.coverage == "commune" and service.commune not in seen:
                seen.append(service.commune)
        return seen

    def topic_for_intent(self, intent: str) -> Topic | None:
        for topic in self.topics.values():
            if intent in topic.intents:
                return topic
        return None

    def topics_in(self, group: str) -> list[Topic]:
        return [topic for topic in self.topics.values() if topic.group == group]

    def groups(self) -> list[str]:
        """The groups that have at least one topic, in menu order."""
        present = {topic.group for topic in self.topics.values()}
        return [group for group in GROUPS if group in present]

    def shown_hotlines(self, situation: str | None = None) -> list[Hotline]:
        """Hotlines a person in Vietnam may be shown (verified ones only), for ``situation``: the
        lines that lead in it first, then the others in file order, without those it leaves out."""
        shown = [
            line for line in self.hotlines
            if line.verified and not line.abroad and (situation is None or situation not in line.not_for)
        ]
        return sorted(shown, key=lambda line: situation not in line.first_for) if situation else shown

    def abroad_hotlines(self) -> list[Hotline]:
        """Verified lines that work for someone outside Vietnam."""
        return [line for line in self.hotlines if line.verified and line.abroad]


def _format_error(where: str, exc: ValidationError) -> Iterable[str]:
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(file)"
        yield f"{where}: {location}: {error['msg']}"


# libyaml's parser when PyYAML was built with it (the wheels are): about ten times faster than
# the pure-Python one, and it builds the same plain values (safe: no Python objects).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> object:
    """Parse one YAML document into plain values (dicts, lists, strings, numbers, dates)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader, C or Python


def read_mapping(path: Path, shape: str) -> dict[str, object]:
    """Read a YAML file that must hold a mapping; raise ContentError saying what is wrong.

    ``shape`` says what the mapping holds, for the message ("map intent ids to lists of phrases").
    """
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContentError([f"{path.name}: cannot read: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ContentError([f"{path.name}: must {shape}"])
    return raw


def _read_yaml(path: Path, problems: list[str]) -> object:
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path.name}: cannot read: {exc}".replace("\n", " "))
        return None


def load_pack(data_dir: Path = DATA_DIR) -> ContentPack:
    """Read every content file; raise ContentError listing all problems found."""
    problems: list[str] = []
    topics: dict[str, Topic] = {}
    topic_dir = data_dir / "topics"
    for path in sorted(topic_dir.glob("*.yaml")):
        raw = _read_yaml(path, problems)
        if raw is None:
            continue
        try:
            topic = Topic.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_format_error(f"topics/{path.name}", exc))
            continue
        if topic.id != path.stem:
            problems.append(f"topics/{path.name}: id '{topic.id}' differs from the file name")
        topics[topic.id] = topic
    if not topics:
        problems.append(f"no topics found in {topic_dir}")

    hotlines: list[Hotline] = []
    hotline_path = data_dir / "hotlines.yaml"
    raw_lines = _read_yaml(hotline_path, problems)
    if not isinstance(raw_lines, list):
        problems.append("hotlines.yaml: must be a list of hotlines")
    else:
        for index, raw in enumerate(raw_lines):
            try:
                hotlines.append(Hotline.model_validate(raw))
            except ValidationError as exc:
                problems.extend(_format_error(f"hotlines.yaml[{index}]", exc))

    services: list[Service] = []
    service_paths = sorted((data_dir / "services").glob("*.yaml"))
    for path in service_paths:
        raw_services = _read_yaml(path, problems)
        if not isinstance(raw_services, list):
            problems.append(f"services/{path.name}: must be a list of services")
            continue
        for index, raw in enumerate(raw_services):
            try:
                services.append(Service.model_validate(raw))
            except ValidationError as exc:
                problems.extend(_format_error(f"services/{path.name}[{index}]", exc))
    problems.extend(_check_services(services))

    problems.extend(_cross_check(topics, hotlines))
    for path in [*sorted(topic_dir.glob("*.yaml")), hotline_path, *service_paths]:
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace")
            for found in OBSOLETE_NUMBER.finditer(text):
                problems.append(f"{path.name}: contains the obsolete number {found.group(0)} (replaced by 111)")
    if problems:
        raise ContentError(problems)
    return ContentPack(topics=topics, hotlines=tuple(hotlines), services=tuple(services))


def _check_services(services: list[Service]) -> Iterable[str]:
    from vietnam_provinces import Province, ProvinceCode, Ward, WardCode

    seen: set[str] = set()
    for service in services:
        where = f"services: '{service.id}'"
        if service.id in seen:
            yield f"{where}: duplicate id"
        seen.add(service.id)
        try:
            Province.from_code(ProvinceCode(service.province))
        except ValueError:
            yield f"{where}: province code {service.province} is not a 2025 province"
        if service.commune is not None:
            try:
                commune = Ward.from_code(WardCode(service.commune))
            except ValueError:
                yield f"{where}: commune code {service.commune} is not a 2025 commune"
            else:
                if int(commune.province_code) != service.province:
                    yield f"{where}: commune {service.commune} is not in province {service.province}"
        elif service.coverage == "commune":
            yield f"{where}: coverage 'commune' needs a commune code"
        if service.verified and service.verified_on is None:
            yield f"{where}: verified but has no verified_on date"
        if service.no_name_asked and not service.verified:
            yield f"{where}: no_name_asked is a promise to people: verify the entry first (verified: true)"
        if (service.latitude is None) != (service.longitude is None):
            yield f"{where}: give both latitude and longitude, or neither"


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _numbers_in(topic: Topic) -> list[str]:
    texts = [part for t in (topic.vi, topic.en) for part in (t.title, t.summary, t.more) if part]
    return [found.group(0) for text in texts for found in PHONE_NUMBER.finditer(text)]


def stale_reviews(pack: ContentPack, today: dt.date) -> list[str]:
    """Topics whose last review is more than REVIEW_MONTHS before ``today``."""
    limit = _months_before(today, REVIEW_MONTHS)
    return [
        f"topics/{topic.id}.yaml: reviewed {topic.reviewed.isoformat()}, more than {REVIEW_MONTHS} months ago: "
        "check it against its source and update 'reviewed'"
        for topic in pack.topics.values()
        if topic.reviewed < limit
    ]


def _months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` earlier, or that month's last day (31 August less 18 is 28/29 February)."""
    year, index = divmod(day.year * 12 + day.month - 1 - months, 12)
    return dt.date(year, index + 1, min(day.day, calendar.monthrange(year, index + 1)[1]))


def _cross_check(topics: dict[str, Topic], hotlines: list[Hotline]) -> Iterable[str]:
    verified_numbers = {_digits(line.number) for line in hotlines if line.verified and line.source}
    claimed: dict[str, str] = {}
    named: dict[str, str] = {}
    for topic in topics.values():
        where = f"topics/{topic.id}.yaml"
        for related in topic.related:
            if related == topic.id:
                yield f"{where}: related lists the topic itself"
            elif related not in topics:
                yield f"{where}: related topic '{related}' does not exist"
        if topic.under is not None and topic.under not in INTENT_IDS:
            yield f"{where}: under: unknown intent id '{topic.under}'"
        if topic.under is not None and topic.intents:
            yield f"{where}: a topic opened by an intent is under no other intent"
        for intent in topic.intents:
            if intent not in INTENT_IDS:
                yield f"{where}: unknown intent id '{intent}'"
            elif intent in claimed:
                yield f"{where}: intent '{intent}' already opens topic '{claimed[intent]}'"
            else:
                claimed[intent] = topic.id
        for name in topic.names:
            key = " ".join(name.lower().split())
            if key in named and named[key] != topic.id:
                yield f"{where}: name '{name}' is also a name of topic '{named[key]}'"
            named.setdefault(key, topic.id)
        if (topic.vi.more is None) != (topic.en.more is None):
            yield f"{where}: 'more' must exist in both locales or in neither"
        if len({*topic.names, *topic.phrases}) < MIN_WAYS_TO_ASK:
            yield f"{where}: give at least {MIN_WAYS_TO_ASK} names or phrases, so that people can reach it by typing"
        for number in _numbers_in(topic):
            if _digits(number) not in verified_numbers:
                yield (
                    f"{where}: shows the number '{number}', which is no verified hotline with a source "
                    "(add it to hotlines.yaml, verified and with its source, or take it out)"
                )
    seen: set[str] = set()
    for line in hotlines:
        if line.id in seen:
            yield f"hotlines.yaml: duplicate id '{line.id}'"
        seen.add(line.id)
        if line.verified and not line.national and line.verified_on is None:
            yield f"hotlines.yaml: '{line.id}' is verified but has no verified_on date"
    if not any(line.verified for line in hotlines):
        yield "hotlines.yaml: no verified hotline to show in an emergency"

