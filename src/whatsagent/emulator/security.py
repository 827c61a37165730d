"""The emulator on a developer's machine, safe from the web pages that developer opens.

The emulator's page API creates users and makes the local bot answer (with a real model key, at the
developer's cost), and its state holds every chat. So, for every request:

- `Host` must be a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``) or the host the emulator was
  started on, unless it was started on every interface (``--host 0.0.0.0``): a DNS-rebinding page that
  resolves its own name to 127.0.0.1 is refused.
- A state-changing request (anything but GET/HEAD/OPTIONS) that carries an `Origin` must come from the
  emulator's own origin: a foreign page's form or fetch is refused (browsers always send `Origin` on a
  cross-site POST; the bot and tests send none).
- The page API (``/api/...``) takes JSON only (multipart for a file upload), never the ``text/plain``
  or form bodies a page can send cross-site without a preflight.
- Media are served as attachments with ``X-Content-Type-Options: nosniff``: an uploaded HTML "document"
  is never rendered inline as the emulator's own page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_EVERY_INTERFACE = frozenset({"0.0.0.0", "::", ""})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BOUND_HOST = web.AppKey("whatsagent_emulator_bound_host", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bind(app: web.Application, host: str) -> None:
    """Record the host the emulator listens on (before the app starts)."""
    app[_BOUND_HOST] = host


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else host_header.lower()


def host_allowed(host_header: str | None, bound: str) -> bool:
    if bound in _EVERY_INTERFACE:
        return True
    name = _hostname(host_header or "")
    return name in LOOPBACK or name == bound.lower() or name == f"[{bound.lower()}]"


def _refuse(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    bound = request.app.get(_BOUND_HOST, "127.0.0.1")
    if not host_allowed(request.headers.get("Host"), bound):
        return _refuse(403, "this emulator answers only on loopback (start it with --host to serve another name)")
    if request.method not in _SAFE_METHODS:
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.headers.get('Host', '')}"
        if origin is not None and origin != own:
            return _refuse(403, "cross-origin requests are refused")
        if request.path.startswith("/api/"):
            kind = request.content_type
            upload = kind == "multipart/form-data" and request.path.endswith("/messages")
            if request.can_read_body and kind != "application/json" and not upload:
                return _refuse(415, "the page API takes application/json")
    response = await handler(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith("/api/media/") and response.status == 200:
        filename = _filename(response.headers.get("Content-Disposition", ""))
        response.headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(filename, safe='')}" if filename else "attachment"
        )
    return response


def _filename(disposition: str) -> str:
    _, _, rest = disposition.partition('filename="')
    return rest[:-1] if rest.endswith('"') else rest
