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

Off (404) unless an operator token is set; every call carries ``Authorization: Bearer <token>`` (wrong or
missing: 401). Every write also checks ``Origin`` when a browser sends one: a page of another origin is
refused (403). ``X-Operator: <name>`` says who acts (recorded in `operator_actions`). Numbers are masked
unless ``?reveal=1``. Documented in docs/operator-api.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, bindparam, desc, func, or_, select, update

from whatsagent import handoff, outbox
from whatsagent.agents import memory
from whatsagent.messages.outbound import OutboundMessage, TemplateOut, outbound_adapter
from whatsagent.proactive import authorized
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import conversations, inbox, operator_actions, turn_traces, turns
from whatsagent.store.schema import outbox as outbox_table
from whatsagent.window import WINDOW_SECONDS as DAY

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from whatsagent.events import Bus
    from whatsagent.sender import Sender

LIST_LIMIT = 200
STREAM_SECONDS = 25.0
TRANSCRIPT_LIMIT = 500


def mask(value: str | None) -> str | None:
    """A number or id with only its last four characters."""
    if not value:
        return value
    return "…" + value[-4:] if len(value) > 4 else "…"


def _status(mode: str, window_closed: bool, failed: bool) -> str:
    if mode != handoff.BOT:
        return mode
    if failed:
        return "failed"
    return "window closed" if window_closed else "bot"


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
            for key in await db.read(lambda conn: [r[0] for r in conn.execute(select(conversations.c.key))]):
                self.of(key)
        return self._keys.get(conversation_id)


_LAST_IN = Prepared(
    select(inbox.c.payload, inbox.c.received_at)
    .where(inbox.c.conversation == bindparam("key"))
    .order_by(inbox.c.seq.desc())
    .limit(1)
)
_LAST_OUT = Prepared(
    select(outbox_table.c.message, outbox_table.c.created_at, outbox_table.c.status)
    .where(outbox_table.c.conversation == bindparam("key"))
    .order_by(outbox_table.c.id.desc())
    .limit(1)
)
_UNREAD = Prepared(
    select(func.count())
    .select_from(inbox)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.received_at > bindparam("since"))
)
_FAILED_TURN = Prepared(
    select(func.count())
    .select_from(turns)
    .where(
        turns.c.conversation == bindparam("key"), turns.c.status == "failed", turns.c.updated_at > bindparam("since")
    )
)


def _preview(raw: str, outbound: bool) -> str:
    try:
        if outbound:
            message: Any = outbound_adapter.validate_json(raw)
            return str(getattr(message, "body", None) or getattr(message, "caption", None) or f"[{message.kind}]")
        from whatsagent.messages import Text, inbound_adapter

        parsed = inbound_adapter.validate_json(raw)
        return parsed.body if isinstance(parsed, Text) else parsed.describe()
    except Exception:
        return "[unreadable]"


def list_conversations(
    ids: Ids, q: str | None, channel: str | None, reveal: bool
) -> Callable[[Connection], list[dict[str, Any]]]:
    def op(conn: Connection) -> list[dict[str, Any]]:
        query = select(
            conversations.c.key,
            conversations.c.channel,
            conversations.c.wa_id,
            conversations.c.user_id,
            conversations.c.user_name,
            conversations.c.mode,
            conversations.c.mode_reason,
            conversations.c.last_inbound_at,
            conversations.c.window_closed_at,
            conversations.c.seen_at,
        )
        if channel:
            query = query.where(conversations.c.channel == channel)
        if q:
            like = f"%{q.strip()}%"
            digits = "".join(ch for ch in q if ch.isdigit())
            terms: list[ColumnElement[bool]] = [
                conversations.c.user_name.ilike(like),
                conversations.c.user_id.ilike(like),
            ]
            if digits:
                terms.append(conversations.c.wa_id.contains(digits))
            query = query.where(or_(*terms))
        query = query.order_by(desc(conversations.c.last_inbound_at)).limit(LIST_LIMIT)
        now = time.time()
        found = []
        for key, chan, wa_id, user_id, name, mode, reason, last_in, closed_at, seen in conn.execute(query):
            last = _LAST_IN.first(conn, key=key)
            sent = _LAST_OUT.first(conn, key=key)
            last_message = None
            if last is not None and (sent is None or last[1] >= sent[1]):
                last_message = {"direction": "in", "text": _preview(last[0], False), "at": last[1]}
            elif sent is not None:
                last_message = {"direction": "out", "text": _preview(sent[0], True), "at": sent[1], "status": sent[2]}
            failed = bool(_FAILED_TURN.first(conn, key=key, since=seen or 0)[0]) or (
                sent is not None and sent[2] == "failed"
            )
            window_closed = (closed_at is not None and closed_at >= last_in) or now - last_in > DAY
            found.append(
                {
                    "id": ids.of(key),
                    "channel": chan,
                    "number": wa_id if reveal else mask(wa_id),
                    "username": user_id if reveal else mask(user_id),
                    "name": name,
                    "mode": mode,
                    "mode_reason": reason,
                    "status": _status(mode, window_closed, failed),
                    "unread": _UNREAD.first(conn, key=key, since=seen or 0)[0],
                    "last_message": last_message,
                    "last_activity": max(last_in, last_message["at"] if last_message else 0),
                }
            )
        found.sort(key=lambda c: c["last_activity"], reverse=True)
        return found

    return op


def transcript(key: str, ids: Ids, reveal: bool) -> Callable[[Connection], dict[str, Any] | None]:
    def op(conn: Connection) -> dict[str, Any] | None:
        conv = conn.execute(select(conversations).where(conversations.c.key == key)).mappings().first()
        if conv is None:
            return None
        from whatsagent.messages import inbound_adapter

        inbound = []
        for seq, payload, received_at, turn_id in conn.execute(
            select(inbox.c.seq, inbox.c.payload, inbox.c.received_at, inbox.c.turn_id)
            .where(inbox.c.conversation == key)
            .order_by(inbox.c.seq.desc())
            .limit(TRANSCRIPT_LIMIT)
        ):
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
        outbound = outbox.deliveries(conn, key, TRANSCRIPT_LIMIT)
        for row in outbound:
            shown: Any = row["message"]
            row["text"] = shown.get("body") or shown.get("caption") or f"[{row['kind']}]"
        out_ids = {
            r[0]: r[1]
            for r in conn.execute(
                select(outbox_table.c.idempotency_key, outbox_table.c.id).where(outbox_table.c.conversation == key)
            )
        }
        for row in outbound:
            row["id"] = out_ids.get(str(row["key"]))
        turn_rows = conn.execute(
            select(
                turns.c.id,
                turns.c.status,
                turns.c.attempts,
                turns.c.error,
                turns.c.first_seq,
                turns.c.last_seq,
                turns.c.created_at,
                turns.c.updated_at,
                turn_traces.c.spans,
            )
            .select_from(turns.outerjoin(turn_traces, turn_traces.c.turn_id == turns.c.id))
            .where(turns.c.conversation == key)
            .order_by(turns.c.id.desc())
            .limit(TRANSCRIPT_LIMIT)
        ).all()
        turn_list = [
            {
                "id": t[0],
                "status": t[1],
                "attempts": t[2],
                "error": t[3],
                "messages": [m["id"] for m in inbound if m["turn_id"] == t[0]],
                "outbox": [r["id"] for r in outbound if r["turn_id"] == t[0]],
                "created_at": t[6],
                "updated_at": t[7],
                "spans": json.loads(t[8]) if t[8] else [],
            }
            for t in turn_rows
        ]
        actions = [
            dict(r)
            for r in conn.execute(
                select(
                    operator_actions.c.operator,
                    operator_actions.c.action,
                    operator_actions.c.detail,
                    operator_actions.c.created_at,
                )
                .where(operator_actions.c.conversation == key)
                .order_by(operator_actions.c.id.desc())
                .limit(TRANSCRIPT_LIMIT)
            ).mappings()
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
            "actions": actions,
        }

    return op


_SEEN = Prepared(update(conversations).where(conversations.c.key == bindparam("key")).values(seen_at=bindparam("now")))
_ROW = Prepared(
    select(
        outbox_table.c.id,
        outbox_table.c.idempotency_key,
        outbox_table.c.position,
        outbox_table.c.message,
        outbox_table.c.attempts,
        outbox_table.c.turn_id,
        outbox_table.c.attempted_at,
        outbox_table.c.conversation,
        outbox_table.c.status,
    ).where(outbox_table.c.id == bindparam("row"))
)
_REOPEN = Prepared(
    update(outbox_table)
    .where(
        outbox_table.c.id == bindparam("row"),
        or_(outbox_table.c.status == "failed", outbox_table.c.status == "parked"),
    )
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)


def operator_routes(
    db_of: Callable[[], Database | None],
    desk_of: Callable[[], handoff.Desk | None],
    sender_of: Callable[[], Sender | None],
    bus: Bus,
    token: str | None,
    agents_by_channel: Mapping[str, str],
    channels: Collection[str],
) -> list[BaseRoute]:
    from pydantic import ValidationError
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    ids = Ids(token)

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
        return JSONResponse({"conversations": found, "channels": sorted(channels)})

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
            await db.write(lambda conn: _SEEN.all(conn, key=key, now=time.time()))
            bus.publish(key)
            return JSONResponse({"seen": True})
        if desk is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        if action == "takeover":
            free = await desk.takeover(key, who(request))
            return JSONResponse({"mode": handoff.HUMAN, "bot_turn_running": not free})
        if action == "hand-back":
            free = await desk.hand_back(key, who(request))
            return JSONResponse({"mode": handoff.BOT, "bot_turn_running": not free})
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
            status = 422 if outcome.value == "failed" else 200
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
        found = await db.read(lambda conn: _ROW.first(conn, row=row_id))
        if found is None:
            return JSONResponse({"error": "no such message"}, status_code=404)
        key, status = found[7], found[8]
        if status not in ("failed", "parked"):
            return JSONResponse({"error": f"the message is {status}: only failed or parked ones"}, status_code=409)
        action = request.path_params["action"]
        if action == "discard":
            await db.write(lambda conn: _REOPEN.all(conn, row=row_id, status="discarded", now=time.time()))
            await db.write(lambda conn: handoff.record(conn, key, who(request), "discard", str(row_id)))
            bus.publish(key)
            return JSONResponse({"status": "discarded"})
        if action != "retry":
            return JSONResponse({"error": f"no action {action!r}"}, status_code=404)
        desk = desk_of()
        conv = await desk.find(key) if desk is not None else None
        channel = sender.channels.get(conv.channel) if conv is not None else None
        if conv is None or channel is None:
            return JSONResponse({"error": "the message's channel is not served here"}, status_code=404)
        await db.write(lambda conn: _REOPEN.all(conn, row=row_id, status="pending", now=time.time()))
        await db.write(lambda conn: handoff.record(conn, key, who(request), "retry", str(row_id)))
        message: OutboundMessage = outbound_adapter.validate_json(found[3])
        row = outbox.OutboxRow(found[0], found[1], found[2], message, found[4], found[5], found[6])
        outcome = await sender.deliver_row(channel, conv.user, row, conversation=key, deadline=30.0)
        bus.publish(key)
        return JSONResponse({"status": outcome.value}, status_code=422 if outcome.value == "failed" else 200)

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

    base = "/operator/conversations/{id}"
    return [
        Route("/operator/conversations", list_view, methods=["GET"], name="operator_conversations"),
        Route(base, one, methods=["GET"], name="operator_conversation"),
        Route(base + "/memories", memories, methods=["GET", "DELETE"], name="operator_memories"),
        Route(base + "/memories/{mid:int}", memories, methods=["PATCH", "DELETE"], name="operator_memory"),
        Route(base + "/{action}", act, methods=["POST"], name="operator_action"),
        Route("/operator/outbox/{row}/{action}", outbox_action, methods=["POST"], name="operator_outbox"),
        Route("/operator/events", events, methods=["GET"], name="operator_events"),
    ]
