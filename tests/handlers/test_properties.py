"""Property-based tests: any sequence of inbound events is answered and leaves valid state."""

from __future__ import annotations

import uuid
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.bootstrap import Services
from bot.record import PersonRecord
from bot.runtime import Runtime
from handlers.common import Context
from handlers.engine import respond
from handlers.render import Renderer
from handlers.state import State
from handlers.types import Inbound
from storage.models import Person
from storage.persons import load_record
from tests.strategies import inbound_events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(inbound_events(), min_size=1, max_size=12))
def test_engine_never_fails(ctx: Context, renderer: Renderer, events: list[Inbound]) -> None:
    """The engine answers every event with at least one non-empty reply and round-trippable state."""
    state: State | None = None
    for event in events:
        outcome = respond(state, event, ctx)
        rendered = renderer.render(outcome)
        assert rendered and all(reply.text.strip() for reply in rendered)
        for reply in rendered:
            assert all(0 < len(b.payload.encode()) <= 64 and b.label for b in reply.buttons)
        if outcome.state is not None:
            assert State.from_bytes(outcome.state.to_bytes()) == outcome.state
        state = outcome.state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(inbound_events(), min_size=1, max_size=8))
async def test_runtime_keeps_storage_valid(runtime: Runtime, services: Services, events: list[Inbound]) -> None:
    """Through storage and encryption, every event is answered and the stored record stays readable."""
    user = uuid.uuid4().hex
    pseudonym = services.secrets.pseudonym("test", user)
    for event in events:
        replies = await runtime.handle(replace(event, user_id=user))
        assert replies and all(reply.text.strip() for reply in replies)
        async with services.db.transaction() as session:
            ring = await services.keys.get(session)
            raw = await load_record(session, ring, pseudonym, lock=False)
            stored = await session.scalar(select(Person.last_active_on).where(Person.pseudonym == pseudonym))
        if raw is not None:
            record = PersonRecord.from_bytes(raw)
            assert record.to_bytes() == raw, "the stored record is exactly a valid record"
            assert stored is not None
