"""The content pack, interface catalogs and intent recognition (DESIGN §4 intent ids, §5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from content.i18n import load_catalogs, placeholders
from content.intents import IntentClassifier, load_phrases, strip_diacritics, tokens
from content.pack import DATA_DIR, ContentError, ContentPack, load_pack

STIGMATISING = ("mại dâm", "tệ nạn", "gái gọi", "sa ngã", "hoàn lương")
OBSOLETE = ("1800 1567", "18001567", "1800.1567", "1800-1567")


@pytest.fixture(scope="module")
def pack() -> ContentPack:
    return load_pack()


def _all_texts(pack: ContentPack) -> list[tuple[str, str]]:
    """Every person-facing string of the pack, with where it comes from."""
    found: list[tuple[str, str]] = []
    for topic in pack.topics.values():
        for locale in ("vi", "en"):
            texts = topic.texts(locale)
            for field in ("title", "summary", "more"):
                value = getattr(texts, field)
                if value:
                    found.append((f"{topic.id}.{locale}.{field}", value))
    for line in pack.hotlines:
        found.append((f"hotline {line.id}.number", line.number))
        for locale in ("vi", "en"):
            names = line.texts(locale)
            found.append((f"hotline {line.id}.{locale}.name", names.name))
            found.append((f"hotline {line.id}.{locale}.description", names.description))
    return found


# --- the shipped pack ----------------------------------------------------------------------


def test_pack_has_complete_bilingual_topics(pack: ContentPack) -> None:
    """The shipped pack has at least 30 topics, each in Vietnamese and English, with a source and a review date."""
    assert len(pack.topics) >= 30
    for topic in pack.topics.values():
        assert topic.vi.title and topic.vi.summary, topic.id
        assert topic.en.title and topic.en.summary, topic.id
        assert len(topic.source.strip()) >= 3, topic.id
        assert topic.reviewed is not None, topic.id


def test_related_topics_exist_and_summaries_are_short(pack: ContentPack) -> None:
    """Every related topic exists and every summary is at most 120 words."""
    for topic in pack.topics.values():
        for related in topic.related:
            assert related in pack.topics, f"{topic.id} -> {related}"
        for locale in ("vi", "en"):
            words = len(topic.texts(locale).summary.split())
            assert words <= 120, f"{topic.id}.{locale}: {words} words"


def test_no_obsolete_number_or_stigmatising_words(pack: ContentPack) -> None:
    """No topic or hotline text shows the obsolete 1800 1567 number or stigmatising words."""
    for where, text in _all_texts(pack):
        lowered = text.lower()
        for number in OBSOLETE:
            assert number not in text, f"{where} contains {number}"
        for word in STIGMATISING:
            assert word not in lowered, f"{where} contains '{word}'"
    for path in [*sorted((DATA_DIR / "topics").glob("*.yaml")), DATA_DIR / "hotlines.yaml"]:
        raw = path.read_text(encoding="utf-8")
        for number in OBSOLETE:
            assert number not in raw, f"{path.name} contains {number}"


def test_only_verified_hotlines_are_shown(pack: ContentPack) -> None:
    """Only verified hotlines are shown to people, and 113, 115 and 111 are among them; a line
    for people abroad is kept apart from the local numbers."""
    shown = pack.shown_hotlines()
    assert shown
    assert shown == [line for line in pack.hotlines if line.verified and not line.abroad]
    assert all(line.abroad and line.verified for line in pack.abroad_hotlines())
    numbers = {line.number.replace(" ", "") for line in shown}
    assert {"113", "115", "111"} <= numbers
    for line in shown:
        assert line.national or line.verified_on is not None, line.id


def test_catalogs_match_between_languages() -> None:
    """The vi and en catalogs have the same keys, no empty message and the same placeholders."""
    catalogs = load_catalogs()
    vi, en = catalogs.messages["vi"], catalogs.messages["en"]
    assert vi and set(vi) == set(en)
    for key in vi:
        assert vi[key].strip(), f"vi {key} is empty"
        assert en[key].strip(), f"en {key} is empty"
        assert placeholders(vi[key]) == placeholders(en[key]), key


# --- the pack validator ------------------------------------------------------------------------


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped content data."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit_topic(data: Path, topic_id: str, change: object) -> None:
    path = data / "topics" / f"{topic_id}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(raw)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _problems(data: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        load_pack(data)
    assert caught.value.problems
    return caught.value.problems


def _has(problems: list[str], *parts: str) -> bool:
    return any(all(part in problem for part in parts) for problem in problems)


def test_unchanged_copy_is_valid(data_copy: Path) -> None:
    """The copied data loads cleanly, so every failure below comes from the one change made."""
    assert len(load_pack(data_copy).topics) >= 14


def test_validator_catches_a_missing_related_topic(data_copy: Path) -> None:
    """A related topic that does not exist is reported with the file name."""
    _edit_topic(data_copy, "condoms", lambda raw: raw["related"].append("no_such_topic"))
    problems = _problems(data_copy)
    assert _has(problems, "condoms.yaml", "no_such_topic", "does not exist"), problems


def test_validator_catches_a_long_summary(data_copy: Path) -> None:
    """A 200-word summary is reported with the file name and its word count."""
    _edit_topic(data_copy, "prep", lambda raw: raw["vi"].__setitem__("summary", " ".join(["chữ"] * 200)))
    problems = _problems(data_copy)
    assert _has(problems, "prep.yaml", "summary", "200 words"), problems


@pytest.mark.parametrize(
    "number",
    [
        "1800 1567",
        "18001567",
        "1800.1567",
        "1800-1567",
    ],
)
def test_validator_catches_the_obsolete_number(data_copy: Path, number: str) -> None:
    """The obsolete anti-trafficking number in a topic is reported with the file name, however it is written."""
    _edit_topic(data_copy, "trafficking", lambda raw: raw["vi"].__setitem__("summary", f"Gọi {number} để được giúp."))
    problems = _problems(data_copy)
    assert _has(problems, "trafficking.yaml", "obsolete"), problems


def test_validator_catches_an_id_that_differs_from_the_file_name(data_copy: Path) -> None:
    """A topic whose id differs from its file name is reported."""
    (data_copy / "topics" / "sti.yaml").rename(data_copy / "topics" / "sti_old.yaml")
    problems = _problems(data_copy)
    assert _has(problems, "sti_old.yaml", "'sti'", "differs from the file name"), problems


def test_validator_catches_an_unknown_key(data_copy: Path) -> None:
    """An extra key a topic schema does not know is reported, not silently ignored."""
    _edit_topic(data_copy, "jobs", lambda raw: raw.__setitem__("colour", "red"))
    problems = _problems(data_copy)
    assert _has(problems, "jobs.yaml", "colour"), problems


def test_validator_catches_an_undated_verified_hotline(data_copy: Path) -> None:
    """A non-national hotline marked verified without a verified_on date is reported."""
    path = data_copy / "hotlines.yaml"
    lines = yaml.safe_load(path.read_text(encoding="utf-8"))
    lines.append(
        {
            "id": "women_shelter",
            "number": "0900 000 000",
            "verified": True,
            "national": False,
            "source": "a leaflet",
            "vi": {"name": "Nhà tạm lánh", "hours": "24/7", "description": "Nơi ở tạm an toàn."},
            "en": {"name": "Shelter", "hours": "24/7", "description": "A safe place to stay."},
        }
    )
    path.write_text(yaml.safe_dump(lines, allow_unicode=True, sort_keys=False), encoding="utf-8")
    problems = _problems(data_copy)
    assert _has(problems, "hotlines.yaml", "women_shelter", "verified_on"), problems


def test_unverified_hotline_is_kept_but_not_shown(data_copy: Path) -> None:
    """An unverified hotline may be stored for staff but is never among the numbers shown to people."""
    path = data_copy / "hotlines.yaml"
    lines = yaml.safe_load(path.read_text(encoding="utf-8"))
    lines.append(
        {
            "id": "unchecked_line",
            "number": "0900 111 222",
            "verified": False,
            "source": "heard from a peer",
            "vi": {"name": "Đường dây chưa kiểm tra", "hours": "8:00–17:00", "description": "Chưa xác minh."},
            "en": {"name": "Unchecked line", "hours": "8:00–17:00", "description": "Not verified."},
        }
    )
    path.write_text(yaml.safe_dump(lines, allow_unicode=True, sort_keys=False), encoding="utf-8")
    loaded = load_pack(data_copy)
    assert "unchecked_line" in [line.id for line in loaded.hotlines]
    assert "unchecked_line" not in [line.id for line in loaded.shown_hotlines()]
    assert {"113", "115", "111"} <= {line.number for line in loaded.shown_hotlines()}


def test_validator_reports_every_problem_at_once(data_copy: Path) -> None:
    """Several problems in several files are all reported together."""
    _edit_topic(data_copy, "condoms", lambda raw: raw["related"].append("no_such_topic"))
    _edit_topic(data_copy, "jobs", lambda raw: raw.__setitem__("colour", "red"))
    _edit_topic(data_copy, "loans", lambda raw: raw["en"].__setitem__("summary", "Call 1800 1567."))
    problems = _problems(data_copy)
    assert _has(problems, "condoms.yaml", "no_such_topic"), problems
    assert _has(problems, "jobs.yaml", "colour"), problems
    assert _has(problems, "loans.yaml", "1800 1567"), problems
    assert len(problems) >= 3


# --- the catalog validator --------------------------------------------------------------------


def _write_catalog(root: Path, locale: str, messages: dict[str, str]) -> None:
    catalog = Catalog(locale=locale, domain="antam")
    for key, text in messages.items():
        catalog.add(key, text)
    folder = root / locale / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "antam.po").open("wb") as handle:
        write_po(handle, catalog)


def test_catalog_validator_accepts_matching_catalogs(tmp_path: Path) -> None:
    """Two catalogs with the same keys and placeholders load."""
    _write_catalog(tmp_path, "vi", {"hello": "Chào {name}", "bye": "Tạm biệt"})
    _write_catalog(tmp_path, "en", {"hello": "Hello {name}", "bye": "Bye"})
    catalogs = load_catalogs(tmp_path)
    assert catalogs.text("en", "hello", {"name": "Lan"}) == "Hello Lan"
    assert catalogs.keys() == {"hello", "bye"}


def test_catalog_validator_names_a_missing_key_and_other_placeholders(tmp_path: Path) -> None:
    """A key missing in English and a key with other placeholders are both reported by name."""
    _write_catalog(tmp_path, "vi", {"hello": "Chào {name}", "bye": "Tạm biệt", "count": "{n} mục"})
    _write_catalog(tmp_path, "en", {"hello": "Hello {person}", "count": "{n} items"})
    with pytest.raises(ContentError) as caught:
        load_catalogs(tmp_path)
    problems = caught.value.problems
    assert _has(problems, "en", "'bye'", "missing"), problems
    assert _has(problems, "en", "'hello'", "placeholders"), problems
    assert not _has(problems, "'count'"), problems


# --- intents ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return IntentClassifier(load_phrases())


def test_strip_diacritics() -> None:
    """Tone marks and diacritics go, đ/Đ become d, and case is lowered."""
    assert strip_diacritics("Đường ĐI đâu") == "duong di dau"


def test_tokens_expand_teencode_and_cut_stretched_letters() -> None:
    """Teencode is expanded and stretched letters are cut back."""
    assert tokens("ko dc j") == ["khong", "duoc", "gi"]
    assert tokens("cứuuuu") == tokens("cứu") == ["cuu"]
    assert tokens("Xin chào!!! 😀") == ["xin", "chao"]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("muốn đi xét nghiệm HIV", "hiv_testing"),
        ("mun di xn hiv", "hiv_testing"),
        ("bị khách đánh, giờ chỉ muốn chết", "crisis"),
        ("bị thủng bao tối qua", "pep"),
        ("chào bạn", "greeting"),
        ("chào, cho mình hỏi về prep", "prep"),
        ("giá vàng hôm nay", "unknown"),
    ],
)
def test_classify(classifier: IntentClassifier, text: str, intent: str) -> None:
    """Free Vietnamese text, with or without diacritics and teencode, is recognised as the right intent."""
    match = classifier.classify(text)
    assert match.intent == intent
    if intent == "unknown":
        assert match.score == 0
    else:
        assert 0 < match.score <= 1


@pytest.mark.parametrize("text", ["", "😀😀"])
def test_classify_empty_input(classifier: IntentClassifier, text: str) -> None:
    """Text with no words is unknown with score 0."""
    match = classifier.classify(text)
    assert match.intent == "unknown"
    assert match.score == 0


def test_hotlines_say_when_they_answer(pack: ContentPack) -> None:
    """Every hotline states the hours it answers, in both languages."""
    for line in pack.hotlines:
        assert line.vi.hours and line.en.hours, line.id


def test_required_subjects_are_covered(pack: ContentPack) -> None:
    """The pack covers every subject the plans and the content issue name."""
    required = {
        "hiv_testing", "hiv_self_test", "prep", "pep", "condoms", "hiv_treatment", "hiv_adherence", "syphilis",
        "gonorrhoea", "chlamydia", "hpv_warts", "herpes", "hepatitis_b", "hepatitis_c", "contraception",
        "emergency_contraception", "pregnancy", "safe_abortion", "mental_health", "sleep_stress", "violence",
        "sexual_violence", "trafficking", "detention_rights", "legal_aid", "drugs_harm_reduction", "methadone",
        "jobs", "vocational_training", "loans", "social_assistance", "privacy",
    }
    assert required <= set(pack.topics)


def test_service_codes_are_checked(data_copy: Path) -> None:
    """A service naming a commune that does not exist, or one in another province, is reported."""
    import yaml

    path = data_copy / "services" / "lai_chau.yaml"
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries[0]["commune"] = 99999
    entries[1]["commune"] = 11284  # Nam Thanh Miện is in Hải Phòng, not Lai Châu
    entries[2]["verified"] = True  # no verified_on date
    path.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        load_pack(data_copy)
    problems = "\n".join(caught.value.problems)
    assert "99999 is not a 2025 commune" in problems
    assert "11284 is not in province 12" in problems
    assert "verified but has no verified_on" in problems


def test_the_fast_yaml_parser_reads_every_content_file_as_the_python_one_does() -> None:
    """content/pack.py parses with libyaml when PyYAML has it; the values must be the same."""
    from content.pack import DATA_DIR, parse_yaml

    files = sorted(DATA_DIR.rglob("*.yaml"))
    assert len(files) > 40
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert parse_yaml(text) == yaml.safe_load(text), path.name

