"""The renderer's structured parts (blocks): what each paragraph of a reply is, from its data.

The plain text every channel shows is the blocks' texts; the web chat lays the blocks out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from bot.channels.registry import CONSOLE, TELEGRAM, WEB, ZALO
from content.code_format import display
from content.geo import commune_index
from content.i18n import load_catalogs
from content.pack import SERVICE_TYPES
from handlers.common import Context, Outcome
from handlers.engine import respond
from handlers.render import Block, BlockKind, Renderer, RenderedButton, RenderedReply
from handlers.state import State
from handlers.types import HotlineList, Inbound, Msg, Reply, ServiceEntry, TopicPart, TopicText, TurnFacts

BINH_LU = 3390
DAY = dt.date(2026, 3, 2)


def say(ctx: Context, state: State | None, text: str) -> Outcome:
    return respond(state, Inbound("test", "person", text=text), ctx, TurnFacts(DAY, "7KQ2M9XA"))


def press(ctx: Context, state: State | None, payload: str) -> Outcome:
    return respond(state, Inbound("test", "person", payload=payload), ctx, TurnFacts(DAY, "7KQ2M9XA"))


def kinds(reply: RenderedReply) -> list[BlockKind]:
    return [block.kind for block in reply.blocks]


def test_a_pep_answer_marks_its_one_urgent_line_and_its_title(ctx: Context, renderer: Renderer) -> None:
    """"bao cao su bi rach": the 72-hour line first and marked (only it), the topic's title a title."""
    (reply,) = renderer.render(say(ctx, State(), "bao cao su bi rach"))
    assert reply.blocks[0].kind is BlockKind.URGENT and "72 giờ" in reply.blocks[0].text
    assert kinds(reply).count(BlockKind.URGENT) == 1
    titles = [block.text for block in reply.blocks if block.kind is BlockKind.TITLE]
    assert titles == [ctx.pack.topics["pep"].vi.title]


@pytest.mark.parametrize("text", ["em khong muon song nua", "bi nguoi yeu danh", "so dien thoai khan cap"])
def test_a_safety_answer_has_one_urgent_line_and_every_number_to_dial(ctx: Context, renderer: Renderer, text: str) -> None:
    """Crisis, violence, the emergency numbers: one urgent line first, then one phone block per
    number shown, each with what to dial."""
    reply = renderer.render(say(ctx, None, text))[0]
    assert kinds(reply)[0] is BlockKind.URGENT and kinds(reply).count(BlockKind.URGENT) == 1
    phones = [block for block in reply.blocks if block.kind is BlockKind.PHONE]
    assert phones
    for block in phones:
        assert block.value is not None and block.value in block.text
        assert block.dial and set(block.dial) <= set("+0123456789")


def test_the_emergency_numbers_are_one_block_each(ctx: Context, renderer: Renderer) -> None:
    """The emergency menu: every shown hotline a phone block; the plain text unchanged, one line each."""
    (reply,) = renderer.render(press(ctx, State(), "e"))
    shown = ctx.pack.shown_hotlines(None)
    phones = [block for block in reply.blocks if block.kind is BlockKind.PHONE]
    assert [block.value for block in phones] == [line.number for line in shown]
    assert [block.dial for block in phones] == ["".join(c for c in line.number if c.isdigit() or c == "+") for line in shown]
    assert "\n".join(block.text for block in phones) in reply.text


def test_a_referral_code_is_a_code_block(ctx: Context, renderer: Renderer) -> None:
    """The issued code is a block of its own with the code as shown, XXXX-XXXX; "my codes" too."""
    outcome = press(ctx, State(commune=BINH_LU), "ri:tyt_binh_lu:1")
    (reply,) = renderer.render(outcome)
    (code,) = [block for block in reply.blocks if block.kind is BlockKind.CODE]
    assert code.value == display("7KQ2M9XA") == "7KQ2-M9XA" and code.value in code.text
    assert BlockKind.PLACE in kinds(reply)
    assert outcome.state is not None
    (mine,) = renderer.render(press(ctx, outcome.state, "rm"))
    assert [block.value for block in mine.blocks if block.kind is BlockKind.CODE] == ["7KQ2-M9XA"]


def test_a_pep_code_says_go_today_as_its_urgent_line(ctx: Context, renderer: Renderer) -> None:
    """A code for PEP: "go today" is the urgent line, first."""
    services = [s for s in ctx.pack.services_for(BINH_LU, 12) if "pep" in s.types]
    if not services:
        pytest.skip("no place offers PEP in Bình Lư's directory")
    (reply,) = renderer.render(press(ctx, State(commune=BINH_LU), f"ri:{services[0].id}:{SERVICE_TYPES.index('pep')}"))
    assert reply.blocks[0].kind is BlockKind.URGENT and "72 giờ" in reply.blocks[0].text


def test_the_text_is_the_blocks_texts(ctx: Context, renderer: Renderer) -> None:
    """What Telegram, Zalo and the console show is the same text as before: the parts' texts, a
    blank line between parts (a list of hotlines one line per number)."""
    for outcome in (
        say(ctx, None, "/start"),
        say(ctx, State(), "bao cao su bi rach"),
        press(ctx, State(), "e"),
        press(ctx, State(), "t:prep"),
        press(ctx, State(), "m"),
        press(ctx, State(commune=BINH_LU), "ri:tyt_binh_lu:1"),
    ):
        for neutral, reply in zip(outcome.replies, renderer.render(outcome), strict=True):
            assert reply.blocks
            expected = "\n\n".join(renderer.text(part, "vi") for part in neutral.parts if not isinstance(part, ServiceEntry))
            if not any(isinstance(part, ServiceEntry) for part in neutral.parts):
                assert reply.text == expected
            for block in reply.blocks:
                assert block.text in reply.text


def listing(ctx: Context, verified: set[str]) -> tuple[RenderedReply, list[str]]:
    services = tuple(s.model_copy(update={"verified": s.id in verified, "verified_on": DAY if s.id in verified else None}) for s in ctx.pack.services)
    pack = replace(ctx.pack, services=services)
    local = Renderer(load_catalogs(), pack, commune_index())
    (reply,) = local.render(press(replace(ctx, pack=pack), State(), f"w:{BINH_LU}"))
    names = [s.vi.name for s in pack.services_for(BINH_LU, 12)]
    return reply, names


def test_not_verified_is_said_once_under_the_list(ctx: Context) -> None:
    """None verified: no mark by each place, one note under the list; some verified: a mark by
    the others and one note saying what it means; all verified: nothing."""
    reply, names = listing(ctx, set())
    assert len(names) >= 2
    assert kinds(reply).count(BlockKind.NOTE) == 1 and reply.text.count("chưa xác minh") == 1
    assert kinds(reply)[-1] is BlockKind.NOTE, "the note comes right under the last place"
    places = [block for block in reply.blocks if block.kind is BlockKind.PLACE]
    assert [block.lines[0] for block in places] == names
    assert "(chưa xác minh" not in reply.text

    first = next(s.id for s in ctx.pack.services_for(BINH_LU, 12))
    reply, names = listing(ctx, {first})
    places = [block for block in reply.blocks if block.kind is BlockKind.PLACE]
    assert places[0].lines[0] == names[0] and all(block.lines[0] == f"{name} *" for block, name in zip(places[1:], names[1:], strict=True))
    (note,) = [block for block in reply.blocks if block.kind is BlockKind.NOTE]
    assert note.text.startswith("* ") and reply.text.lower().count("chưa xác minh") == 1

    reply, _ = listing(ctx, {s.id for s in ctx.pack.services})
    assert BlockKind.NOTE not in kinds(reply) and "chưa xác minh" not in reply.text


def test_a_place_card_has_its_lines_and_only_a_verified_phone(ctx: Context) -> None:
    """A place's block: its name, then its details, without the bullet and indent of plain text;
    a phone to dial only when the entry is verified."""
    service = next(s for s in ctx.pack.services if s.id == "tyt_binh_lu").model_copy(update={"phone": "0213 3 876 543"})
    for verified in (False, True):
        entry = service.model_copy(update={"verified": verified, "verified_on": DAY if verified else None})
        pack = replace(ctx.pack, services=(entry,))
        local = Renderer(load_catalogs(), pack, commune_index())
        (block, *_) = local.block(ServiceEntry(entry.id, 2.5), "vi")
        assert block.kind is BlockKind.PLACE
        # Alone, an entry not verified has its mark (a list without any verified one leaves it out).
        assert block.lines[0] == (entry.vi.name if verified else f"{entry.vi.name} *")
        assert not block.lines[1].startswith(" ")
        assert any("2,5 km" in line for line in block.lines)
        assert block.text.startswith("• ")
        if verified:
            assert (block.value, block.dial) == ("0213 3 876 543", "02133876543")
            assert any("0213 3 876 543" in line for line in block.lines)
        else:
            assert block.value is None and block.dial is None and "0213" not in block.text


def test_other_parts(renderer: Renderer, ctx: Context) -> None:
    assert renderer.block(TopicText("prep", TopicPart.TITLE), "en") == [Block(BlockKind.TITLE, ctx.pack.topics["prep"].en.title)]
    assert renderer.block(TopicText("prep", TopicPart.SUMMARY), "vi")[0].kind is BlockKind.TEXT
    assert renderer.block(Msg("menu.title"), "vi")[0].kind is BlockKind.TEXT
    assert renderer.block(HotlineList(), "vi")[0].kind is BlockKind.PHONE


def test_the_json_carries_blocks_next_to_text_and_buttons(ctx: Context, renderer: Renderer) -> None:
    """The web chat's JSON gains "blocks" beside the unchanged "text" and "buttons"."""
    (reply,) = renderer.render(press(ctx, State(), "e"))
    data = reply.to_json()
    assert data["text"] == reply.text and data["buttons"]
    phone = next(block for block in data["blocks"] if block["kind"] == "phone")
    assert set(phone) == {"kind", "text", "value", "dial"}
    assert data["blocks"][0] == {"kind": "urgent", "text": reply.blocks[0].text}
    assert "blocks" not in RenderedReply("…").to_json()


def test_the_web_chat_leaves_the_quick_exit_to_its_header(ctx: Context, renderer: Renderer) -> None:
    """Only where the screen always has a quick exit do replies leave out its button; in any
    language, before consent too ("en|x")."""
    for outcome in (press(ctx, State(), "m"), say(ctx, None, "/start"), respond(None, Inbound("t", "p", payload="en|m"), ctx)):
        rendered = renderer.render(outcome)
        exits = [b for r in rendered for b in r.buttons if b.payload.rpartition("|")[2] == "x"]
        assert exits, "the neutral reply has a quick exit"
        web = renderer.fit(rendered, WEB.capabilities)
        assert not [b for r in web for b in r.buttons if b.payload.rpartition("|")[2] == "x"]
        assert [b for r in web for b in r.buttons] == [b for r in rendered for b in r.buttons if b not in exits]
        for spec in (TELEGRAM, ZALO, CONSOLE):
            fitted = renderer.fit(rendered, spec.capabilities)
            assert {b.payload for b in exits} <= {b.payload for r in fitted for b in r.buttons}, spec.name
    assert WEB.capabilities.buttons_shown == 5


def test_a_reply_cut_to_fit_loses_its_blocks(renderer: Renderer, ctx: Context) -> None:
    """Blocks would not match pieces of a cut text: a cut reply has none; an uncut one keeps them."""
    (reply,) = renderer.render(say(ctx, State(), "bao cao su bi rach"))
    kept = renderer.fit([reply], WEB.capabilities)
    assert kept[0].blocks == reply.blocks
    cut = renderer.fit([reply], replace(WEB.capabilities, max_text=200))
    assert len(cut) > 1 and all(piece.blocks == () for piece in cut)
    paged = renderer.fit([replace(reply, buttons=tuple(RenderedButton(str(i), f"p{i}") for i in range(7)))], replace(TELEGRAM.capabilities, max_buttons=3))
    assert paged[0].blocks == reply.blocks and all(piece.blocks == () for piece in paged[1:])
    assert "…" == paged[1].text


def test_urgent_is_data_of_the_neutral_reply(ctx: Context) -> None:
    """The flows mark the line, not the renderer guessing from a key."""
    outcome = say(ctx, State(), "bao cao su bi rach")
    first = outcome.replies[0].parts[0]
    assert isinstance(first, Msg) and first.key == "safety.pep" and first.emphasis == "urgent"
    assert isinstance(outcome.replies[0], Reply)
