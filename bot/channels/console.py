"""The console channel: `antam chat` in a terminal, or scripted with --json.

A terminal never redelivers a line, so console events carry no update id to deduplicate. It
never runs in the server (the registry says it is never configured there), and nothing can
reach a terminal later: ``ConsoleChannel.send`` always reports the person unreachable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TextIO

from bot.channels.base import Channel, ChannelBase
from bot.channels.registry import CONSOLE, ServerOptions
from handlers.render import RenderedReply
from handlers.types import Inbound, Location, ReplyKind

if TYPE_CHECKING:
    from bot.runtime import Runtime

CHANNEL = CONSOLE.name
Handler = Callable[[Inbound], Awaitable[list[RenderedReply]]]
_CLEAR = "\033[2J\033[3J\033[H"


def parse_json_line(line: str, user: str, line_number: int) -> Inbound | str:
    """Turn one scripted line into an Inbound, or return an error message."""
    stripped = line.rstrip("\r\n")
    if stripped.startswith("#button"):
        payload = stripped[len("#button") :].strip()
        if not payload:
            return "#button needs a payload, e.g. '#button m'"
        return Inbound(CHANNEL, user, payload=payload)
    if stripped.startswith("#location"):
        parts = stripped.split()
        try:
            lat, lon = float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            return "#location needs two numbers, e.g. '#location 22.39 103.46'"
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return "#location: latitude must be within ±90 and longitude within ±180"
        return Inbound(CHANNEL, user, location=Location(lat, lon))
    return Inbound(CHANNEL, user, text=stripped)


async def run_json(handle: Handler, user: str, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Each stdin line is one inbound event; each reply is printed as one JSON line."""
    line_number = 0
    errors = 0
    while True:
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            return 1 if errors else 0
        line_number += 1
        inbound = parse_json_line(line, user, line_number)
        if isinstance(inbound, str):
            errors += 1
            print(f"antam chat: line {line_number}: {inbound}", file=stderr, flush=True)
            continue
        for reply in await handle(inbound):
            stdout.write(json.dumps(reply.to_json(), ensure_ascii=False) + "\n")
        stdout.flush()


def format_reply(reply: RenderedReply, first_number: int) -> str:
    lines = [reply.text]
    for offset, button in enumerate(reply.buttons):
        lines.append(f"  {first_number + offset}) {button.label}")
    return "\n".join(lines)


async def run_interactive(handle: Handler, user: str, stdin: TextIO, stdout: TextIO) -> int:
    """A terminal conversation; buttons are numbered, typing a number presses one."""
    stdout.write("An Tâm — gõ tin nhắn, hoặc số của một lựa chọn. Ctrl-D để thoát.\n\n")
    choices: list[str] = []
    line_number = 0
    inbound: Inbound | None = Inbound(CHANNEL, user, text="/start")
    while True:
        if inbound is not None:
            replies = await handle(inbound)
            choices = []
            for reply in replies:
                if reply.kind is ReplyKind.QUICK_EXIT:
                    stdout.write(_CLEAR if stdout.isatty() else "")
                stdout.write(format_reply(reply, len(choices) + 1) + "\n\n")
                choices.extend(button.payload for button in reply.buttons)
            stdout.flush()
        stdout.write("> ")
        stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            stdout.write("\n")
            return 0
        text = line.strip()
        line_number += 1
        if text.isdigit() and 1 <= int(text) <= len(choices):
            inbound = Inbound(CHANNEL, user, payload=choices[int(text) - 1])
        elif text.isdigit() and choices:
            stdout.write(f"Hãy chọn một số từ 1 đến {len(choices)}.\n")
            inbound = None
        else:
            inbound = Inbound(CHANNEL, user, text=text)


class ConsoleChannel(ChannelBase):
    """The console as a registry channel: no routes, nothing to start, nobody to reach later
    (``ChannelBase.deliver`` reports everyone unreachable)."""

    name = CHANNEL
    capabilities = CONSOLE.capabilities

    def reaches(self, address: str) -> bool:
        return False


def build(runtime: Runtime, options: ServerOptions) -> Channel:
    """The registry's factory."""
    return ConsoleChannel(runtime)
