"""Logging set-up: plain text or JSON lines, and personal data kept out by construction.

An Tâm's own log lines never name a person (DESIGN §3.9), but a guarantee must not rest on
every future log call being careful. So every record passes a filter before it is written:

* arguments are kept only when they are numbers or words from a closed list (channel names,
  outcomes); any other string argument becomes "[…]";
* an exception is written as its type only — never its message or traceback, which can quote
  values (an SQL statement's parameters, a URL with a token);
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
from typing import Any

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
SAFE_WORDS = frozenset(
    {"telegram", "zalo", "web", "console", "test", "answered", "duplicate", "group", "error", "database",
     "sqlite", "postgresql", "runtime", "maintenance", "webhook", "polling", "vi", "en"}
)
REDACTED = "[…]"
_SCRUB = (
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"),  # IPv4 address (and port)
    re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b"),  # IPv6 address
    re.compile(r"\d{6,}"),  # chat ids, phone numbers, long numbers
    re.compile(r"bot\d+:[\w-]+"),  # a Telegram bot token in a URL
    re.compile(r"[A-Za-z0-9_\-]{24,}"),  # tokens, keys, session ids, hashes
    re.compile(r"'[^']*'|\"[^\"]*\""),  # anything quoted
)


def _safe_arg(value: object) -> object:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and value in SAFE_WORDS:
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
    handler.addFilter(PrivacyFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_libraries()
