"""Reading submitted forms: bounded, typed, and never a traceback on malformed input."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDictProxy

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def form_of(request: web.Request) -> Form:
    try:
        return await request.post()
    except ValueError as exc:  # a malformed body
        raise web.HTTPBadRequest() from exc


def text(form: Form, name: str, *, limit: int = 200) -> str:
    """A text field, trimmed; anything that is not text, or longer than ``limit``, is a 400."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest()
    if len(value) > limit:
        raise web.HTTPBadRequest()
    return value.strip()


def secret(form: Form, name: str, *, limit: int = 1024) -> str:
    """A password field as typed (not trimmed: spaces may be part of it)."""
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise web.HTTPBadRequest()
    return value


def path_id(request: web.Request, name: str = "account_id") -> int:
    """A numeric id from the path; out of range is simply not found."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or len(raw) > 9:
        raise web.HTTPNotFound()
    return int(raw)
