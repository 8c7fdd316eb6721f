"""The console channel end to end: numbered buttons, JSON scripting, the error boundary."""

from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import update

from bot.channels.console import parse_json_line, run_interactive, run_json
from bot.runtime import Runtime
from handlers.types import Inbound
from storage.models import Person


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


async def test_interactive_numbers_press_buttons(runtime: Runtime) -> None:
    """The terminal shows numbered choices; typing a number presses that button."""
    stdin = io.StringIO("1\n2\n99\nxn hiv o dau\n")
    stdout = NotATerminal()
    assert await run_interactive(runtime.answer, "term", stdin, stdout) == 0
    screen = stdout.getvalue()
    assert "  1) Đồng ý" in screen and "  2) Không lưu gì" in screen
    assert "Cảm ơn bạn" in screen, "1 accepted the notice"
    assert "  1) Thông tin tư vấn" in screen and "  2) Dịch vụ HIV/STI và sức khỏe gần bạn" in screen
    assert "Hãy chọn một số từ 1 đến" in screen, "an out-of-range number gets a hint"
    assert "Xét nghiệm HIV" in screen


async def test_interactive_quick_exit_clears_a_terminal(runtime: Runtime) -> None:
    """Quick exit clears the terminal screen and scrollback, then shows a neutral line."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stdout = Terminal()
    await run_interactive(runtime.answer, "t", io.StringIO("thoát nhanh\n"), stdout)
    screen = stdout.getvalue()
    assert "\033[2J\033[3J" in screen
    assert screen.split("\033[3J\033[H", 1)[1].startswith("Đã xong.")


async def test_json_script(runtime: Runtime) -> None:
    """Each stdin line is one event; each reply is one JSON object per line."""
    stdin = io.StringIO("/start\n#button c:accept\n#location 22.39 103.46\n#button x\n")
    stdout, stderr = io.StringIO(), io.StringIO()
    assert await run_json(runtime.answer, "j", stdin, stdout, stderr) == 0
    replies = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert len(replies) == 4 and stderr.getvalue() == ""
    assert {"label": "Đồng ý", "payload": "c:accept"} in replies[0]["buttons"]
    assert replies[3]["quick_exit"] is True


@pytest.mark.parametrize(
    ("line", "error"),
    [("#button", "needs a payload"), ("#location 1", "two numbers"), ("#location 95 10", "latitude")],
)
def test_bad_script_lines(line: str, error: str) -> None:
    """A malformed scripted line gives a readable error instead of an event."""
    result = parse_json_line(line, "u", 1)
    assert isinstance(result, str) and error in result


def test_script_lines_become_events() -> None:
    """Text, buttons and locations become the matching inbound events."""
    assert parse_json_line("chào\n", "u", 3) == Inbound("console", "u", text="chào")
    assert parse_json_line("#button t:pep", "u", 1).payload == "t:pep"  # type: ignore[union-attr]
    location = parse_json_line("#location 21.0 105.8", "u", 1).location  # type: ignore[union-attr]
    assert location is not None and (location.latitude, location.longitude) == (21.0, 105.8)


async def test_error_boundary_apologises_without_personal_data(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """When a record cannot be opened, the person gets an apology with numbers; the log names no one."""
    await runtime.handle(Inbound("console", "victim", payload="c:accept"))
    async with runtime.services.db.transaction() as session:
        await session.execute(update(Person).values(record=b"\x01\x00\x00\x00\x01" + bytes(40)))
    caplog.set_level(logging.DEBUG)
    replies = await runtime.answer(Inbound("console", "victim", text="bí mật riêng"))
    assert "113" in replies[0].text and "Xin lỗi" in replies[0].text
    logged = caplog.text
    assert "DecryptionError" in logged
    assert "victim" not in logged and "bí mật" not in logged
