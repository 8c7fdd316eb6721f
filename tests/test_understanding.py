"""Understanding people as they write: the safety net, topics, language, small talk, asking back.

The tables here are behaviour the engine must keep (a person's words → what they get first);
the accuracy on whole sets of messages is measured in test_realistic_accuracy.py.
"""

from __future__ import annotations

import pytest

from content.language import detect
from content.safety import load_safety_net
from content.understand import smalltalk_kind
from handlers.common import Context
from handlers.engine import respond
from handlers.render import Renderer
from handlers.state import State
from handlers.types import Inbound, Msg


def first_reply(ctx: Context, renderer: Renderer, text: str, state: State | None = None) -> tuple[str, set[str], str]:
    outcome = respond(state, Inbound(channel="console", user_id="u", text=text), ctx)
    keys = {part.key for part in outcome.replies[0].parts if isinstance(part, Msg)}
    return renderer.render(outcome)[0].text, keys, outcome.locale


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    return load_safety_net()


@pytest.mark.parametrize(
    ("text", "cue", "helps"),
    [
        # A condom that broke, slipped, was taken off or not used, however it is said.
        ("bao bi rach roi lam sao day", "condom_failure", {"pep", "ec"}),
        ("trời ơi chết rồi, bcs bị thủng tối qua", "condom_failure", {"pep", "ec"}),
        ("khach len thao bao ra ma e ko biet", "condom_failure", {"pep", "ec"}),
        ("tuot bao trong luc qh vs khach toi hom kia", "condom_failure", {"pep", "ec"}),
        ("rách áo mưa rồi mấy chị ơi", "condom_failure", {"pep", "ec"}),
        ("e di khach ko xai bao 2 hom truoc", "condom_failure", {"pep", "ec"}),
        ("the condom broke last night", "condom_failure", {"pep", "ec"}),
        ("a client took the condom off halfway", "condom_failure", {"pep", "ec"}),
        ("em dung chung kim voi ban toi qua", "needle_shared", {"pep"}),
        # Violence, rape, being held, abroad.
        ("a client raped me yesterday", "rape", {"police", "pep", "ec"}),
        ("bị hiếp tối qua sợ có bầu với sợ hiv", "rape", {"police", "pep", "ec"}),
        ("ck e danh e chay mau dau", "beaten", {"police"}),
        ("thằng bồ cũ cầm dao đứng ngoài cửa dọa giết em", "threatened", {"police"}),
        ("chủ giữ hết giấy tờ của em không cho về", "held", {"trafficking_line", "police"}),
        ("boss keeps my passport and says i can't leave until i pay back", "held", {"trafficking_line"}),
        ("em bi lua sang trung quoc, muon ve nha", "abroad", {"consular"}),
        ("co dua be 15 tuoi bi nguoi ta hua dua di lam tiep vien", "minor_at_risk", {"trafficking_line"}),
        # Crisis and emergencies.
        ("em muon chet", "suicide", {"crisis"}),
        ("khong muon song nua, chan lam roi", "suicide", {"crisis"}),
        ("i want to kill myself", "suicide", {"crisis"}),
        ("ban em choi da xong bat tinh roi", "overdose", {"ambulance"}),
        ("uong thuoc pha thai xong chay mau nhieu qua", "bleeding", {"ambulance"}),
        ("phong tro em dang chay", "fire", {"fire"}),
        ("số công an là số mấy", "hotline_question", {"hotlines"}),
    ],
)
def test_danger_cues_are_found(net, text: str, cue: str, helps: set[str]) -> None:  # type: ignore[no-untyped-def]
    """Each danger cue is found with and without diacritics, in teencode and in English."""
    found = net.check(text)
    assert cue in found.cues, (text, found)
    assert helps <= set(found.help), (text, found)


@pytest.mark.parametrize(
    "text",
    [
        "trời ơi chết rồi",  # dismay, not a crisis
        "sợ muốn chết luôn á",  # an idiom
        "mệt muốn chết",
        "bao nhiêu tiền một lần xét nghiệm",  # "bao" is not a condom here
        "bao giờ có kết quả",
        "lấy bao cao su ở đâu",
        "khong co bao cao su thi mua o dau",
        "em chơi đá nhiều quá muốn cai",  # "đá" is meth, nobody kicked
        "danh sach dich vu",
        "kết quả bóng đá tối qua",
        "bạn em bảo nên uống PrEP",
        "tư vấn giúp em với",  # "tư vấn" typed plain is "tự vẫn": not a crisis
        "bị giật mình hoài, ngủ không được",
        "em chạy xe ôm buổi tối",  # "chạy" is not "cháy"
        "bảo hiểm y tế có trả tiền thuốc không",
    ],
)
def test_no_danger_cue_in_ordinary_messages(net, text: str) -> None:  # type: ignore[no-untyped-def]
    """Exclamations, idioms and words that look alike without marks raise no alarm."""
    assert not net.check(text), net.check(text)


@pytest.mark.parametrize(
    ("text", "timing"),
    [
        ("bể bao tối qua", "recent"),
        ("2 tiếng trước khách tháo bao", "recent"),
        ("hom kia bi rach bao", "recent"),
        ("tuần trước bị rách bao với khách", "late"),
        ("cách đây 5 ngày bị tuột bao", "late"),
        ("cach day khoang 1 thang e bi be bao", "late"),
        ("mấy thằng khách không chịu dùng bao, tối qua luôn", "recent"),  # "mấy thằng" is no "mấy tháng"
        ("tháng trước chích chung kim, hôm qua mới nghe nó bị hiv", "late"),  # the time nearest the exposure
        ("2 weeks ago the condom broke", "late"),
    ],
)
def test_when_the_exposure_happened(net, text: str, timing: str) -> None:  # type: ignore[no-untyped-def]
    """Within 72 hours or past them, read from the time nearest to the exposure."""
    assert net.check(text).timing == timing, net.check(text)


def test_safety_comes_first_whatever_else_is_asked(ctx: Context, renderer: Renderer) -> None:
    """A job question that mentions a held ID card gets 111 at once; the exclamation does not matter."""
    text, _, _ = first_reply(ctx, renderer, "chị ơi cho em hỏi việc làm, mà chủ quán giữ căn cước của em rồi")
    assert text.splitlines()[0].count("111") == 1
    text, keys, _ = first_reply(ctx, renderer, "trời ơi chết rồi!!! bao bị rách tối qua")
    assert "safety.pep" in keys
    assert "safety.crisis" not in keys


def test_several_needs_get_each_help(ctx: Context, renderer: Renderer) -> None:
    """Rape, fear of pregnancy and of HIV: 113, PEP within 72 hours and emergency contraception."""
    text, keys, _ = first_reply(ctx, renderer, "toi qua bi khach hiep, e so co bau voi so bi hiv")
    assert {"safety.violence", "safety.pep", "safety.ec"} <= keys
    assert "113" in text and "72" in text


def test_an_exposure_past_72_hours_gets_the_late_advice_first(ctx: Context, renderer: Renderer) -> None:
    """Several days later the reply leads with testing, not with "go now"."""
    outcome = respond(None, Inbound(channel="console", user_id="u", text="tuần trước bị bể bao, giờ uống pep còn kịp ko"), ctx)
    first = outcome.replies[0].parts[0]
    assert isinstance(first, Msg) and first.key == "safety.pep_late"
    assert outcome.intent == "hiv_testing"
    assert "t:hiv_testing" in [button.payload for button in outcome.replies[0].buttons]


def test_someone_abroad_gets_the_line_that_works_from_abroad(ctx: Context, renderer: Renderer) -> None:
    """The consular citizen-protection line, with its number; not only 111."""
    text, keys, _ = first_reply(ctx, renderer, "em đang ở Campuchia, bị họ giữ hộ chiếu không cho về")
    assert "safety.abroad" in keys
    numbers = [line.number for line in ctx.pack.abroad_hotlines()]
    assert numbers and numbers[0] in text.split("\n\n")[0], "the line that works from abroad comes first"
    assert ctx.pack.abroad_hotlines()[0].source in text, "with its source"
    # …and the line for abroad never appears among the local numbers.
    local, _, _ = first_reply(ctx, renderer, "số công an là số mấy")
    assert numbers[0] not in local and "113" in local


def test_every_topic_can_be_reached_by_typing(ctx: Context) -> None:
    """Each topic answers at least its own title typed without diacritics."""
    from content.intents import strip_diacritics

    for topic in ctx.pack.topics.values():
        if topic.group == "privacy":
            continue
        found = ctx.understander.understand(strip_diacritics(topic.vi.title) + " la gi")
        assert found.topic == topic.id or topic.id in found.alternatives, (topic.id, found.topic)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("e bi tre kinh 2 tuan roi, thu que thi 2 vach", "pregnancy"),
        ("minh bi noi mun thit o vung kin, nhu sui mao ga", "hpv_warts"),
        ("co cho nao cho uong methadone ko", "methadone"),
        ("em muon pha thai thi lam sao", "safe_abortion"),
        ("viem gan b co lay khong", "hepatitis_b"),
        ("e bi giang mai phai lam sao", "syphilis"),
        ("mat ngu may dem nay", "sleep_stress"),
        ("lam the bhyt o dau", "social_assistance"),
        ("cong an bat e o nha nghi thi sao", "detention_rights"),
        ("quen uong arv 2 ngay roi", "hiv_adherence"),
        ("mua que tu test hiv o dau", "hiv_self_test"),
        ("thuoc tranh thai khan cap mua o dau", "emergency_contraception"),
    ],
)
def test_topics_below_the_intents(ctx: Context, text: str, topic: str) -> None:
    """Finer topics that no intent opens are reached by their own words."""
    assert ctx.understander.understand(text).topic == topic


def test_english_is_answered_in_english_with_a_way_back(ctx: Context, renderer: Renderer) -> None:
    """An English message switches the person's language; one tap goes back to Vietnamese."""
    outcome = respond(State(), Inbound(channel="console", user_id="u", text="where can I get tested for HIV"), ctx)
    assert outcome.locale == "en" and outcome.state is not None and outcome.state.locale == "en"
    rendered = renderer.render(outcome)
    assert "HIV testing" in rendered[0].text
    assert "l:vi" in [button.payload for button in rendered[-1].buttons]
    # Vietnamese stays the default: a Vietnamese message keeps it.
    outcome = respond(State(), Inbound(channel="console", user_id="u", text="xét nghiệm hiv ở đâu"), ctx)
    assert outcome.locale == "vi"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("where can I get tested for HIV", "en"),
        ("my friend took too much and is not waking up, we are in ho chi minh", "en"),
        ("xét nghiệm ở đâu", "vi"),
        ("e mun bit xn o dau", "vi"),
        ("hiv test", None),
        ("ok", None),
    ],
)
def test_language_detection(text: str, language: str | None) -> None:
    """Only clear evidence switches the language."""
    assert detect(text) == language


@pytest.mark.parametrize(
    ("text", "kind"),
    [("cảm ơn bạn nhiều nha", "thanks"), ("ok", "ack"), ("có ai không", "anyone"), ("thank you", "thanks"),
     ("hihi", "laugh"), ("bye", "bye"), ("cảm ơn, mà cho em hỏi xét nghiệm ở đâu", None)],
)
def test_small_talk(text: str, kind: str | None) -> None:
    """Short small talk is recognised as such; a question after a thank-you is not small talk."""
    assert smalltalk_kind(text) == kind


def test_small_talk_gets_a_short_answer_even_after_declining(ctx: Context, renderer: Renderer) -> None:
    """"cảm ơn" never brings the whole welcome text back, also for someone who declined."""
    text, keys, _ = first_reply(ctx, renderer, "cảm ơn nhiều nha", state=None)
    assert keys == {"smalltalk.thanks"}
    assert len(text) < 100


def test_unsure_answers_ask_back(ctx: Context) -> None:
    """A weak best answer offers the likeliest topics instead of guessing; nonsense stays unknown."""
    found = ctx.understander.understand("giá vàng hôm nay")
    assert found.intent == "unknown" and found.topic is None
    from handlers import smalltalk

    outcome = smalltalk.clarify(_turn(ctx), ("pregnancy", "contraception"))
    payloads = [button.payload for button in outcome.replies[0].buttons]
    assert payloads[:2] == ["t:pregnancy", "t:contraception"]


def _turn(ctx: Context):  # type: ignore[no-untyped-def]
    from handlers.common import Turn

    return Turn(state=None, locale="vi", ctx=ctx, intent="clarify")
