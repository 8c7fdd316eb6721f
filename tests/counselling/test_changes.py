"""The wake-ups of the counsellors' pages (bot/changes.py): a subscriber misses no change, and a
change that only grew another chat's transcript can be told apart from anything else."""

from __future__ import annotations

import asyncio

from bot.changes import Changes, line_note, lines_only


async def test_a_subscriber_sees_every_change_since_it_last_looked() -> None:
    changes = Changes()
    page = changes.subscribe()
    changes.wake(line_note(3))
    changes.wake(line_note(4))
    changes.wake()
    assert await asyncio.wait_for(page.changes(timeout=1), 2) == {"line:3", "line:4", None}
    assert await page.changes(timeout=0.05) == set(), "nothing new: it waits, then says so"
    late = changes.subscribe()
    changes.wake(line_note(5))
    assert await page.changes(timeout=1) == {"line:5"} and await late.changes(timeout=1) == {"line:5"}


def test_only_transcript_lines_can_be_skipped() -> None:
    assert lines_only({"line:3", "line:4"}) == {3, 4}
    assert lines_only({"line:3", None}) is None
    assert lines_only({"case:3"}) is None
    assert lines_only({"line:x"}) is None
    assert lines_only(set()) == set()
