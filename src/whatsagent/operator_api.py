"""The operator API: every conversation, what happened in it, and the human handoff (JSON, bearer token).

    GET  /operator/conversations?q=ana&channel=...&reveal=1     the list, newest activity first
    GET  /operator/conversations/{id}?reveal=1                  one conversation: transcript, turns, outbox
    POST /operator/conversations/{id}/takeover                  the bot stops answering it
    POST /operator/conversations/{id}/reply      {"text": ...}  (or {"template", "params", "language"})
    POST /operator/conversations/{id}/hand-back                 the bot answers again
    POST /operator/conversations/{id}/seen                      marks it read
    GET  /operator/conversations/{id}/memories                  the user's memories
    PATCH/DELETE /operator/conversations/{id}/memories/{mid}    edit or erase one; DELETE .../memories: all
    POST /operator/outbox/{row}/retry | /discard                failed and parked messages
    GET  /operator/events                                       live changes (server-sent events)

and the older endpoints:

    GET/DELETE /memories/{agent}/{user}                         a user's memories (`whatsagent.agents.memory`)
    POST /messages/template                                     a proactive template (`whatsagent.proactive`)
    GET  /conversations/{channel}/{user}/deliveries?limit=50    what became of the bot's messages
    DELETE /users/{user}                                        erase a user (`whatsagent.lifecycle`)

Every route of the operator API is here, behind one check (`authorized`): off (404) unless an operator
token is set; every call carries ``Authorization: Bearer <token>`` (wrong or missing: 401). Every write
under ``/operator/`` also checks ``Origin`` when a browser sends one: a page of another origin is refused
(403). ``X-Operator: <name>`` says who acts (recorded in `operator_actions`). Numbers are masked unless
``?reveal=1``. The data the routes show and change is read and written by each table's owner. Documented
in docs/operator-api.md.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from whatsagent import conversations, handoff, inbox, outbox, tracing, turns
from whatsagent.agents import memory
from whatsagent.conversations import ConversationMode, conversation_key
from whatsagent.lifecycle import erase_user
from whatsagent.messages.outbound import TemplateOut, outbound_adapter
from whatsagent.outbox import OutboxState
from whatsagent.proactive import TemplateRequest, send_template, user_for
from whatsagent.sender import Outcome
from whatsagent.store.database import Connection, Database
from whatsagent.turns import TurnState
from whatsagent.window import WINDOW_SECONDS as DAY

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import BaseRoute

    from whatsagent.channels.base import Channel
    from whatsagent.events import Bus
    from whatsagent.media.store import MediaStore
    from whatsagent.sender import Sender

LIST_LIMIT = 200
STREAM_SECONDS = 25.0
TRANSCRIPT_LIMIT = 500
MAX_DELIVERIES = 1000


def authorized(request: Request, token: str | None, what: str) -> JSONResponse | None:
    """None when the request carries the operator token; else the response refusing it (404 while no
    token is set: the API is off; 401 for a missing or wrong one, compared in constant time)."""
    from starlette.responses import JSONResponse

    if not token:
        return JSONResponse({"error": f"the {what} API is off: set WHATSAGENT_API_TOKEN"}, status_code=404)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
    return None


def mask(value: str | None) -> str | None:
    """A number or id with only its last four characters."""
    if not value:
        return value
    return "…" + value[-4:] if len(value) > 4 else "…"


def _status(mode: str, window_closed: bool, failed: bool) -> str:
    if mode != ConversationMode.BOT:
        return mode
    if failed:
        return TurnState.FAILED
    return "window closed" if window_closed else ConversationMode.BOT


class Ids:
    """Opaque conversation ids (a key holds the user's number) and back."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self._keys: dict[str, str] = {}

    def of(self, key: str) -> str:
        found = handoff.conversation_id(key, self.secret)
        self._keys[found] = key
        return found

    async def key(self, db: Database, conversation_id: str) -> str | None:
        if conversation_id not in self._keys:
            for key in await db.read(conversations.keys):
                self.of(key)
        return self._keys.get(conversation_id)


def _preview(raw: str, outbound: bool) -> str:
    try:
        if outbound:
            message = outbound_adapter.validate_json(raw)
            return message.said or f"[{message.kind}]"
        from whatsagent.messages import Text, inbound_adapter

        parsed = inbound_adapter.validate_json(raw)
        return parsed.body if isinstance(parsed, Text) else parsed.describe()
    except Exception:
        return "[unreadable]"


def deliveries(conn: Connection, conversation: str, limit: int) -> list[dict[str, Any]]:
    """What became of the conversation's latest messages, newest first (`outbox.deliveries`); `turn_error`
    says why the turn that wrote a message was set aside (the apology of a poison turn), if it was."""
    rows: list[dict[str, Any]] = outbox.deliveries(conn, conversation, limit)
    errors = turns.errors(conn, {r["turn_id"] for r in rows if r["turn_id"] is not None})
    for row in rows:
        row["turn_error"] = errors.get(row["turn_id"])
    return rows


def list_conversations(
    ids: Ids, q: str | None, channel: str | None, reveal: bool
) -> Callable[[Connection], list[dict[str, Any]]]:
    def op(conn: Connection) -> list[dict[str, Any]]:
        now = time.time()
        found = []
        for conv in conversations.search(conn, q, channel, LIST_LIMIT):
            key, mode, last_in, closed_at, seen = (
                conv["key"],
                conv["mode"],
                conv["last_inbound_at"],
                conv["window_closed_at"],
                conv["seen_at"],
            )
            last = inbox.last_received(conn, key)
            sent = outbox.last_of(conn, key)
            last_message = None
            if last is not None and (sent is None or last[1] >= sent[1]):
                last_message = {"direction": "in", "text": _preview(last[0], False), "at": last[1]}
            elif sent is not None:
                last_message = {"direction": "out", "text": _preview(sent[0], True), "at": sent[1], "status": sent[2]}
            failed = bool(turns.failed_since(conn, key, seen or 0)) or (
                sent is not None and sent[2] == OutboxState.FAILED
            )
            window_closed = (closed_at is not None and closed_at >= last_in) or now - last_in > DAY
            found.append(
                {
                    "id": ids.of(key),
                    "channel": conv["channel"],
                    "number": conv["wa_id"] if reveal else mask(conv["wa_id"]),
                    "username": conv["user_id"] if reveal else mask(conv["user_id"]),
                    "name": conv["user_name"],
                    "mode": mode,
                    "mode_reason": conv["mode_reason"],
                    "status": _status(mode, window_closed, failed),
                    "unread": inbox.received_since(conn, key, seen or 0),
                    "last_message": last_message,
                    "last_activity": max(last_in, last_message["at"] if last_message else 0),
                }
            )
        found.sort(key=lambda c: c["last_activity"], reverse=True)
        return found

    return op


def transcript(key: str, ids: Ids, reveal: bool) -> Callable[[Connection], dict[str, Any] | None]:
    def op(conn: Connection) -> dict[str, Any] | None:
        conv = conversations.row(conn, key)
        if conv is None:
            return None
        from whatsagent.messages import inbound_adapter

        inbound = []
        for seq, payload, received_at, turn_id in inbox.of_conversation(conn, key, TRANSCRIPT_LIMIT):
            message = inbound_adapter.validate_json(payload)
            inbound.append(
                {
                    "seq": seq,
                    "id": message.id,
                    "kind": message.kind,
                    "text": _preview(payload, False),
                    "message": message.model_dump(mode="json", exclude_defaults=True, exclude={"user"}),
                    "at": received_at,
                    "turn_id": turn_id,
                }
            )
        outbound = deliveries(conn, key, TRANSCRIPT_LIMIT)
        for row in outbound:
            shown: Any = row["message"]
            row["text"] = shown.get("body") or shown.get("caption") or f"[{row['kind']}]"
        out_ids = outbox.ids_by_key(conn, key)
        for row in outbound:
            row["id"] = out_ids.get(str(row["key"]))
        turn_rows = turns.of_conversation(conn, key, TRANSCRIPT_LIMIT)
        spans = tracing.spans_by_turn(conn, [t["id"] for t in turn_rows])
        turn_list = [
            {
                "id": t["id"],
                "status": t["status"],
                "attempts": t["attempts"],
                "error": t["error"],
                "messages": [m["id"] for m in inbound if m["turn_id"] == t["id"]],
                "outbox": [r["id"] for r in outbound if r["turn_id"] == t["id"]],
                "created_at": t["created_at"],
                "updated_at": t["updated_at"],
                "spans": spans.get(t["id"], []),
            }
            for t in turn_rows
        ]
        return {
            "id": ids.of(key),
            "channel": conv["channel"],
            "number": conv["wa_id"] if reveal else mask(conv["wa_id"]),
            "username": conv["user_id"] if reveal else mask(conv["user_id"]),
            "name": conv["user_name"],
            "mode": conv["mode"],
            "mode_reason": conv["mode_reason"],
            "last_inbound_at": conv["last_inbound_at"],
            "window_open": time.time() - conv["last_inbound_at"] < DAY
            and not (conv["window_closed_at"] is not None and conv["window_closed_at"] >= conv["last_inbound_at"]),
            "inbound": inbound,
            "outbound": outbound,
            "turns": turn_list,
            "actions": handoff.actions(conn, key, TRANSCRIPT_LIMIT),
        }

    return op


def operator_routes(
    *,
    db_of: Callable[[], Database | None],
    desk_of: Callable[[], handoff.Desk | None],
    sender_of: Callable[[], Sender | None],
    media_of: Callable[[], MediaStore | None],
    bus: Bus,
    token: str | None,
    channels: Sequence[Channel],
    agents_by_channel: Mapping[str, str],
) -> list[BaseRoute]:
    """Every route of the operator API (see the module docstring). `agents_by_channel`: the name of the
    agent serving each channel."""
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    ids = Ids(token)
    channel_names = [c.name for c in channels]
    agent_names = set(agents_by_channel.values())

    def who(request: Request) -> str:
        return (request.headers.get("x-operator") or "operator").strip()[:255] or "operator"

    def foreign_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return False
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return origin.rstrip("/") != own

    async def guard(request: Request, write: bool) -> Response | tuple[Database, str | None]:
        refused = authorized(request, token, "operator")
        if refused is not None:
            return refused
        if write and foreign_origin(request):
            return JSONResponse({"error": "refused: this request comes from another site's page"}, status_code=403)
        db = db_of()
        if db is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        conversation = request.path_params.get("id")
        if conversation is None:
            return db, None
        key = await ids.key(db, conversation)
        if key is None:
            return JSONResponse({"error": "no such conversation"}, status_code=404)
        return db, key

    def reveal(request: Request) -> bool:
        return request.query_params.get("reveal") in ("1", "true", "yes")

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        found = json.loads(raw)
        if not isinstance(found, dict):
            raise ValueError("the body must be a JSON object")
        return found

    async def list_view(request: Request) -> Response:
        checked = await guard(request, False)
        if not isinstance(checked, tuple):
            return checked
        db, _ = checked
        q, channel = request.query_params.get("q"), request.query_params.get("channel")
        found = await db.read(list_conversations(ids, q, channel, reveal(request)))
        return JSONResponse({"conversations": found, "channels": sorted(channel_names)})

    async def one(request: Request) -> Response:
        checked = await guard(request, False)
        if not isinstance(checked, tuple):
            return checked
        db, key = checked
        assert key is not None
        found = await db.read(transcript(key, ids, reveal(request)))
        return JSONResponse(found) if found else JSONResponse({"error": "no such conversation"}, status_code=404)

    async def act(request: Request) -> Response:
        checked = await guard(request, True)
        if not isinstance(checked, tuple):
            return checked
        db, key = checked
        assert key is not None
        action = request.path_params["action"]
        desk = desk_of()
        if action == "seen":
            await db.write(conversations.mark_seen(key))
            bus.publish(key)
            return JSONResponse({"seen": True})
        if desk is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        if action == "takeover":
            free = await desk.takeover(key, who(request))
            return JSONResponse({"mode": ConversationMode.HUMAN, "bot_turn_running": not free})
        if action == "hand-back":
            free = await desk.hand_back(key, who(request))
            return JSONResponse({"mode": ConversationMode.BOT, "bot_turn_running": not free})
        if action == "reply":
            try:
                given = await body(request)
                template = None
                if given.get("template"):
                    template = TemplateOut(
                        name=str(given["template"]),
                        language=str(given.get("language") or "en_US"),
                        params=tuple(str(p) for p in given.get("params") or ()),
                    )
                text = str(given.get("text") or "").strip()
                if template is None and not text:
                    raise ValueError("give a text (or a template)")
            except (ValueError, ValidationError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            try:
                outcome, detail = await desk.reply(key, who(request), text=text or None, template=template)
            except handoff.NotTakenOver as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            status = 422 if outcome is Outcome.FAILED else 200
            return JSONResponse({"status": outcome.value, **detail}, status_code=status)
        return JSONResponse({"error": f"no action {action!r}"}, status_code=404)

    async def memories(request: Request) -> Response:
        checked = await guard(request, request.method != "GET")
        if not isinstance(checked, tuple):
            return checked
        db, key = checked
        assert key is not None
        channel = key.rpartition("|")[0]
        agent = agents_by_channel.get(channel)
        if agent is None:
            return JSONResponse({"error": "no agent serves this conversation"}, status_code=404)
        user = memory.user_ref(key.rpartition("|")[2])
        mid = request.path_params.get("mid")
        if request.method == "DELETE":
            if mid is None:
                erased = await db.write(memory.forget(agent, user))
            else:
                erased = len((await db.write(memory.apply(agent, user, remove=[int(mid)]))).deleted)
            await db.write(lambda conn: handoff.record(conn, key, who(request), "erase_memory", mid or "all"))
            return JSONResponse({"erased": erased})
        if request.method == "PATCH" and mid is not None:
            try:
                fact = str((await body(request)).get("fact") or "").strip()
                if not fact:
                    raise ValueError("give the fact's new text")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            changed = await db.write(memory.apply(agent, user, update={int(mid): fact}, source="operator"))
            await db.write(lambda conn: handoff.record(conn, key, who(request), "edit_memory", f"{mid}: {fact}"))
            return JSONResponse({"updated": len(changed.updated)})
        facts = await db.read(lambda conn: memory.load(conn, agent, user))
        return JSONResponse(
            {"agent": agent, "memories": [{"id": m.id, "fact": m.fact, "source": m.source} for m in facts]}
        )

    async def outbox_action(request: Request) -> Response:
        checked = await guard(request, True)
        if not isinstance(checked, tuple):
            return checked
        db, _ = checked
        sender = sender_of()
        if sender is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        try:
            row_id = int(request.path_params["row"])
        except ValueError:
            return JSONResponse({"error": "no such message"}, status_code=404)
        found = await db.read(lambda conn: outbox.by_id(conn, row_id))
        if found is None:
            return JSONResponse({"error": "no such message"}, status_code=404)
        row, key, status = found
        if status not in (OutboxState.FAILED, OutboxState.PARKED):
            return JSONResponse({"error": f"the message is {status}: only failed or parked ones"}, status_code=409)
        action = request.path_params["action"]
        if action == "discard":
            await db.write(outbox.reopen(row_id, OutboxState.DISCARDED))
            await db.write(lambda conn: handoff.record(conn, key, who(request), "discard", str(row_id)))
            bus.publish(key)
            return JSONResponse({"status": OutboxState.DISCARDED})
        if action != "retry":
            return JSONResponse({"error": f"no action {action!r}"}, status_code=404)
        desk = desk_of()
        conv = await desk.find(key) if desk is not None else None
        channel = sender.channels.get(conv.channel) if conv is not None else None
        if conv is None or channel is None:
            return JSONResponse({"error": "the message's channel is not served here"}, status_code=404)
        await db.write(outbox.reopen(row_id, OutboxState.PENDING))
        await db.write(lambda conn: handoff.record(conn, key, who(request), "retry", str(row_id)))
        outcome = await sender.deliver_row(channel, conv.user, row, conversation=key, deadline=30.0)
        bus.publish(key)
        return JSONResponse({"status": outcome.value}, status_code=422 if outcome is Outcome.FAILED else 200)

    async def events(request: Request) -> Response:
        refused = authorized(request, token, "operator")
        if refused is not None:
            return refused

        async def stream() -> Any:
            # A stream ends after STREAM_SECONDS and the page reconnects at once: a server shutting down
            # (which waits for open responses) is never held up for long by an open console.
            ends = time.monotonic() + STREAM_SECONDS
            async with bus.subscribe() as queue:
                yield "event: ready\ndata: {}\n\n"
                while (left := ends - time.monotonic()) > 0:
                    try:
                        key = await asyncio.wait_for(queue.get(), min(left, 10))
                    except TimeoutError:
                        yield ": keep-alive\n\n"  # also notices a viewer that left
                        continue
                    changed = "*" if key == "*" else ids.of(key)
                    yield f"data: {json.dumps({'conversation': changed})}\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    # -- the older endpoints: bearer token only -------------------------------------------------------

    async def started(request: Request, what: str) -> JSONResponse | Database:
        """The store, once the operator token is checked and whatsagent has started (the older endpoints:
        bearer token only, no Origin check)."""
        refused = authorized(request, token, what)
        if refused is not None:
            return refused
        db = db_of()
        return JSONResponse({"error": "whatsagent is starting"}, status_code=503) if db is None else db

    async def user_memories(request: Request) -> Response:
        db = await started(request, "memory")
        if isinstance(db, JSONResponse):
            return db
        agent = request.path_params["agent"]
        if agent not in agent_names:
            known = ", ".join(sorted(agent_names))
            return JSONResponse({"error": f"no agent named {agent!r}; this bot serves {known}"}, status_code=404)
        user = memory.user_ref(request.path_params["user"])
        if request.method == "DELETE":
            erased = await db.write(memory.forget(agent, user))
            return JSONResponse({"erased": erased})
        facts = await db.read(lambda conn: memory.load(conn, agent, user))
        return JSONResponse(
            {
                "agent": agent,
                "memories": [
                    {"id": m.id, "fact": m.fact, "source": m.source, "created_at": m.created_at} for m in facts
                ],
            }
        )

    async def template(request: Request) -> Response:
        refused = authorized(request, token, "messages")
        if refused is not None:
            return refused
        try:
            given = TemplateRequest.model_validate_json(await request.body())
            to = user_for(given.to)
        except (ValidationError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if given.channel is None and len(channels) > 1:
            names = ", ".join(c.name for c in channels)
            return JSONResponse({"error": f"several channels serve this OS: name one ({names})"}, status_code=400)
        channel = next((c for c in channels if given.channel in (None, c.name)), None)
        if channel is None:
            return JSONResponse({"error": f"no channel named {given.channel!r}"}, status_code=404)
        sender = sender_of()
        if sender is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        try:
            message = TemplateOut(
                name=given.template,
                language=given.language,
                params=tuple(given.params),
                components=tuple(given.components),  # type: ignore[arg-type]  # TemplateOut reads this shape
            )
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        result = await send_template(sender, channel, to, message, text=given.text, key=given.key)
        answer = {
            "status": result.outcome.value,
            "conversation": result.conversation,
            "key": result.key,
            "message_id": result.message_id,
        }
        if result.outcome is Outcome.FAILED:
            answer["error"] = result.error
            return JSONResponse(answer, status_code=422)
        return JSONResponse(answer)

    async def delivery_status(request: Request) -> Response:
        refused = authorized(request, token, "delivery status")
        if refused is not None:
            return refused
        name = request.path_params["channel"]
        if name not in channel_names:
            known = ", ".join(sorted(channel_names))
            return JSONResponse({"error": f"no channel named {name!r}; this bot serves {known}"}, status_code=404)
        db = db_of()
        if db is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        try:
            user = user_for(request.path_params["user"])
            limit = min(MAX_DELIVERIES, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        conversation = conversation_key(name, user.key)
        rows = await db.read(lambda conn: deliveries(conn, conversation, limit))
        return JSONResponse({"conversation": conversation, "messages": rows})

    async def erase(request: Request) -> Response:
        db = await started(request, "operator")
        if isinstance(db, JSONResponse):
            return db
        user = request.path_params["user"].lstrip("+")
        return JSONResponse({"erased": await erase_user(db, user, media_of())})

    base = "/operator/conversations/{id}"
    return [
        Route("/memories/{agent}/{user}", user_memories, methods=["GET", "DELETE"], name="memories"),
        Route("/messages/template", template, methods=["POST"], name="send_template"),
        Route(
            "/conversations/{channel}/{user}/deliveries",
            delivery_status,
            methods=["GET"],
            name="conversation_deliveries",
        ),
        Route("/users/{user}", erase, methods=["DELETE"], name="erase_user"),
        Route("/operator/conversations", list_view, methods=["GET"], name="operator_conversations"),
        Route(base, one, methods=["GET"], name="operator_conversation"),
        Route(base + "/memories", memories, methods=["GET", "DELETE"], name="operator_memories"),
        Route(base + "/memories/{mid:int}", memories, methods=["PATCH", "DELETE"], name="operator_memory"),
        Route(base + "/{action}", act, methods=["POST"], name="operator_action"),
        Route("/operator/outbox/{row}/{action}", outbox_action, methods=["POST"], name="operator_outbox"),
        Route("/operator/events", events, methods=["GET"], name="operator_events"),
    ]
