"""A realistic mix of Telegram updates for the benchmarks, as Telegram would POST them.

Each person follows one script (DESIGN §1 flows), one update per step:

    0  /start, or /start PEER (a peer educator's deep link, 30 % of people)
    1  press "accept" under the privacy notice (85 %; c:accept:PEER after a peer link),
       "decline" (10 %) or "read more" (5 %)
    2  press "menu" (m)
    3  type a message: a Vietnamese (or English) free text from tests/data/intent_eval.tsv
    4  press "information" (i)
    5  press a topic group (g:hiv_sti, g:reproductive, …)
    6  press a topic (t:hiv_testing, …)
    7  press "services" (s)
    8  press the commune w:3390 (Bình Lư, Lai Châu: it has services)
    9  ask for a referral code there (ri:tyt_binh_lu:1 = HIV testing at the commune health
       station) or choose the kind first (rt:hiv_testing)
   10+ free text, menu, topics, services again, in a fixed cycle

Free texts are the labelled messages of ``tests/data/intent_eval.tsv`` without the
quick-exit and erase ones (those delete messages or ask to erase; left out so that every
phase does the same work): it leans towards safety messages, which get the longer answers.

Updates are interleaved in waves: every person of a wave takes step k before anyone takes
step k+1, so one person's updates are a whole wave apart, as between real people typing;
``wave`` people at a time (all of them by default). Everything is drawn from a seeded
``random.Random``: the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

BOT_ID = 123456
BOT_USERNAME = "antam_bench_bot"
PEER_CODE = "BENCHPEER1"
COMMUNE = 3390  # Xã Bình Lư, Lai Châu (province 12): has a health station and more
PROVINCE = 12
GROUPS = {
    "hiv_sti": ["hiv_testing", "prep", "pep", "sti", "condoms", "hiv_treatment"],
    "reproductive": ["contraception", "pregnancy", "emergency_contraception"],
    "drugs": ["drugs_harm_reduction", "methadone"],
    "wellbeing": ["mental_health", "sleep_stress"],
    "safety": ["violence", "legal_aid", "trafficking"],
    "livelihood": ["jobs", "loans", "vocational_training"],
}
OTHER_COMMUNES = [30085, 30118, 11284, 13699]
EXCLUDED_INTENTS = {"quick_exit", "delete_data"}
BOT_TEXT = (
    "Chào bạn, mình là An Tâm. Mình có thông tin về sức khỏe, dịch vụ gần bạn và số điện thoại "
    "khẩn cấp. Bạn muốn xem gì?"
)


def free_texts() -> list[str]:
    texts = []
    for line in (ROOT / "tests" / "data" / "intent_eval.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            text, intent = line.split("\t")[:2]
            if intent not in EXCLUDED_INTENTS:
                texts.append(text)
    return texts


@dataclass
class Person:
    user_id: int
    language: str
    peer: bool
    consent: str  # accept, decline, more
    next_message_id: int = 1000


class Mix:
    """Generates update dicts; ``update_id`` and ids count up from the seeds, never repeat."""

    def __init__(self, *, seed: int = 7, first_user: int = 7_100_000_000, first_update: int = 500_000_000) -> None:
        self.random = random.Random(seed)
        self.texts = free_texts()
        self.next_user = first_user
        self.next_update = first_update
        self.now = 1_795_000_000  # 2026-11-18; only used for the "date" fields

    def new_person(self) -> Person:
        r = self.random
        person = Person(
            user_id=self.next_user,
            language="en" if r.random() < 0.1 else "vi",
            peer=r.random() < 0.3,
            consent=r.choices(["accept", "decline", "more"], [85, 10, 5])[0],
        )
        self.next_user += 1
        return person

    # -- Telegram's JSON shapes ---------------------------------------------------------------

    def _user(self, person: Person) -> dict[str, Any]:
        return {"id": person.user_id, "is_bot": False, "first_name": "Lan", "language_code": person.language}

    def _chat(self, person: Person) -> dict[str, Any]:
        return {"id": person.user_id, "first_name": "Lan", "type": "private"}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self.next_update, **body}
        self.next_update += 1
        self.now += 1
        return update

    def message(self, person: Person, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": person.next_message_id,
            "from": self._user(person),
            "chat": self._chat(person),
            "date": self.now,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        person.next_message_id += 2  # the user's message, then (about) one answer
        return self._update({"message": message})

    def callback(self, person: Person, data: str) -> dict[str, Any]:
        under = {
            "message_id": person.next_message_id - 1,
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "An Tâm", "username": BOT_USERNAME},
            "chat": self._chat(person),
            "date": self.now - 5,
            "text": BOT_TEXT,
            "reply_markup": {
                "inline_keyboard": [
                    [{"text": "Thông tin", "callback_data": "i"}],
                    [{"text": "Dịch vụ", "callback_data": "s"}],
                    [{"text": data[:20], "callback_data": data}],
                    [{"text": "Thoát nhanh", "callback_data": "x"}],
                ]
            },
        }
        query = {
            "id": str(self.random.randint(10**17, 10**19 - 1)),
            "from": self._user(person),
            "message": under,
            "chat_instance": str(-(person.user_id * 7919) % 10**18),
            "data": data,
        }
        person.next_message_id += 1
        return self._update({"callback_query": query})

    # -- the script ---------------------------------------------------------------------------

    def step(self, person: Person, k: int) -> dict[str, Any]:
        r = self.random
        if k == 0:
            return self.message(person, f"/start {PEER_CODE}" if person.peer else "/start")
        if k == 1:
            if person.consent == "accept":
                return self.callback(person, f"c:accept:{PEER_CODE}" if person.peer else "c:accept")
            return self.callback(person, f"c:{person.consent}")
        if k == 2:
            return self.callback(person, "m")
        if k == 4:
            return self.callback(person, "i")
        if k == 5:
            return self.callback(person, f"g:{r.choice(list(GROUPS))}")
        if k == 6:
            return self.callback(person, f"t:{r.choice(r.choice(list(GROUPS.values())))}")
        if k == 7:
            return self.callback(person, "s")
        if k == 8:
            return self.callback(person, f"w:{COMMUNE}")
        if k == 9:
            return self.callback(person, "ri:tyt_binh_lu:1" if r.random() < 0.5 else "rt:hiv_testing")
        if k == 3 or k >= 10:
            later = (k - 10) % 6
            if k == 3 or later in (0, 3):
                return self.message(person, r.choice(self.texts))
            if later == 1:
                return self.callback(person, "m")
            if later == 2:
                return self.callback(person, f"t:{r.choice(r.choice(list(GROUPS.values())))}")
            if later == 4:
                return self.callback(person, f"w:{r.choice(OTHER_COMMUNES + [COMMUNE])}")
            return self.callback(person, f"g:{r.choice(list(GROUPS))}")
        raise AssertionError(k)

    def updates(self, count: int, people: int, *, wave: int | None = None) -> Iterator[dict[str, Any]]:
        """``count`` updates from ``people`` new people, in waves of ``wave`` people."""
        if count <= 0 or people <= 0:
            return
        wave = min(wave or people, people)
        per_person, extra = divmod(count, people)
        produced = 0
        for first in range(0, people, wave):
            group = [self.new_person() for _ in range(min(wave, people - first))]
            steps = [per_person + (1 if first + i < extra else 0) for i in range(len(group))]
            for k in range(max(steps, default=0)):
                for person, total in zip(group, steps):
                    if k < total:
                        yield self.step(person, k)
                        produced += 1
        assert produced == count


def encoded(updates: Iterator[dict[str, Any]]) -> list[bytes]:
    """As the webhook body arrives: UTF-8 JSON bytes."""
    return [json.dumps(update, ensure_ascii=False).encode() for update in updates]
