"""Every /staff response: strict security headers, and errors as plain pages, never a traceback."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.staff.auth import CsrfError
from bot.staff.render import base_context, locale_of
from bot.staff.sessions import secure_cookies
from bot.staff.state import SERVICES

log = logging.getLogger("antam.staff")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HSTS = "max-age=31536000"
# Status → the catalog key of its page's explanation.
ERROR_PAGES = {
    400: "bad_request", 403: "forbidden", 404: "not_found", 405: "not_allowed", 413: "too_large", 429: "too_many",
}


def _apply(headers: "web.StreamResponse | web.HTTPException", *, secure: bool) -> None:
    headers.headers.update(SECURITY_HEADERS)
    # Pages and redirects are never cached; static files say otherwise themselves.
    headers.headers.setdefault("Cache-Control", "no-store")
    if secure:
        headers.headers["Strict-Transport-Security"] = HSTS


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost layer: headers on everything, even on a failure below the error pages."""
    secure = secure_cookies(request.app[SERVICES].settings)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects raised by views and guards
        _apply(exc, secure=secure)
        raise
    except Exception as exc:
        log.error("staff app: %s below the error pages", type(exc).__name__)
        response = web.Response(status=500, text="500", content_type="text/plain")
    _apply(response, secure=secure)
    return response


async def error_page(request: web.Request, status: int, *, key: str | None = None) -> web.Response:
    """A short page in the chosen language that says what went wrong and where to go."""
    name = key or ERROR_PAGES.get(status, "server_error" if status >= 500 else "bad_request")
    try:
        context = await base_context(request, new_token=False)
        context.update({"status": status, "error": name})
        response = await _render_error(request, context, status)
    except Exception as exc:  # the error page itself failed: say so plainly, still no traceback
        log.error("staff app: error page failed with %s", type(exc).__name__)
        text = "Đã có lỗi. / Something went wrong." if locale_of(request) == "vi" else "Something went wrong."
        response = web.Response(status=status, text=text, content_type="text/plain")
    return response


async def _render_error(request: web.Request, context: dict[str, object], status: int) -> web.Response:
    import aiohttp_jinja2  # local: only error pages need the renderer here

    return aiohttp_jinja2.render_template("error.html", request, context, status=status)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404 and request.path == "/staff":
            raise web.HTTPPermanentRedirect("/staff/") from None
        response = await error_page(request, exc.status, key="csrf" if isinstance(exc, CsrfError) else None)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception as exc:
        # The type only: an exception's text may hold values from the request.
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
        log.error("staff app: %s in %s %s", type(exc).__name__, request.method, route)
        return await error_page(request, 500)
