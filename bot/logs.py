"""Logging set-up: plain text or JSON lines, and personal data kept out by construction.

An Tâm's own log lines never name a person (DESIGN §3.9), but a guarantee must not rest on
every future log call being careful. So every record passes a filter before it is written:

* arguments are kept only when they are numbers, words from a closed list (channel names,
  outcomes), fixed markers of the code's own (" (database unavailable)"), or the name of an
  exception class (a closed set too: defined by code, never by input); any other string
  argument becomes "[…]";
* an exception is written as its type only — never its message or traceback, which can quote
  values (an SQL statement's parameters, a URL with a token);
* a request aiohttp cannot parse (a request line or header over 8 KB, bytes that are not
  HTTP) is the client's doing, not a failure: aiohttp's ERROR with a traceback becomes one
  WARNING a minute at most, with the number left out since the last one;
* lines from libraries are scrubbed of addresses, long digit runs (chat ids, phone numbers),
  tokens and anything quoted;
* library loggers that print request parameters at DEBUG (PTB, HTTP clients, database drivers)
  stay at WARNING whatever ANTAM_LOG_LEVEL says.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import BadHttpMessage

from bot.channels.registry import NAMES as CHANNEL_NAMES

QUIET_LIBRARIES = (
    "telegram",
    "httpx",
    "httpcore",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy",
    "alembic",
    "asyncio",
    "aiohttp.access",
    "aiohttp.server",
)
# Words an argument may be and still be written as it is.
SAFE_WORDS = frozenset(CHANNEL_NAMES) | frozenset(
    {"test", "answered", "duplicate", "group", "error", "database",
     "sqlite", "postgresql", "runtime", "maintenance", "webhook", "polling", "vi", "en"}
)
# Fixed texts the code passes as arguments (never built from input).
FIXED_MARKERS = frozenset(
    {"", " (database unavailable)", "database unavailable", "no answer", "?", "long polling",
     "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)
REDACTED = "[…]"
_IDENTIFIER = re.compile(r"^[A-Z][A-Za-z0-9_]{1,79}$")
_SCRUB = (
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"),  # IPv4 address (and port)
    re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b"),  # IPv6 address
    re.compile(r"\d{6,}"),  # chat ids, phone numbers, long numbers
    re.compile(r"bot\d+:[\w-]+"),  # a Telegram bot token in a URL
    re.compile(r"[A-Za-z0-9_\-]{24,}"),  # tokens, keys, session ids, hashes
    re.compile(r"'[^']*'|\"[^\"]*\""),  # anything quoted
)


class _ExceptionNames:
    """The names of every exception class defined in the process, refreshed now and then."""

    def __init__(self, refresh_every: float = 0.1) -> None:
        self.names: frozenset[str] = frozenset()
        self.refresh_every = refresh_every
        self.refreshed = float("-inf")

    def _walk(self) -> frozenset[str]:
        seen: set[type] = set()
        stack: list[type] = [BaseException]
        while stack:
            cls = stack.pop()
            if cls not in seen:
                seen.add(cls)
                stack.extend(cls.__subclasses__())
        return frozenset(cls.__name__ for cls in seen)

    def __contains__(self, name: str) -> bool:
        if name in self.names:
            return True
        now = time.monotonic()
        if now - self.refreshed < self.refresh_every:
            return False
        self.refreshed = now
        self.names = self._walk()  # a class imported since the last look
        return name in self.names


EXCEPTION_NAMES = _ExceptionNames()


def _safe_arg(value: object) -> object:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and (value in SAFE_WORDS or value in FIXED_MARKERS):
        return value
    if isinstance(value, str) and _IDENTIFIER.match(value) and value in EXCEPTION_NAMES:
        return value
    return REDACTED


def scrub(text: str) -> str:
    """Remove what could identify a person or a secret from free text."""
    for pattern in _SCRUB:
        text = pattern.sub(REDACTED, text)
    return text


class PrivacyFilter(logging.Filter):
    """Rewrites every record so that it can carry no personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.error_type = record.exc_info[0].__name__
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        if isinstance(record.args, dict):
            record.args = {key: _safe_arg(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_safe_arg(value) for value in record.args)
        if not record.name.startswith("antam"):
            record.msg = scrub(str(record.msg))
        try:
            record.getMessage()
        except (TypeError, ValueError):
            record.msg, record.args = scrub(str(record.msg)), ()
        return True


class MalformedRequests(logging.Filter):
    """aiohttp's ERROR for a request it could not parse → one WARNING per ``every`` seconds.

    Anyone can send a 9 KB request line; that must not page an operator, nor fill the log.
    """

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self.last = float("-inf")
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0] if record.exc_info else None
        if record.name != "aiohttp.server" or kind is None or not issubclass(kind, BadHttpMessage):
            return True
        now = self.clock()
        if now - self.last < self.every:
            self.left_out += 1
            return False
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "refused a request that is not well-formed HTTP (e.g. a line over 8 KB) with 400; %d more since the last such line"
        record.args = (self.left_out,)
        self.last, self.left_out = now, 0
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the safe extra fields."""

    # Only fields whose values come from closed sets (an intent route can echo a forged payload).
    EXTRA = ("channel", "outcome", "error_type")

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.EXTRA:
            value = getattr(record, name, None)
            if value is not None:
                safe = name == "error_type" and isinstance(value, str) and value.isidentifier()
                data[name] = value if safe or value in SAFE_WORDS else REDACTED
        return json.dumps(data, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        error = getattr(record, "error_type", None)
        return f"{line} ({error})" if error else line


def quiet_libraries() -> None:
    """Keep libraries that log personal data or secrets at WARNING and above."""
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure(level: str, fmt: str = "text") -> None:
    """Send logs to stderr in ``fmt`` ("text" or "json"), through the privacy filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MalformedRequests())  # first: it reads the exception the privacy filter drops
    handler.addFilter(PrivacyFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_libraries()
