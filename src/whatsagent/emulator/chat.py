"""The chat page: a WhatsApp-like web UI over the emulator, with live updates and a fault panel.

The page is plain HTML/CSS/JS shipped in `page/` (no build step, nothing fetched from the internet).
It drives the emulator through a small JSON API, which scripts may use as well:

    GET  /api/state                          business, users, conversations, faults, status policy
    GET  /api/events                         server-sent events: message, status, read, delivery, user, faults
    POST /api/users                          {"name", "wa_id"} or {"name", "user_id"} → the user
    POST /api/users/{key}/messages           JSON {"type": "text", "text"} | location | contacts | reaction |
                                             reply; multipart (file, kind, caption, voice) for media
    POST /api/users/{key}/tap                {"choice", "message_id"?}
    POST /api/users/{key}/window             {"open": false, "synchronous": false}
    GET  /api/media/{media_id}               the bytes of a medium, for the page to show
    GET  /api/faults                         current faults
    POST /api/faults/{name}                  fail_sends | fail_next | latency | slow_media |
                                             duplicate_webhooks | reorder_webhooks | drop_statuses | clear,
                                             with the method's keyword arguments as a JSON object
    POST /api/redeliver                      {"message_id", "batch_with"?: [...]}
    POST /api/statuses                       {"until": "read" | "delivered" | "sent" | null, "delay", "drop",
                                             "out_of_order"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from whatsagent.emulator.errors import EmulatorError
from whatsagent.emulator.statuses import StatusPolicy

if TYPE_CHECKING:
    from whatsagent.emulator.server import Emulator
    from whatsagent.emulator.users import SimulatedUser

_STATIC = {
    "app.js": "application/javascript",
    "style.css": "text/css",
    "index.html": "text/html",
    "favicon.svg": "image/svg+xml",
}
_FAULTS = {
    "fail_sends",
    "fail_next",
    "latency",
    "slow_media",
    "duplicate_webhooks",
    "reorder_webhooks",
    "drop_statuses",
    "clear",
}
_MEDIA_KINDS = {"image", "audio", "video", "document", "sticker"}
_SSE_PING = 15.0


def _read_page(name: str) -> bytes:
    return resources.files("whatsagent.emulator").joinpath("page", name).read_bytes()


class ChatPage:
    """Routes of the chat page and its JSON API."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self._files: dict[str, bytes] = {}

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static)
        r.add_get("/api/state", self.state)
        r.add_get("/api/events", self.events)
        r.add_post("/api/users", self.create_user)
        r.add_post("/api/users/{key}/messages", self.send)
        r.add_post("/api/users/{key}/tap", self.tap)
        r.add_post("/api/users/{key}/answer", self.answer)
        r.add_post("/api/users/{key}/window", self.window)
        r.add_get("/api/media/{media_id}", self.media)
        r.add_get("/api/faults", self.faults)
        r.add_post("/api/faults/{name}", self.set_fault)
        r.add_post("/api/redeliver", self.redeliver)
        r.add_post("/api/statuses", self.set_statuses)

    def _file(self, name: str) -> bytes:
        if name not in self._files:
            self._files[name] = _read_page(name)
        return self._files[name]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._file("index.html"), content_type="text/html", charset="utf-8")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=self._file(name), headers={"Content-Type": _STATIC[name] + "; charset=utf-8"})

    # -- state and live events ----------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        emu = self.emu
        return web.json_response(
            {
                "business": {
                    "name": emu.verified_name,
                    "display_phone_number": emu.display_phone_number,
                    "phone_number_id": emu.phone_number_id,
                    "graph_url": emu.graph_url,
                    "webhook_url": emu.webhook_url,
                    "webhook_retries": emu.webhook_retries,
                    "console_url": emu.console_url,
                },
                "users": [u.to_json() for u in emu.users],
                "conversations": {u.key: emu.conversation(u) for u in emu.users},
                "faults": emu.faults.to_json(),
                "statuses": _policy_json(emu.statuses),
            },
            dumps=_dumps,
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.emu.hub.subscribe()
        try:
            await response.write(b"event: hello\ndata: {}\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), _SSE_PING)
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if event is None:
                    break
                await response.write(b"data: " + _dumps(event).encode() + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.emu.hub.unsubscribe(queue)
        return response

    # -- users and what they do ---------------------------------------------------------------------

    def _user(self, request: web.Request) -> SimulatedUser:
        user = self.emu.find_user(request.match_info["key"])
        if user is None:
            raise web.HTTPNotFound(text=f"no simulated user {request.match_info['key']!r}")
        return user

    async def create_user(self, request: web.Request) -> web.Response:
        data = await _json(request)
        wa_id = (data.get("wa_id") or "").strip().lstrip("+").replace(" ", "") or None
        user_id = (data.get("user_id") or "").strip() or None
        username = (data.get("username") or "").strip().lstrip("@") or None
        if not wa_id and not user_id and not username:
            raise _bad("give a phone number (wa_id), a username, or a business-scoped user id (user_id)")
        try:
            user = self.emu.user(
                wa_id,
                data.get("name") or None,
                user_id=user_id,
                username=username,
                withhold_number=bool(data.get("withhold_number")) or None,
            )
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return web.json_response(user.to_json())

    async def send(self, request: web.Request) -> web.Response:
        user = self._user(request)
        try:
            if request.content_type.startswith("multipart/"):
                delivery = await self._send_media(user, request)
            else:
                delivery = await self._send_json(user, await _json(request))
        except EmulatorError as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"message_id": delivery.message_id, "status": delivery.status, "body": delivery.body})

    async def _send_json(self, user: SimulatedUser, data: dict[str, Any]) -> Any:
        kind = data.get("type")
        if kind == "text":
            text = str(data.get("text", ""))
            if not text.strip():
                raise _bad("empty message")
            if data.get("reply_to"):
                return await user.reply(text, to=str(data["reply_to"]))
            return await user.send_text(text)
        if kind == "location":
            return await user.send_location(
                float(data["latitude"]),
                float(data["longitude"]),
                name=data.get("name"),
                address=data.get("address"),
            )
        if kind == "contacts":
            return await user.send_contacts([(c["name"], c["phone"]) for c in data.get("contacts", [])])
        if kind == "reaction":
            if data.get("emoji"):
                return await user.react(str(data["message_id"]), str(data["emoji"]))
            return await user.unreact(str(data["message_id"]))
        raise _bad(f"unknown message type {kind!r}")

    async def _send_media(self, user: SimulatedUser, request: web.Request) -> Any:
        fields: dict[str, str] = {}
        data = b""
        mime = filename = ""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                data = bytes(await part.read())
                mime = part.headers.get("Content-Type", "application/octet-stream")
                filename = part.filename or "file"
            elif part.name:
                fields[part.name] = (await part.read()).decode()
        kind = fields.get("kind", "")
        if kind not in _MEDIA_KINDS or not data:
            raise _bad("send a file and a kind (image, audio, video, document, sticker)")
        mime = fields.get("mime_type") or mime
        caption = fields.get("caption") or None
        if kind == "image":
            return await user.send_image(data, mime_type=mime, caption=caption)
        if kind == "audio":
            return await user.send_audio(data, mime_type=mime, voice=fields.get("voice") == "true")
        if kind == "video":
            return await user.send_video(data, mime_type=mime, caption=caption)
        if kind == "sticker":
            return await user.send_sticker(data, mime_type=mime)
        return await user.send_document(data, filename=filename, mime_type=mime, caption=caption)

    async def tap(self, request: web.Request) -> web.Response:
        user = self._user(request)
        data = await _json(request)
        try:
            delivery = await user.tap(str(data.get("choice", "")), on=data.get("message_id"))
        except (LookupError, EmulatorError) as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"message_id": delivery.message_id, "status": delivery.status})

    async def answer(self, request: web.Request) -> web.Response:
        """Answer one of the bot's interactive messages the way WhatsApp's app does: `{"message_id",
        "kind": "flow", "response": {...}}`, `{"kind": "location", "latitude", "longitude"}`,
        `{"kind": "call_permission", "accept": bool}` or `{"kind": "product", "product_retailer_id"}`."""
        user = self._user(request)
        data = await _json(request)
        on = data.get("message_id")
        kind = data.get("kind")
        try:
            if kind == "flow":
                response = data.get("response")
                if not isinstance(response, dict):
                    raise _bad("a flow answer needs `response`, a JSON object of the form's fields")
                delivery = await user.complete_flow(response, on=on)
            elif kind == "location":
                delivery = await user.share_location(float(data["latitude"]), float(data["longitude"]), on=on)
            elif kind == "call_permission":
                delivery = await user.answer_call_request(bool(data.get("accept", True)), on=on)
            elif kind == "product":
                delivery = await user.order_product(str(data.get("product_retailer_id", "")), on=on)
            else:
                raise _bad("kind must be flow, location, call_permission or product")
        except (KeyError, ValueError) as exc:
            raise _bad(f"incomplete answer: {exc}") from None
        except (LookupError, EmulatorError) as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"message_id": delivery.message_id, "status": delivery.status})

    async def window(self, request: web.Request) -> web.Response:
        user = self._user(request)
        data = await _json(request)
        if data.get("open", False):
            self.emu.open_window(user)
        else:
            self.emu.close_window(user, synchronous=bool(data.get("synchronous", False)))
        return web.json_response(user.to_json())

    async def media(self, request: web.Request) -> web.Response:
        item = self.emu.media.get(request.match_info["media_id"])
        if item is None:
            raise web.HTTPNotFound()
        faults = self.emu.faults
        if faults.media_latency:
            await asyncio.sleep(faults.media_latency)
        headers = {"Content-Type": item.mime_type, "Cache-Control": "max-age=3600"}
        if item.filename:
            headers["Content-Disposition"] = f'inline; filename="{item.filename}"'
        return web.Response(body=item.data, headers=headers)

    # -- faults -------------------------------------------------------------------------------------

    async def faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.emu.faults.to_json())

    async def set_fault(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _FAULTS:
            raise _bad(f"unknown fault {name!r}; one of {sorted(_FAULTS)}")
        args = await _json(request)
        if "errors" in args:
            args["errors"] = [tuple(e) for e in args["errors"]]
        try:
            getattr(self.emu.faults, name)(**args)
        except (TypeError, ValueError) as exc:
            raise _bad(f"{name}: {exc}") from None
        state = self.emu.faults.to_json()
        self.emu.hub.publish({"event": "faults", "faults": state})
        return web.json_response(state)

    async def redeliver(self, request: web.Request) -> web.Response:
        data = await _json(request)
        try:
            delivery = await self.emu.redeliver(str(data.get("message_id")), batch_with=data.get("batch_with") or ())
        except (LookupError, EmulatorError) as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"message_id": delivery.message_id, "status": delivery.status})

    async def set_statuses(self, request: web.Request) -> web.Response:
        data = await _json(request)
        try:
            self.emu.statuses = StatusPolicy(
                until=data.get("until"),
                delay=float(data.get("delay", 0.4)),
                drop=float(data.get("drop", 0.0)),
                out_of_order=bool(data.get("out_of_order", False)),
            )
        except (TypeError, ValueError) as exc:
            raise _bad(str(exc)) from None
        state = _policy_json(self.emu.statuses)
        self.emu.hub.publish({"event": "statuses", "statuses": state})
        return web.json_response(state)


def _policy_json(policy: StatusPolicy) -> dict[str, Any]:
    return {
        "until": policy.until,
        "delay": policy.delay,
        "drop": policy.drop,
        "out_of_order": policy.out_of_order,
    }


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    with contextlib.suppress(ValueError):
        data = await request.json()
        if isinstance(data, dict):
            return data
    raise _bad("send a JSON object")


def _bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")
