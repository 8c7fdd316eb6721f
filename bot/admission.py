"""Limits per address block on what counts: new people in the indicators, new referral codes.

A web-chat session costs nothing: a script can open a fresh one, accept the notice and read a
topic many times a minute, and each would be a new person "reached". So the web chat hands
the runtime a ``Gate`` for the address block the request came from (an IPv6 /64, an IPv4
/24 by default; bot/client_address.py), and:

* at most ``people_per_hour`` **new counted people** per block and hour: a person being
  counted for the first time this month (no marks yet) takes a token; without one they still
  get every answer, but are not counted towards reached or informed — instead one
  "not counted (limit)" is added for their commune and day (once a month per person), and
  they are counted on a later visit if the block has a token again then;
* at most ``codes_per_hour`` **referral codes** per block and hour; beyond it the person is
  told that no code can be issued right now (the per-person caps of 3 open and 6 a month
  are per session, and a session is free).

The buckets refill continuously (``n`` per hour) and live in this process's memory only,
keyed by a keyed hash of the block (its key is random per process): nothing about an address
is stored, and, as with every rate limit here, each replica counts on its own.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.channels.common import TokenBuckets

HOUR = 3600.0


class Gate:
    """One inbound event's view of its block's limits.

    Decisions are kept: the runtime may run a turn's transaction again (a racing insert, a key
    rotation), and the retry must not take a second token.
    """

    def __init__(self, limits: BlockLimits, block: bytes) -> None:
        self._limits = limits
        self._block = block
        self._counted: bool | None = None
        self._codes: bool | None = None

    def count_new_person(self) -> bool:
        """Take a new person's token; False when the block has none left this hour."""
        if self._counted is None:
            self._counted = self._limits.people.take(self._block) == 0.0
        return self._counted

    def may_issue_code(self) -> bool:
        """Whether the block may have another referral code now (nothing taken yet)."""
        if self._codes is None:
            self._codes = self._limits.codes.available(self._block) >= 1 - 1e-9
        return self._codes

    def issued_codes(self, count: int) -> None:
        """Codes were issued (after the transaction committed): take their tokens."""
        for _ in range(count):
            self._limits.codes.take(self._block)


class BlockLimits:
    def __init__(
        self, *, people_per_hour: int, codes_per_hour: int, clock: Callable[[], float], keys: int = 50_000
    ) -> None:
        self.people: TokenBuckets[bytes] = TokenBuckets(
            people_per_hour, people_per_hour / HOUR, keys=keys, clock=clock
        )
        self.codes: TokenBuckets[bytes] = TokenBuckets(codes_per_hour, codes_per_hour / HOUR, keys=keys, clock=clock)

    def gate(self, block: bytes) -> Gate:
        return Gate(self, block)
