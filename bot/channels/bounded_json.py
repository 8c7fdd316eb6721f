"""JSON from the outside, parsed within bounds: size, nesting depth, and numbers.

Python's ``json.loads`` recurses once per level of nesting (a body of 100,000 ``[`` raises
RecursionError), turns ``1e400`` into infinity, accepts ``NaN`` and ``Infinity``, and gives
integers of any length, which ``float()`` then refuses with OverflowError. Every body that
comes from a browser or a platform goes through :func:`loads` instead, which refuses all of
that with :class:`JsonError` (a ValueError, so callers answer 400) before or while parsing:

* the size is checked first;
* the nesting depth is measured without recursion (strings blanked with one regular
  expression, then a running sum over the brackets left) before ``json.loads`` sees the text;
* integers longer than 19 digits, non-finite floats and the NaN/Infinity constants are refused
  by the parser's own hooks;
* a lone surrogate (a ``\\ud800`` escape without its pair: no UTF-8 text can hold it, and
  hashing or storing it raises UnicodeEncodeError far from here) becomes U+FFFD.

:func:`top_level_fields` reads a few top-level string or integer fields without parsing the
rest, for a webhook whose signature covers values inside the body (Zalo): the signature can be
checked before the full parser runs. :func:`read_body` reads a whole request body up to a limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import accumulate
from typing import Any

from aiohttp import web

MAX_DEPTH = 32  # Telegram's deepest updates (a reply to a message with entities) need about 10
MAX_DIGITS = 19  # 64-bit integers; no client of ours sends longer ones
# A JSON string (possessive: no backtracking however long), and the four brackets.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
MAX_SAME_KEY = 16  # wanted keys with scalar values, at any level: more is not an event of Zalo's
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonError(ValueError):
    """The body is not JSON this service accepts (malformed, too large, too deep, odd numbers)."""


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it is longer than ``limit`` bytes.

    ``request.content.read(n)`` is not enough: it returns what has arrived so far, so a body
    that comes in several TCP segments would be cut.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError("not UTF-8") from exc


def depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (0 for a scalar), without recursion.

    Brackets inside strings do not count. For text that is not JSON the figure may be too
    high, never lower than how deep ``json.loads`` would get before failing.
    """
    outside = _STRING.sub("", text)
    if outside.count("[") + outside.count("{") <= 1:
        return outside.count("[") + outside.count("{")
    return max(0, max(accumulate(map(_STEP.__getitem__, _BRACKET.findall(outside))), default=0))


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise JsonError("number out of range")
    return int(text)


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonError("number out of range")
    return number


def _constant(text: str) -> Any:
    raise JsonError("NaN and Infinity are not JSON numbers")


def loads(raw: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` within bounds; JsonError for anything outside them or not JSON."""
    if len(raw) > max_bytes:
        raise JsonError("too large")
    text = _text(raw)
    if depth(text) > max_depth:
        raise JsonError("nested too deeply")
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except JsonError:
        raise
    except (ValueError, RecursionError) as exc:  # RecursionError cannot happen below max_depth; belt and braces
        raise JsonError("invalid JSON") from exc
    # The text itself holds no surrogate (strict UTF-8): only a \\uD800-\\uDFFF escape can make
    # one, and a pair of them is joined by the parser. Look only when there is such an escape.
    return _mend(value) if _SURROGATE_ESCAPE.search(text) else value


def _mend(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_mend(item) for item in value]
    if isinstance(value, dict):
        return {_mend(key): _mend(item) for key, item in value.items()}
    return value


@lru_cache(maxsize=8)
def _field_patterns(names: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(keep, pair): ``keep`` matches a wanted key with its scalar value, or any other string."""
    written = "|".join(re.escape(json.dumps(name)) for name in names)
    pair = rf'({written})\s*:\s*("(?:[^"\\]++|\\.)*+"|-?\d++(?![\d.eE]))'
    return re.compile(rf'({pair})|{_STRING.pattern}', re.DOTALL), re.compile(pair, re.DOTALL)


def _first_group(match: re.Match[str]) -> str:
    return match.group(1) or ""


def top_level_fields(raw: bytes, names: Iterable[str]) -> dict[str, str | int] | None:
    """The string or integer values of ``names`` at the top level of a JSON object body.

    No parse and no Python code per token, so a hostile body costs about what the C parser
    would: one regular-expression pass deletes every string except the wanted keys with their
    values (strings are consumed whole, so a key quoted inside a value is no key), and the
    nesting level of each wanted key is the count of brackets before it. Depth is not checked
    here (loads() does, once the signature matched). None when the body is not UTF-8, not an
    object, or has a wanted key more than once at the top level (which would count would be
    ambiguous), or more than MAX_SAME_KEY times at any level. A field whose value is neither a
    string nor an integer is left out. Keys are matched as written: an escaped key
    (``"app\\u005fid"``) is not found here; the caller compares with the full parse later.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.lstrip().startswith("{"):
        return None
    keep, pair = _field_patterns(tuple(names))
    reduced = keep.sub(_first_group, text)  # a function: faster than the template r"\1"
    found: dict[str, str | int] = {}
    level, position = 0, 0
    for number, match in enumerate(pair.finditer(reduced)):
        if number == MAX_SAME_KEY:
            return None
        before = reduced[position : match.start()]
        level += before.count("[") + before.count("{") - before.count("]") - before.count("}")
        position = match.end()
        if level != 1:
            continue
        try:
            name, value = json.loads(match.group(1)), json.loads(match.group(2), parse_int=_integer)
        except ValueError:
            return None
        if name in found:
            return None
        found[name] = value
    return found
