"""What every flow shares: the per-turn context, the outcome type and common buttons."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from content.geo import CommuneIndex
from content.intents import IntentClassifier
from content.understand import Understander
from content.pack import ContentPack
from handlers import payloads
from handlers.state import State
from handlers.types import Button, Effect, Msg, Reply, TurnFacts


@dataclass(frozen=True)
class Context:
    """Read-only knowledge the flows use: the content pack and what understands messages."""

    pack: ContentPack
    understander: Understander
    communes: CommuneIndex
    # Stated in the privacy notice, so the notice is true for this deployment.
    retention_days: int = 180
    # How long a referral code can be used.
    referral_days: int = 30
    # How long a counsellor chat's messages are kept at most after the last one (the notice says so).
    transcript_hours: int = 24

    @property
    def classifier(self) -> IntentClassifier:
        return self.understander.classifier


@dataclass(frozen=True)
class Outcome:
    """What the engine decided: the state to keep (None: keep nothing), replies, effects."""

    state: State | None
    replies: tuple[Reply, ...]
    effects: tuple[Effect, ...] = ()
    locale: str = "vi"
    # The recognised intent or route, for counting and logs; never the person's text.
    intent: str | None = None
    # A safety answer (numbers, the 72-hour message): given in full even without the database.
    urgent: bool = False


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP


@dataclass(frozen=True)
class Turn:
    """One inbound event being answered."""

    state: State | None
    locale: str
    ctx: Context
    intent: str | None = None
    # None where no runtime stands behind the turn (then no referral code can be issued).
    facts: TurnFacts | None = None

    @property
    def consented(self) -> bool:
        return self.state is not None

    def answer(
        self,
        *replies: Reply,
        state: State | None | _Keep = KEEP,
        effects: tuple[Effect, ...] = (),
    ) -> Outcome:
        """Build the outcome; ``state`` defaults to the current one, unchanged."""
        kept = self.state if isinstance(state, _Keep) else state
        return Outcome(kept, tuple(replies), effects, self.locale, self.intent)


MENU = Button(Msg("nav.menu"), payloads.Menu().pack())
QUICK_EXIT = Button(Msg("menu.quick_exit"), payloads.QuickExit().pack())


def nav(*extra: Button) -> tuple[Button, ...]:
    """Extra buttons, then the menu and quick-exit buttons that every screen carries."""
    return (*extra, MENU, QUICK_EXIT)
