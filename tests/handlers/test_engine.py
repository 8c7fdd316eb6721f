"""The engine's flows, without network or database: state in, replies and state out."""

from __future__ import annotations

import pytest

from handlers.common import Context, Outcome
from handlers.engine import clean_text, respond
from handlers.render import Renderer
from handlers.state import State, Step
from handlers.types import EraseRecord, Inbound, Location, ReplyKind

NUMBERS = ("113", "115", "111")


def say(ctx: Context, state: State | None, text: str, **extra: object) -> Outcome:
    return respond(state, Inbound("test", "person", text=text, **extra), ctx)  # type: ignore[arg-type]


def press(ctx: Context, state: State | None, payload: str) -> Outcome:
    return respond(state, Inbound("test", "person", payload=payload), ctx)


def payloads(outcome: Outcome) -> list[str]:
    return [button.payload for reply in outcome.replies for button in reply.buttons]


def rendered_text(renderer: Renderer, outcome: Outcome) -> str:
    return "\n".join(reply.text for reply in renderer.render(outcome))


def test_first_contact_shows_notice_and_stores_nothing(ctx: Context, renderer: Renderer) -> None:
    """It greets a new person with the privacy notice and accept / decline / read-more buttons."""
    outcome = say(ctx, None, "/start")
    assert outcome.state is None
    assert payloads(outcome)[:3] == ["c:accept", "c:decline", "c:more"]
    assert "không bao giờ lưu" in rendered_text(renderer, outcome)


def test_accept_stores_state_and_shows_menu(ctx: Context, renderer: Renderer) -> None:
    """Accepting creates the state and opens the main menu with its five sections."""
    outcome = press(ctx, None, "c:accept")
    assert outcome.state == State(step=Step.MENU, locale="vi")
    labels = [b.label for r in renderer.render(outcome) for b in r.buttons]
    for label in (
        "Thông tin tư vấn",
        "Dịch vụ HIV/STI và sức khỏe gần bạn",
        "Việc làm – học nghề – vay vốn",
        "Hỗ trợ khẩn cấp",
        "Quyền riêng tư và xóa dữ liệu",
        "Thoát nhanh",
    ):
        assert label in labels


def test_decline_keeps_nothing_but_information_still_works(ctx: Context, renderer: Renderer) -> None:
    """Declining stores nothing, and topics and hotlines still answer without any state."""
    declined = press(ctx, None, "c:decline")
    assert declined.state is None and not declined.effects
    topic = press(ctx, None, "t:hiv_testing")
    assert topic.state is None
    assert "Xét nghiệm HIV" in rendered_text(renderer, topic)
    emergency = press(ctx, None, "e")
    assert all(number in rendered_text(renderer, emergency) for number in NUMBERS)


def test_withdrawing_consent_goes_through_erasure(ctx: Context) -> None:
    """Pressing decline after having accepted asks to erase the stored record."""
    outcome = press(ctx, State(), "c:decline")
    assert outcome.state is not None and outcome.state.step is Step.CONFIRM_ERASE
    assert "p:erase:yes" in payloads(outcome)


def test_browsing_topics(ctx: Context, renderer: Renderer) -> None:
    """Topic → short answer → related topics, read more, back to the group and the menu."""
    state = State()
    groups = press(ctx, state, "i")
    assert "g:hiv_sti" in payloads(groups)
    group = press(ctx, state, "g:hiv_sti")
    assert "t:pep" in payloads(group)
    topic = press(ctx, state, "t:pep")
    assert topic.state == State(step=Step.TOPIC, topic="pep")
    buttons = payloads(topic)
    assert "tm:pep" in buttons and "g:hiv_sti" in buttons and "m" in buttons and "x" in buttons
    related = ctx.pack.topics["pep"].related
    assert all(f"t:{other}" in buttons for other in related)
    assert topic.replies[0].protect, "health topics are sent protected"
    more = press(ctx, topic.state, "tm:pep")
    assert ctx.pack.topics["pep"].vi.more in rendered_text(renderer, more)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "must_contain"),
    [
        ("em không muốn sống nữa", NUMBERS),
        ("bị khách đánh, giờ chỉ muốn chết", NUMBERS),
        ("cứu với", ("113",)),
        ("bị giữ chứng minh thư không cho về", ("111",)),
        ("bị người yêu đánh", ("113", "115")),
        ("bị thủng bao tối qua", ("72",)),
    ],
)
def test_safety_first_reply_carries_numbers(
    ctx: Context, renderer: Renderer, text: str, must_contain: tuple[str, ...]
) -> None:
    """A safety message is answered at once with hotlines or the 72-hour PEP message, even before consent."""
    outcome = say(ctx, None, text)
    first = renderer.render(outcome)[0]
    assert all(item in first.text for item in must_contain)
    assert first.protect
    assert "c:accept" not in [b.payload for b in first.buttons], "no consent question before help"


def test_obsolete_trafficking_number_is_never_shown(ctx: Context, renderer: Renderer) -> None:
    """1800 1567 is obsolete and never appears in any reply."""
    for payload in ("e", "t:trafficking", "t:violence", "p"):
        assert "1800" not in rendered_text(renderer, press(ctx, State(), payload))


def test_erase_needs_confirmation(ctx: Context) -> None:
    """Typed "xóa dữ liệu" asks first; "có" then erases; "không" cancels."""
    asked = say(ctx, State(), "xóa dữ liệu của tôi")
    assert asked.state is not None and asked.state.step is Step.CONFIRM_ERASE
    assert not asked.effects
    erased = say(ctx, asked.state, "có")
    assert erased.state is None and erased.effects == (EraseRecord(),)
    kept = say(ctx, asked.state, "không")
    assert kept.state is not None and kept.state.step is Step.MENU and not kept.effects


def test_stale_yes_button_never_erases(ctx: Context) -> None:
    """An old "yes, erase" button pressed outside the confirmation step asks again instead."""
    outcome = press(ctx, State(step=Step.MENU), "p:erase:yes")
    assert not outcome.effects
    assert outcome.state is not None and outcome.state.step is Step.CONFIRM_ERASE


def test_moving_on_cancels_a_pending_erasure(ctx: Context) -> None:
    """Typing something else while asked to confirm cancels the erasure and answers the text."""
    outcome = say(ctx, State(step=Step.CONFIRM_ERASE), "xét nghiệm hiv ở đâu")
    assert not any(isinstance(effect, EraseRecord) for effect in outcome.effects)
    assert outcome.state is not None and outcome.state.topic == "hiv_testing"


def test_erase_without_record(ctx: Context, renderer: Renderer) -> None:
    """A person with nothing stored is told so, and nothing happens."""
    outcome = say(ctx, None, "/xoa")
    assert not outcome.effects and outcome.state is None
    assert "không lưu gì" in rendered_text(renderer, outcome)


def test_quick_exit(ctx: Context, renderer: Renderer) -> None:
    """Quick exit (button, command, words) returns one neutral quick-exit reply."""
    for outcome in (press(ctx, State(), "x"), say(ctx, State(), "/thoat"), say(ctx, None, "thoát nhanh")):
        (reply,) = renderer.render(outcome)
        assert reply.kind is ReplyKind.QUICK_EXIT
        assert "An Tâm" not in reply.text and "HIV" not in reply.text


def test_language_switch_is_stored_for_consenting_people(ctx: Context, renderer: Renderer) -> None:
    """Switching to English changes the stored locale and every following reply."""
    switched = press(ctx, State(), "l:en")
    assert switched.state is not None and switched.state.locale == "en"
    labels = [b.label for r in renderer.render(press(ctx, switched.state, "t:prep")) for b in r.buttons]
    assert "Main menu" in labels and "Menu chính" not in labels


def test_language_travels_in_payloads_without_consent(ctx: Context, renderer: Renderer) -> None:
    """Without stored state, English is carried in the buttons' payloads instead."""
    switched = press(ctx, None, "l:en")
    assert switched.state is None
    rendered = renderer.render(switched)
    assert all(b.payload.startswith("en|") for r in rendered for b in r.buttons)
    follow = press(ctx, None, rendered[0].buttons[0].payload)
    assert follow.locale == "en"


def test_platform_language_hint_is_used(ctx: Context, renderer: Renderer) -> None:
    """A person whose app is in English is greeted in English until they choose."""
    outcome = respond(None, Inbound("test", "p", text="/start", locale_hint="en-GB"), ctx)
    assert outcome.locale == "en"
    assert "I agree" in [b.label for r in renderer.render(outcome) for b in r.buttons]


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\t\n", "😀😀😀", "a" * 10_000, "\x00\x01\x1b[31m", "\ud800 lone surrogate", "?!?!", "/unknowncmd"],
)
def test_bad_input_gets_a_helpful_reply(ctx: Context, renderer: Renderer, text: str) -> None:
    """Empty, emoji-only, huge, control-character and broken text all get a Vietnamese reply."""
    for state in (None, State(), State(step=Step.CONFIRM_ERASE)):
        outcome = say(ctx, state, text)
        replies = renderer.render(outcome)
        assert replies and all(reply.text for reply in replies)
        assert not outcome.effects
        if outcome.state is not None:
            assert State.from_bytes(outcome.state.to_bytes()) == outcome.state


@pytest.mark.parametrize("payload", ["zz", "t:no_such_topic", "g:nope", "tm:jobs_x", "l:fr", "p:erase:maybe", "x" * 500])
def test_unknown_or_stale_buttons(ctx: Context, renderer: Renderer, payload: str) -> None:
    """An unknown or outdated button payload falls back to the menu with an explanation."""
    outcome = press(ctx, State(), payload)
    text = rendered_text(renderer, outcome)
    assert "không còn dùng được" in text
    assert "i" in payloads(outcome)


def test_unknown_text(ctx: Context, renderer: Renderer) -> None:
    """Text with no recognisable intent gets an apology and the menu; a new person sees the notice."""
    known = say(ctx, State(), "giá vàng hôm nay")
    assert "chưa hiểu" in rendered_text(renderer, known)
    new = say(ctx, None, "giá vàng hôm nay")
    assert "c:accept" in payloads(new)


def test_intent_without_topic_yet_lists_subjects(ctx: Context, renderer: Renderer) -> None:
    """An intent the pack has no topic for is answered honestly, with the subjects available."""
    from dataclasses import replace

    topics = {k: v for k, v in ctx.pack.topics.items() if v.intent != "drugs"}
    without = replace(ctx, pack=replace(ctx.pack, topics=topics))
    outcome = say(without, State(), "điều trị methadone")
    assert outcome.intent == "drugs"
    assert "chưa có bài viết" in rendered_text(renderer, outcome)


def test_clean_text() -> None:
    """Typed text is made valid, NFC, free of control characters and bounded."""
    assert clean_text("  a\x00b\u200b c\n") == "a b c"
    assert clean_text("\ud800x") == "?x"
    assert clean_text("Xo\u0301a") == "Xóa"
    assert len(clean_text("x" * 20_000)) == 4096


def test_every_button_payload_fits_telegram(ctx: Context, renderer: Renderer) -> None:
    """Every payload the engine produces is at most 64 bytes, even with a locale prefix."""
    for payload in ("m", "i", "s", "e", "p", "c:more", *(f"t:{t}" for t in ctx.pack.topics), *(f"g:{g}" for g in ctx.pack.groups())):
        for state in (None, State()):
            for reply in renderer.render(respond(state, Inbound("t", "u", payload="en|" + payload), ctx)):
                assert all(len(b.payload.encode()) <= 64 for b in reply.buttons)
