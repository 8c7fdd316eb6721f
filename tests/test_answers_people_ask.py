"""The answers people ask for most (issue #14): law and police, HIV confidentiality, partners,
trans people and men who have sex with men, drugs by their street names, blackmail, costs and
papers, being abroad — and the order of the numbers for someone who wants to die or fears arrest.

Each table row is what a person types and what their first reply must (and must not) say. The
checks of the content pack itself (sources, review dates, numbers) are at the end.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
import yaml

from content.pack import DATA_DIR, ContentError, load_pack, stale_reviews
from handlers.common import Context
from handlers.engine import respond
from handlers.render import Renderer
from handlers.types import Inbound, Msg, TopicPart, TopicText

NEW_TOPICS = (
    "sex_work_law", "hiv_confidentiality", "hiv_partner", "trans_msm", "stimulants", "drug_law",
    "online_blackmail", "costs_papers", "abroad",
)


def first(ctx: Context, renderer: Renderer, text: str) -> tuple[str, set[str], set[str]]:
    """A new person's first reply: its text, message keys and the topics whose summary it shows."""
    outcome = respond(None, Inbound(channel="console", user_id="u", text=text), ctx)
    reply = outcome.replies[0]
    keys = {part.key for part in reply.parts if isinstance(part, Msg)}
    topics = {part.topic for part in reply.parts if isinstance(part, TopicText) and part.part is TopicPart.SUMMARY}
    return renderer.render(outcome)[0].text, keys, topics


def numbers_in_order(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("☎")]


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("bán dâm có bị đi tù không", "sex_work_law"),
        ("nguoi ban dam co bi dua vao trai ko", "sex_work_law"),
        ("is selling sex a crime in vietnam", "sex_work_law"),
        ("kết quả xét nghiệm có báo cho công an không", "hiv_confidentiality"),
        ("xét nghiệm hiv xong công an có biết không", "hiv_confidentiality"),
        ("xét nghiệm dương tính có báo cho gia đình không", "hiv_confidentiality"),
        ("if i test positive will my family be told", "hiv_confidentiality"),
        ("my boyfriend has hiv, can i get it", "hiv_partner"),
        ("người yêu em bị hiv mà đang uống thuốc đều, tụi em có cần bao không", "hiv_partner"),
        ("người chuyển giới uống hormone có được uống prep không", "trans_msm"),
        ("đá với ke có sao không", "stimulants"),
        ("is it dangerous to mix alcohol and ketamine", "stimulants"),
        ("có bị đưa đi cai bắt buộc không", "drug_law"),
        ("khách quay lén clip rồi đòi tiền", "online_blackmail"),
        ("bị tống tiền vì clip nóng", "online_blackmail"),
        ("khám có mất tiền không, có cần căn cước không", "costs_papers"),
    ],
)
def test_each_new_question_reaches_its_topic(ctx: Context, text: str, topic: str) -> None:
    """The questions the content pack lacked reach the topic written for them."""
    assert ctx.understander.understand(text).topic == topic


def test_every_new_topic_names_its_source_and_a_recent_review(ctx: Context) -> None:
    """Each new topic cites where its statements come from and was reviewed this session."""
    for topic_id in NEW_TOPICS:
        topic = ctx.pack.topics[topic_id]
        assert len(topic.source) > 20, topic_id
        assert topic.reviewed >= dt.date(2026, 12, 2), topic_id
    law = ctx.pack.topics["sex_work_law"]
    for document in ("10/2003/PL-UBTVQH11", "100/2015/QH13", "15/2012/QH13", "24/2012/QH13", "11/2017/QH14"):
        assert document in law.source
    assert "64/2006/QH11" in ctx.pack.topics["hiv_confidentiality"].source
    assert "71/2020/QH14" in ctx.pack.topics["hiv_confidentiality"].source


def test_the_law_topic_gives_no_fine_figure(ctx: Context) -> None:
    """Fines could not be confirmed from a primary source: the topic says whom to ask instead."""
    for locale in ("vi", "en"):
        texts = ctx.pack.topics["sex_work_law"].texts(locale)
        body = texts.summary + (texts.more or "")
        assert not re.search(r"\d[\d.,]*\s*(?:đồng|triệu|nghìn|VND|dong)", body), body
    assert "Trợ giúp pháp lý" in ctx.pack.topics["sex_work_law"].vi.summary


def test_someone_who_wants_to_die_is_met_by_the_medical_line_first(ctx: Context, renderer: Renderer) -> None:
    """Support first, then 115: police and fire are never the first number."""
    text, keys, _ = first(ctx, renderer, "em muốn chết")
    assert "safety.crisis" in keys
    shown = numbers_in_order(text)
    assert shown[0] == "115"
    assert shown.index("115") < shown.index("113") and shown.index("115") < shown.index("114")


@pytest.mark.parametrize(
    "text",
    [
        "em sợ bị công an bắt",
        "khách đánh em chảy máu, em không dám báo công an",
        "tụi nó giữ giấy tờ của em, mà em sợ công an lắm",
        "i'm afraid of the police, a client hit me",
        "e bi khach hiep toi qua, e ko dam bao cong an vi e lam nghe nay",
        "khách quay clip dọa tung lên mạng, em không dám báo công an",
        "ho chieu bi chu quan o Kuala Lumpur giu, ra duong so bi bat",
    ],
)
def test_someone_afraid_of_the_police_is_never_told_to_call_them(ctx: Context, renderer: Renderer, text: str) -> None:
    """No '113' at all in the first reply to someone afraid of arrest; other help still comes."""
    shown, keys, _ = first(ctx, renderer, text)
    assert "113" not in shown
    assert not keys & {"safety.emergency", "safety.violence", "safety.trafficking"}


def test_the_afraid_still_get_the_help_that_is_not_police(ctx: Context, renderer: Renderer) -> None:
    """Beaten and afraid of the police: 115 and legal aid; held and afraid: 111."""
    shown, keys, _ = first(ctx, renderer, "khách đánh em chảy máu, em không dám báo công an")
    assert "safety.violence_no_police" in keys and "115" in shown
    shown, keys, _ = first(ctx, renderer, "tụi nó giữ giấy tờ của em, mà em sợ công an lắm")
    assert "safety.trafficking_no_police" in keys and "111" in shown


def test_raped_and_afraid_of_the_police_still_gets_pep_and_emergency_contraception(
    ctx: Context, renderer: Renderer
) -> None:
    """The 72-hour lines stay; the sexual-violence topic is a tap away instead of its text (which names 113)."""
    outcome = respond(None, Inbound(channel="console", user_id="u", text="e bi khach hiep toi qua, e ko dam bao cong an"), ctx)
    keys = {part.key for part in outcome.replies[0].parts if isinstance(part, Msg)}
    assert {"safety.violence_no_police", "safety.pep", "safety.ec"} <= keys
    assert "t:sexual_violence" in [button.payload for button in outcome.replies[0].buttons]


def test_someone_who_asks_for_the_police_gets_113(ctx: Context, renderer: Renderer) -> None:
    """Naming the police is not fearing them: 'gọi công an giúp em' still gets 113."""
    shown, _, _ = first(ctx, renderer, "thằng đó đang đập cửa phòng em, gọi công an giúp em")
    assert "113" in shown


def test_a_partner_with_hiv_after_a_broken_condom(ctx: Context, renderer: Renderer) -> None:
    """The PEP deadline first, then the partner topic (U=U from the negative partner's side)."""
    text, keys, topics = first(ctx, renderer, "bao rách, người yêu em có hiv")
    assert "safety.pep" in keys and topics == {"hiv_partner"}
    assert text.index("72 giờ") < text.index("K=K")


@pytest.mark.parametrize(
    ("text", "topic"),
    [("khách quay lén clip rồi đòi tiền", "online_blackmail"), ("khi ban dang o nuoc ngoai la gi", "abroad")],
)
def test_topics_that_carry_their_own_help_are_shown_at_once(
    ctx: Context, renderer: Renderer, text: str, topic: str
) -> None:
    """Blackmail and being abroad: the topic's own first lines, before any privacy notice."""
    shown, _, topics = first(ctx, renderer, text)
    assert topic in topics
    if topic == "abroad":
        numbers = [line.number for line in ctx.pack.abroad_hotlines()]
        assert shown.count(numbers[0]) == 1, "the consular line once, not twice"


def test_someone_abroad_is_offered_the_abroad_topic(ctx: Context) -> None:
    """A danger abroad: the consular lead, and the topic 'when you are abroad' one tap away."""
    outcome = respond(None, Inbound(channel="console", user_id="u", text="em đang ở Campuchia, bị giữ hộ chiếu"), ctx)
    assert "t:abroad" in [button.payload for button in outcome.replies[0].buttons]


# --- what `antam content check` enforces -------------------------------------------------------


def _copy_pack(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit_topic(data: Path, topic_id: str, **changes: object) -> None:
    path = data / "topics" / f"{topic_id}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")


def test_a_number_that_is_no_verified_hotline_is_refused(tmp_path: Path) -> None:
    """A phone number written into a topic must be a verified hotline with a source."""
    data = _copy_pack(tmp_path)
    _edit_topic(data, "mental_health", vi__summary="Gọi 0912 345 678 để được nghe.")
    with pytest.raises(ContentError) as raised:
        load_pack(data)
    assert any("0912 345 678" in problem and "mental_health" in problem for problem in raised.value.problems)


def test_a_topic_nobody_can_reach_by_typing_is_refused(tmp_path: Path) -> None:
    """At least three names or phrases per topic."""
    data = _copy_pack(tmp_path)
    _edit_topic(data, "herpes", names=["herpes"], phrases=["mụn rộp"])
    with pytest.raises(ContentError) as raised:
        load_pack(data)
    assert any("herpes" in problem and "names or phrases" in problem for problem in raised.value.problems)


def test_a_review_older_than_18_months_is_reported() -> None:
    """The check lists topics reviewed more than 18 months ago; a fresh pack has none."""
    pack = load_pack()
    assert stale_reviews(pack, dt.date(2026, 12, 2)) == []
    # Reviewed on 22 November 2026: still fresh on 22 May 2028, stale the day after.
    assert not any("topics/pep.yaml" in problem for problem in stale_reviews(pack, dt.date(2028, 5, 22)))
    assert any("topics/pep.yaml" in problem for problem in stale_reviews(pack, dt.date(2028, 5, 23)))
    # 31 August 2027 less 18 months is the last day of February 2026, not an error.
    assert stale_reviews(pack, dt.date(2027, 8, 31)) == []
