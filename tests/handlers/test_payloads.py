"""Typed button payloads (handlers/payloads.py) and their route table (handlers/routes.py)."""

from __future__ import annotations

import dataclasses

import pytest

from handlers import payloads as p
from handlers.common import Context, Outcome
from handlers.engine import respond
from handlers.routes import ROUTES, Route
from handlers.state import State
from handlers.types import Inbound

STALE = "input.stale_button"


def _press(ctx: Context, state: State | None, payload: str) -> Outcome:
    return respond(state, Inbound("test", "person", payload=payload), ctx)


def _keys(outcome: Outcome) -> set[str]:
    return {getattr(part, "key", "") for reply in outcome.replies for part in reply.parts}


def _sample(kind: type[p.Payload]) -> p.Payload:
    values = {f.name: (3390 if f.type in (int, "int") else "abc") for f in dataclasses.fields(kind)}
    return kind(**values)


def test_every_kind_reads_back_what_it_packs() -> None:
    """pack and unpack are inverse for every kind in the table, and no other kind claims the text."""
    kinds = [route.kind for route in ROUTES if isinstance(route, Route)]
    assert len(kinds) == len(ROUTES) and len(set(kinds)) == len(kinds)
    for kind in kinds:
        sample = _sample(kind)
        packed = sample.pack()
        assert kind.unpack(packed) == sample
        claimed = [other for other in kinds if other is not kind and other.unpack(packed) is not None]
        assert claimed == [], (kind, claimed)


def test_a_payload_too_long_fails_when_the_button_is_made() -> None:
    """The 64-byte limit (with room for the language prefix) is checked by pack, not by Telegram."""
    assert p.Topic("a" * 58).pack() == "t:" + "a" * 58
    with pytest.raises(p.PayloadTooLong):
        p.Topic("a" * 60).pack()
    with pytest.raises(p.PayloadTooLong):
        p.Topic("ă" * 30).pack()  # bytes, not characters


def test_numbers_are_checked_when_read() -> None:
    assert p.CommuneServices.unpack("w:3390") == p.CommuneServices(3390)
    assert p.CommuneServices.unpack("w:33x0") is None
    assert p.CommuneServices.unpack("w:1234567") is None
    assert p.CommuneServices.unpack("w:") is None


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        # Buttons as they were written before payloads were typed, still in people's chats.
        ("c:accept", "consent.already"),
        ("i", "info.title"),
        ("s", "services.ask_commune"),
        ("p:erase", "privacy.erase_confirm"),
        ("l:en", None),
        ("t:condoms", None),
        ("g:livelihood", None),
    ],
)
def test_old_payloads_keep_working(ctx: Context, payload: str, key: str | None) -> None:
    """Payloads of the old text format open the same flows as before."""
    outcome = _press(ctx, State(), payload)
    assert STALE not in _keys(outcome)
    assert outcome.intent == "button:" + payload.split(":")[0]
    if key is not None:
        assert key in _keys(outcome), _keys(outcome)


@pytest.mark.parametrize("payload", ["zz", "c:accept:", "p:erase:maybe", "m:extra", "w:abc", "ri:", "s:other"])
def test_payloads_no_kind_accepts_get_the_existing_answer(ctx: Context, payload: str) -> None:
    """An outdated or edited button gets the menu with "no longer available"."""
    outcome = _press(ctx, State(), payload)
    assert STALE in _keys(outcome)
    assert outcome.intent == "stale_button"
