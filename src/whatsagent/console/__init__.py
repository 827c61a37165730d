"""The operator console at ``/console``: every conversation, live, with human handoff.

One static page (HTML, JS, CSS; no build step) over the operator API (`whatsagent.operator_api`). It is
off (404) unless an operator token is set (``AgentOS(api_token=...)`` or ``WHATSAGENT_API_TOKEN``), or
``console=False`` turns it off. The token is typed into the page (kept in the tab's sessionStorage, never
in a URL) and sent as a bearer token with every call; a wrong one gets 401 from the API.

`demo_token`: the demo (on loopback only) fills the token in for whoever opens the page from this
machine, so a newcomer is one click from the chat page to the console.
"""

from __future__ import annotations

import html
import ipaddress
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

FILES = {"console.js": "text/javascript", "console.css": "text/css"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _loopback(request: Request) -> bool:
    """From this machine, and to a loopback name: a DNS-rebinding page (another name resolving to
    127.0.0.1) sends its own Host, so it never gets the demo's token."""
    client = request.client.host if request.client else ""
    host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]") if request.headers.get("host") else ""
    try:
        from_here = ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False
    if host == "localhost":
        return from_here
    try:
        return from_here and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def console_routes(token: str | None, enabled: bool | None = None, *, demo_token: bool = False) -> list[BaseRoute]:
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    def off() -> Response:
        return PlainTextResponse("Not Found", status_code=404)

    async def page(request: Request) -> Response:
        if not token or enabled is False:
            return off()
        body = _static("index.html")
        given = token if demo_token and _loopback(request) else ""
        body = body.replace("{{demo_token}}", html.escape(given, quote=True))
        return Response(body, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if not token or enabled is False or name not in FILES:
            return off()
        return Response(_static(name), media_type=FILES[name], headers=SECURITY_HEADERS)

    return [
        Route("/console", page, methods=["GET"], name="console"),
        Route("/console/{name}", asset, methods=["GET"], name="console_asset"),
    ]
