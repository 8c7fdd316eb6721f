"""The referral conversation, without network or database: state in, replies and effects out."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from handlers.common import Context, Outcome
from handlers.engine import respond
from handlers.referral import MAX_CODES_PER_MONTH, MAX_OPEN_CODES
from handlers.render import Renderer
from handlers.state import HeldCode, State
from handlers.types import CancelReferral, Engaged, Inbound, IssueReferral, TurnFacts

BINH_LU = 3390
DAY = dt.date(2026, 3, 2)


def press(ctx: Context, state: State | None, payload: str, code: str = "7KQ2M9XA") -> Outcome:
    return respond(state, Inbound("test", "person", payload=payload), ctx, TurnFacts(DAY, code))


def payloads(outcome: Outcome) -> list[str]:
    return [button.payload for reply in outcome.replies for button in reply.buttons]


def text(renderer: Renderer, outcome: Outcome) -> str:
    return "\n".join(reply.text for reply in renderer.render(outcome))


def held(code: str, day: dt.date = DAY) -> HeldCode:
    return HeldCode(code, "tyt_binh_lu", "hiv_testing", day + dt.timedelta(days=29))


def test_a_code_needs_the_notice_accepted(ctx: Context, renderer: Renderer) -> None:
    """Someone who has not accepted is told why a code needs it, and offered to accept."""
    outcome = press(ctx, None, "r")
    assert outcome.state is None and not outcome.effects
    assert "c:accept" in payloads(outcome)
    assert "đồng ý" in text(renderer, outcome)


def test_a_code_needs_a_commune(ctx: Context, renderer: Renderer) -> None:
    """Without a commune chosen, the person is asked for one first."""
    outcome = press(ctx, State(), "r")
    assert not outcome.effects
    assert "chọn xã" in text(renderer, outcome)


def test_kinds_offered_are_those_of_the_commune(ctx: Context) -> None:
    """Only kinds of help that a place serving the commune offers are listed, never a kind of place."""
    outcome = press(ctx, State(commune=BINH_LU), "r")
    offered = [p.removeprefix("rt:") for p in payloads(outcome) if p.startswith("rt:")]
    assert "hiv_testing" in offered and "prep" in offered
    assert "health_station" not in offered and "womens_union" not in offered


def test_issuing_a_code(ctx: Context, renderer: Renderer) -> None:
    """Choosing a place issues the code: shown as XXXX-XXXX with the place and how to use it, protected."""
    outcome = press(ctx, State(commune=BINH_LU), "ri:tyt_binh_lu:1")
    assert outcome.state is not None
    assert outcome.state.codes == (HeldCode("7KQ2M9XA", "tyt_binh_lu", "hiv_testing", DAY + dt.timedelta(days=29)),)
    assert outcome.state.issued == ("2026-03", 1)
    assert IssueReferral("7KQ2M9XA", "tyt_binh_lu", "hiv_testing", BINH_LU, DAY + dt.timedelta(days=29)) in outcome.effects
    assert Engaged("referral") in outcome.effects
    shown = text(renderer, outcome)
    assert "7KQ2-M9XA" in shown and "Trạm Y tế xã Bình Lư" in shown
    assert "31 tháng 3, 2026" in shown
    # No service agreed (in a verified entry) not to ask names: nothing promises it.
    assert "không hỏi tên" not in shown
    assert all(reply.protect for reply in outcome.replies)


def test_only_a_verified_service_that_agreed_is_said_not_to_ask_names(ctx: Context, renderer: Renderer) -> None:
    """'They will not ask your name' is said only for a verified entry whose service agreed to it."""
    services = tuple(
        s.model_copy(update={"verified": True, "verified_on": DAY, "no_name_asked": True}) if s.id == "tyt_binh_lu" else s
        for s in ctx.pack.services
    )
    agreed = replace(ctx, pack=replace(ctx.pack, services=services))
    assert "không hỏi tên" in text(renderer, press(agreed, State(commune=BINH_LU), "ri:tyt_binh_lu:1"))
    unverified = tuple(
        s.model_copy(update={"no_name_asked": True}) if s.id == "tyt_binh_lu" else s for s in ctx.pack.services
    )
    claimed = replace(ctx, pack=replace(ctx.pack, services=unverified))
    assert "không hỏi tên" not in text(renderer, press(claimed, State(commune=BINH_LU), "ri:tyt_binh_lu:1"))


def test_a_pep_code_says_go_today_not_valid_for_a_month(ctx: Context, renderer: Renderer) -> None:
    """A PEP referral leads with 'go today' and the emergency department when the place is closed."""
    outcome = press(ctx, State(commune=BINH_LU), "rt:pep")
    issued = [effect for effect in outcome.effects if isinstance(effect, IssueReferral)]
    assert issued and issued[0].service_type == "pep"
    shown = text(renderer, outcome)
    assert shown.startswith("Hãy đi ngay hôm nay") and "72 giờ" in shown and "cấp cứu" in shown.split("\n")[0]
    assert "Dùng được đến" not in shown


def test_one_place_issues_at_once(ctx: Context) -> None:
    """When one place offers the kind, choosing the kind issues the code straight away."""
    outcome = press(ctx, State(commune=BINH_LU), "rt:methadone")
    assert any(isinstance(effect, IssueReferral) for effect in outcome.effects)


def test_several_places_are_offered(ctx: Context) -> None:
    """When several places offer the kind, the person chooses among them."""
    outcome = press(ctx, State(commune=BINH_LU), "rt:hiv_testing")
    assert not outcome.effects
    assert "ri:tyt_binh_lu:1" in payloads(outcome)


def test_no_code_without_the_runtime(ctx: Context, renderer: Renderer) -> None:
    """Without a day and a fresh code from the runtime, no code is made up."""
    outcome = respond(State(commune=BINH_LU), Inbound("test", "p", payload="ri:tyt_binh_lu:1"), ctx)
    assert not outcome.effects
    assert "chưa cấp được mã" in text(renderer, outcome)


def test_a_place_outside_the_commune_is_refused(ctx: Context) -> None:
    """An old or forged button for a place that does not serve the commune issues nothing."""
    outcome = press(ctx, State(commune=BINH_LU), "ri:tyt_nam_thanh_mien:1")
    assert not outcome.effects


def test_open_codes_are_limited(ctx: Context, renderer: Renderer) -> None:
    """A person with the maximum of open codes is asked to use or cancel one first."""
    state = State(commune=BINH_LU, codes=tuple(held(f"AAAAAAA{i}") for i in range(MAX_OPEN_CODES)))
    outcome = press(ctx, state, "ri:tyt_binh_lu:1")
    assert not any(isinstance(effect, IssueReferral) for effect in outcome.effects)
    assert f"{MAX_OPEN_CODES} mã chưa dùng" in text(renderer, outcome)


def test_codes_per_month_are_limited(ctx: Context, renderer: Renderer) -> None:
    """After the monthly maximum, no new code until next month."""
    state = State(commune=BINH_LU, issued=("2026-03", MAX_CODES_PER_MONTH))
    outcome = press(ctx, state, "ri:tyt_binh_lu:1")
    assert not any(isinstance(effect, IssueReferral) for effect in outcome.effects)
    assert "tháng sau" in text(renderer, outcome)
    next_month = respond(
        state, Inbound("t", "p", payload="ri:tyt_binh_lu:1"), ctx, TurnFacts(dt.date(2026, 4, 1), "7KQ2M9XA")
    )
    assert any(isinstance(effect, IssueReferral) for effect in next_month.effects)
    assert next_month.state is not None and next_month.state.issued == ("2026-04", 1)


def test_my_codes_and_cancelling(ctx: Context, renderer: Renderer) -> None:
    """The person sees their codes, confirms a cancellation, and the code leaves their state."""
    state = State(commune=BINH_LU, codes=(held("7KQ2M9XA"), held("8KQ2M9XA")))
    listed = press(ctx, state, "rm")
    assert "7KQ2-M9XA" in text(renderer, listed) and "rc:7KQ2M9XA" in payloads(listed)
    confirm = press(ctx, state, "rc:7KQ2M9XA")
    assert not confirm.effects and "rcy:7KQ2M9XA" in payloads(confirm)
    done = press(ctx, state, "rcy:7KQ2M9XA")
    assert done.effects == (CancelReferral("7KQ2M9XA"),)
    assert done.state is not None and [h.code for h in done.state.codes] == ["8KQ2M9XA"]


def test_cancelling_a_code_not_held_does_nothing(ctx: Context, renderer: Renderer) -> None:
    """An old cancel button for a code already used or cancelled changes nothing."""
    outcome = press(ctx, State(commune=BINH_LU), "rcy:7KQ2M9XA")
    assert not outcome.effects
    assert "không còn dùng được" in text(renderer, outcome)


def test_the_menu_offers_my_codes_only_to_holders(ctx: Context) -> None:
    """"My codes" appears in the main menu only while the person holds a code."""
    assert "rm" not in payloads(press(ctx, State(), "m"))
    assert "rm" in payloads(press(ctx, State(codes=(held("7KQ2M9XA"),)), "m"))


def test_engagement_is_reported_for_counting(ctx: Context) -> None:
    """Topics, service listings and hotlines are reported as engagements; privacy reading is not."""
    assert Engaged("topic") in press(ctx, State(), "t:pep").effects
    assert Engaged("services") in press(ctx, State(), f"w:{BINH_LU}").effects
    assert Engaged("hotlines") in press(ctx, State(), "e").effects
    assert not press(ctx, State(), "tm:privacy").effects


def test_state_with_codes_round_trips() -> None:
    """Held codes and the monthly count survive storage; malformed entries are dropped."""
    state = State(commune=BINH_LU, codes=(held("7KQ2M9XA"),), issued=("2026-03", 2))
    assert State.from_bytes(state.to_bytes()) == state
    broken = state.to_bytes().replace(b"7KQ2M9XA", b"7KQ2-9XA")
    assert State.from_bytes(broken).codes == ()
