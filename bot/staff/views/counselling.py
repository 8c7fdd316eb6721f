"""The counsellor's page: going on and off duty, the queue, claiming, a live chat, handing over
and closing (issue #18; the rules are counselling/cases.py, carried out by bot/counselling.py).

Three ways to the same actions, so the page works on any phone:
- plain forms (POST /staff/counselling/act, then back to the page): no JavaScript needed;
- the WebSocket /staff/counselling/ws: same origin only, with the session's CSRF token in its
  URL; it sends the page every change ({"type": "case"|"message"|"duty"|"error"…});
- polling GET /staff/counselling/poll when a network blocks WebSockets (same events, as a list).

A counsellor sees a case's handle, commune, waiting time and urgent flag (what the person is told), and the
transcript only of a case they hold. Text from a person is always put into the page as text
(``textContent``; Jinja escapes the server-rendered page), never as markup.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from aiohttp_session import get_session

from bot.changes import lines_only
from bot.counselling import Desk, Snapshot
from bot.staff.auth import Viewer
from bot.staff.render import locale_of, render, see_other
from bot.staff.state import DESK, SERVICES
from counselling import handles
from handlers.services import referral_types
from handlers.types import ServiceName, TopicPart, TopicText
from counselling.cases import MAX_COUNSELLOR_CHARS, CaseView, Counsellor, Reason, Refused
from storage.counselling import COUNSELLOR_OUTCOMES

PAGE = "/staff/counselling"
MAX_SOCKET_MESSAGE = 16 * 1024
ACTIONS = ("claim", "send", "topic", "hotlines", "code", "handover", "close", "colleagues")


def counsellor(viewer: Viewer) -> Counsellor:
    scope = viewer.scope
    return Counsellor(viewer.account_id, viewer.username, scope.commune, scope.province, scope.everywhere)


def _commune_name(request: web.Request, code: int) -> str:
    commune = request.app[SERVICES].context.communes.get(code) if code else None
    return commune.label if commune is not None else ""


def case_event(request: web.Request, view: CaseView) -> dict[str, Any]:
    return {
        "type": "case",
        "case": view.handle,
        "state": view.state.value,
        "urgent": view.urgent,
        "mine": view.mine,
        "waiting": view.waiting_seconds,
        "commune": _commune_name(request, view.commune),
    }


def events(request: web.Request, snapshot: Snapshot, shown: dict[str, str]) -> list[dict[str, Any]]:
    """The events that bring a page showing ``shown`` (handle → "state/urgent/mine") up to date;
    ``shown`` is updated in place."""
    found: list[dict[str, Any]] = []
    now_seen = {}
    for view in snapshot.cases:
        event = case_event(request, view)
        key = f"{view.state.value}/{view.urgent}/{view.mine}"
        now_seen[view.handle] = key
        if shown.get(view.handle) != key:
            found.append(event)
    for handle in set(shown) - set(now_seen):
        found.append({"type": "case", "case": handle, "state": "closed", "urgent": False, "mine": False})
    shown.clear()
    shown.update(now_seen)
    for handle, lines in snapshot.lines.items():
        for line in lines:
            found.append(
                {"type": "message", "case": handle, "seq": line.seq, "from": line.sender.value, "text": line.text,
                 "at": line.at.isoformat()}
            )
    return found


def _reason_text(request: web.Request, reason: Reason) -> str:
    catalogs = request.app[SERVICES].renderer.catalogs
    return catalogs.text(locale_of(request), f"staff.counselling.refused.{reason.value}")


def _notice(request: web.Request, handle: str, key: str) -> dict[str, Any]:
    """Done, but not as asked (the person cannot be reached now, no code could be given)."""
    text = request.app[SERVICES].renderer.catalogs.text(locale_of(request), f"staff.counselling.{key}")
    return {"type": "notice", "case": handle, "key": key, "text": text}


async def _act(request: web.Request, viewer: Viewer, values: dict[str, str]) -> dict[str, Any]:
    """Carry out one action; what to tell the page (an event, or an error)."""
    desk: Desk = request.app[DESK]
    who = counsellor(viewer)
    kind, handle = values.get("type", ""), values.get("case", "").strip().upper()
    if kind not in ACTIONS or not handles.is_handle(handle):
        return {"type": "error", "reason": "bad_request", "text": _reason_text(request, Reason.NOT_FOUND)}
    try:
        if kind == "claim":
            await desk.claim(who, handle)
        elif kind == "send":
            text = values.get("text", "")
            if len(text) > MAX_COUNSELLOR_CHARS * 2:
                raise Refused(Reason.TOO_LONG)
            if not await desk.send(who, handle, text):
                return _notice(request, handle, "unreachable")
        elif kind in ("topic", "hotlines"):
            topic = values.get("topic", "") if kind == "topic" else None
            if topic is not None and (not topic or len(topic) > 64):
                raise Refused(Reason.NOT_FOUND)
            if not await desk.send_content(who, handle, topic=topic):
                return _notice(request, handle, "unreachable")
        elif kind == "code":
            service_id, _, code_kind = values.get("choice", "").partition(":")
            if not service_id or not code_kind or len(service_id) > 64:
                raise Refused(Reason.NOT_FOUND)
            why = await desk.issue_code(who, handle, service_id, code_kind)
            if why is not None:
                return _notice(request, handle, "no_code")
        elif kind == "handover":
            target = values.get("to", "")
            if not target.isdigit() or len(target) > 12:
                raise Refused(Reason.BAD_TARGET)
            await desk.hand_over(who, handle, int(target))
        elif kind == "close":
            await desk.close(who, handle, values.get("outcome", ""))
        else:
            found = await desk.colleagues(who, handle)
            return {"type": "colleagues", "case": handle, "list": [{"id": i, "name": name} for i, name in found]}
    except Refused as refused:
        return {"type": "error", "case": handle, "reason": refused.reason.value, "text": _reason_text(request, refused.reason)}
    return {"type": "done", "case": handle, "action": kind}


async def page(request: web.Request, viewer: Viewer) -> web.Response:
    desk: Desk = request.app[DESK]
    snapshot = await desk.snapshot(counsellor(viewer), {})
    selected = request.query.get("case", "").upper()
    mine = [view for view in snapshot.cases if view.mine]
    waiting = [view for view in snapshot.cases if not view.mine]
    held = next((view for view in mine if view.handle == selected), mine[0] if mine else None)
    colleagues: list[tuple[int, str]] = []
    if held is not None:
        try:
            colleagues = await desk.colleagues(counsellor(viewer), held.handle)
        except Refused:  # the case ended or went to a colleague since the snapshot: the page's script leaves it
            colleagues = []
    notice = request.query.get("notice", "")
    context = {
        "on_duty": snapshot.on_duty,
        "mine": [case_event(request, view) for view in mine],
        "waiting": [case_event(request, view) for view in waiting],
        "held": case_event(request, held) if held is not None else None,
        "lines": snapshot.lines.get(held.handle, []) if held is not None else [],
        "colleagues": colleagues,
        "outcomes": [outcome.value for outcome in COUNSELLOR_OUTCOMES],
        "notice": notice if notice in {r.value for r in Reason} | {"unreachable", "done", "no_code"} else "",
        "max_chars": MAX_COUNSELLOR_CHARS,
        "topics": _topics(request),
        "code_choices": _code_choices(request, held, locale_of(request)) if held is not None else [],
    }
    return await render(request, "counselling.html", context)


def _topics(request: web.Request) -> list[tuple[str, str]]:
    """The content pack's topics a counsellor can send, by title in the page's language."""
    services = request.app[SERVICES]
    locale = locale_of(request)
    titles = [(topic, services.renderer.text(TopicText(topic, TopicPart.TITLE), locale)) for topic in services.context.pack.topics]
    return sorted(titles, key=lambda item: item[1])


def _code_choices(request: web.Request, held: CaseView, locale: str) -> list[tuple[str, str]]:
    """The places of the case's commune a referral code can name: ("service:kind", label)."""
    services = request.app[SERVICES]
    commune = services.context.communes.get(held.commune) if held.commune else None
    if commune is None:
        return []
    catalogs, renderer = services.renderer.catalogs, services.renderer
    choices = []
    for service in services.context.pack.services_for(commune.code, commune.province_code):
        for kind in referral_types(service):
            label = f"{catalogs.text(locale, f'service_type.{kind}')} — {renderer.text(ServiceName(service.id), locale)}"
            choices.append((f"{service.id}:{kind}", label))
    return choices


async def duty(request: web.Request, viewer: Viewer) -> web.Response:
    form = await request.post()
    desk: Desk = request.app[DESK]
    if form.get("on") == "1":
        await desk.on_duty(counsellor(viewer))
    else:
        await desk.off_duty(counsellor(viewer))
    return see_other(PAGE)


async def act(request: web.Request, viewer: Viewer) -> web.Response:
    form = await request.post()
    values = {key: value for key, value in form.items() if isinstance(value, str) and key != "csrf"}
    result = await _act(request, viewer, values)
    if "application/json" in request.headers.get("Accept", ""):
        status = 200 if result["type"] != "error" else (404 if result.get("reason") in ("not_found", "bad_request") else 409)
        return web.json_response(result, status=status)
    handle = str(result.get("case", ""))
    if result["type"] in ("done", "colleagues"):
        query = f"?case={handle}" if values.get("type") in ("claim", "send", "topic", "hotlines", "code", "colleagues") else ""
    else:
        notice = result.get("reason") or result.get("key") or ""
        query = f"?case={handle}&notice={notice}" if handles.is_handle(handle) else f"?notice={notice}"
    return see_other(PAGE + query)


def _seen(raw: str) -> dict[str, int]:
    """"K7Q2:3,M9XA:5" → {"K7Q2": 3, "M9XA": 5}; anything malformed is left out."""
    seen = {}
    for part in raw.split(",")[:50]:
        handle, _, seq = part.partition(":")
        if handles.is_handle(handle.upper()) and seq.isdigit() and len(seq) < 10:
            seen[handle.upper()] = int(seq)
    return seen


async def poll(request: web.Request, viewer: Viewer) -> web.Response:
    """Everything the page shows, as events, for pages that cannot hold a WebSocket."""
    desk: Desk = request.app[DESK]
    snapshot = await desk.snapshot(counsellor(viewer), _seen(request.query.get("seen", "")))
    found = [{"type": "duty", "on": snapshot.on_duty}, *events(request, snapshot, {})]
    return web.json_response({"events": found}, headers={"Cache-Control": "no-store"})


def _same_origin(request: web.Request) -> bool:
    """The page that opens the socket is this server's (behind a proxy the scheme may differ)."""
    origin = urlsplit(request.headers.get("Origin", ""))
    return origin.scheme in ("http", "https") and origin.netloc == request.host and not origin.path


async def socket(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The live chat: same origin, the session's CSRF token in the URL, then events both ways."""
    session = await get_session(request)
    token, given = session.get("csrf"), request.query.get("csrf", "")
    if not isinstance(token, str) or not token or not hmac.compare_digest(token.encode(), given.encode()):
        raise web.HTTPForbidden()
    if not _same_origin(request):
        raise web.HTTPForbidden()
    ws = web.WebSocketResponse(max_msg_size=MAX_SOCKET_MESSAGE, heartbeat=30.0)
    await ws.prepare(request)
    desk: Desk = request.app[DESK]
    who = counsellor(viewer)
    shown: dict[str, str] = {}
    seen: dict[str, int] = {}
    duty: bool | None = None
    incoming: asyncio.Task[Any] = asyncio.ensure_future(ws.receive())
    # Subscribed before the first read: a change while reading or sending wakes the wait below.
    changes = desk.changes.subscribe()
    try:
        while not ws.closed:
            snapshot = await desk.snapshot(who, seen)
            if snapshot.on_duty != duty:
                duty = snapshot.on_duty
                await ws.send_json({"type": "duty", "on": duty})
            for event in events(request, snapshot, shown):
                if event["type"] == "message":
                    seen[event["case"]] = max(seen.get(event["case"], 0), event["seq"])
                await ws.send_json(event)
            for handle in list(seen):
                if handle not in shown:
                    seen.pop(handle)
            held = {view.case_id for view in snapshot.cases if view.mine}
            while True:
                changed = asyncio.ensure_future(changes.changes())
                done, _ = await asyncio.wait({incoming, changed}, return_when=asyncio.FIRST_COMPLETED)
                if incoming in done:
                    changed.cancel()
                    break
                notes = changed.result()
                grown = lines_only(notes) if notes else None
                if grown is None or grown & held:
                    break  # something of this page's may have changed (or the refresh is due)
                # Only transcripts of chats other counsellors hold grew: nothing to read.
            if incoming in done:
                message = incoming.result()
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                await ws.send_json(await _from_page(request, viewer, message))
                incoming = asyncio.ensure_future(ws.receive())
    finally:
        incoming.cancel()
        await ws.close()
    return ws


async def _from_page(request: web.Request, viewer: Viewer, message: Any) -> dict[str, Any]:
    if message.type is not WSMsgType.TEXT:
        return {"type": "error", "reason": "bad_request", "text": _reason_text(request, Reason.NOT_FOUND)}
    try:
        data = json.loads(message.data)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in data.values()):
        return {"type": "error", "reason": "bad_request", "text": _reason_text(request, Reason.NOT_FOUND)}
    return await _act(request, viewer, {str(k): str(v) for k, v in data.items()})
