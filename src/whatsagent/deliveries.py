"""Delivery status, per conversation: what the bot sent and what became of it.

    GET /conversations/{channel}/{user}/deliveries?limit=50

Each message the bot stored (newest first) with its `status` on the bot's side (pending, sent, failed,
parked) and its `delivery` from WhatsApp's status webhooks (sent, delivered, read, failed, with the
code and reason), and `turn_error` when the turn behind it was set aside (a poison turn: why). Behind
the operator token, like the rest of the operator API.

`channel` is the channel's name: ``cloudapi:<phone number id>`` (e.g. ``cloudapi:100200300``) or
``twilio:<sender number>`` unless the channel was given ``name=...``; an unknown one answers 404 with the
names this bot serves. `user` is the user's number (any format) or business-scoped id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from whatsagent import outbox
from whatsagent.inbox import conversation_key
from whatsagent.proactive import authorized, user_for
from whatsagent.store.database import Database

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

MAX_LIMIT = 1000


def delivery_routes(
    db_of: Callable[[], Database | None], token: str | None, channels: Collection[str] | None = None
) -> list[BaseRoute]:
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def handle(request: Request) -> Response:
        refused = authorized(request, token, "delivery status")
        if refused is not None:
            return refused
        name = request.path_params["channel"]
        if channels is not None and name not in channels:
            known = ", ".join(sorted(channels))
            return JSONResponse({"error": f"no channel named {name!r}; this bot serves {known}"}, status_code=404)
        db = db_of()
        if db is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        try:
            user = user_for(request.path_params["user"])
            limit = min(MAX_LIMIT, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        conversation = conversation_key(request.path_params["channel"], user.key)
        rows = await db.read(lambda conn: outbox.deliveries(conn, conversation, limit))
        return JSONResponse({"conversation": conversation, "messages": rows})

    return [
        Route("/conversations/{channel}/{user}/deliveries", handle, methods=["GET"], name="conversation_deliveries")
    ]
