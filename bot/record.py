"""What is sealed in a consenting person's row: conversation state, recent message ids, and
the periods in which the person was already counted (so each person counts once per period),
noting those counted under "Chưa rõ xã" until the person names a commune (referrals/counting.py).

Message ids (never text) are kept so that "Thoát nhanh" can delete the conversation from the
device; Telegram only lets a bot delete messages younger than 48 hours, so older ids are
dropped whenever the record is written, and by the hourly maintenance.

The person's reply address (Telegram chat id, Zalo user id, web-chat session) is kept here,
sealed with the rest, only while a feature the person opted into needs to write first
(``needs``: counsellor chat, reminders); it goes with the last such feature, and with the
record on erasure. It is never a column, a log field or a metric label.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import Any

from handlers.state import State
from referrals.counting import Marks

MESSAGE_LIFETIME = dt.timedelta(hours=48)
MAX_MESSAGES = 400


@dataclass(frozen=True)
class PersonRecord:
    state: State
    # (message id, unix time it was seen) in the person's private chat.
    messages: tuple[tuple[int, int], ...] = ()
    marks: Marks = Marks()
    address: str | None = None
    needs: frozenset[str] = frozenset()
    # On channels with a reply window (Zalo): unix time of the person's last message, and how
    # many messages went to them since (the answers to it and the messages the bot started:
    # Zalo's quota per person message counts both). Sealed here only, like the whole record.
    heard: int | None = None
    started: int = 0

    def heard_now(self, now: dt.datetime, answered: int = 0) -> PersonRecord:
        """The person wrote and got ``answered`` messages: the window and the quota start again."""
        return replace(self, heard=int(now.timestamp()), started=answered)

    def heard_at(self) -> dt.datetime | None:
        return None if self.heard is None else dt.datetime.fromtimestamp(self.heard, dt.UTC)

    def keep_address(self, address: str, feature: str) -> PersonRecord:
        """The address kept for ``feature`` (the person opted into something that writes first)."""
        return replace(self, address=address, needs=self.needs | {feature})

    def release(self, feature: str) -> PersonRecord:
        """``feature`` ended: the address goes with the last feature that needed it."""
        needs = self.needs - {feature}
        return replace(self, needs=needs, address=self.address if needs else None)

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {"s": json.loads(self.state.to_bytes()), "m": [list(pair) for pair in self.messages]}
        if self.marks.counted:
            data["k"] = self.marks.to_json()
        if self.address is not None and self.needs:
            data["a"], data["n"] = self.address, sorted(self.needs)
        if self.heard is not None:
            data["h"], data["o"] = self.heard, self.started
        return json.dumps(data, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> PersonRecord:
        try:
            data: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return cls(State())
        if not isinstance(data, dict) or "s" not in data:
            # A record written before message tracking existed holds only the state.
            return cls(State.from_bytes(raw))
        messages = tuple(
            (int(pair[0]), int(pair[1]))
            for pair in data.get("m") or ()
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair)
        )
        address, needs = data.get("a"), data.get("n")
        kept = isinstance(address, str) and isinstance(needs, list) and all(isinstance(n, str) for n in needs)
        heard, started = data.get("h"), data.get("o")
        heard_ok = isinstance(heard, int) and not isinstance(heard, bool)
        return cls(
            State.from_bytes(json.dumps(data["s"]).encode()),
            messages,
            Marks.from_json(data.get("k")),
            address if kept else None,  # records written before addresses existed have none
            frozenset(needs) if kept and needs else frozenset(),
            heard if heard_ok else None,  # records written before the quota have none
            started if heard_ok and isinstance(started, int) and not isinstance(started, bool) else 0,
        )

    def fresh(self, now: dt.datetime) -> PersonRecord:
        """Without ids older than Telegram's 48-hour deletion window."""
        oldest = int((now - MESSAGE_LIFETIME).timestamp())
        return replace(self, messages=tuple(pair for pair in self.messages if pair[1] >= oldest))

    def with_messages(self, ids: list[int], now: dt.datetime) -> PersonRecord:
        fresh = self.fresh(now)
        known = {pair[0] for pair in fresh.messages}
        added = tuple((i, int(now.timestamp())) for i in dict.fromkeys(ids) if i not in known)
        return replace(fresh, messages=(fresh.messages + added)[-MAX_MESSAGES:])


class PersonMarks:
    """The counted periods inside a person's record, for the redemption rule below bot/
    (referrals/redeeming.py's RecordMarks): everything else in the record is kept as it is."""

    def marks(self, raw: bytes) -> Marks:
        return PersonRecord.from_bytes(raw).marks

    def with_marks(self, raw: bytes, marks: Marks) -> bytes:
        return replace(PersonRecord.from_bytes(raw), marks=marks).to_bytes()
