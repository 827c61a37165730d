"""The Graph API endpoints a bot calls, with Meta's validation and error bodies (Cloud API docs, Send messages:
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages;
pywa's error list, pywa/errors.py in https://github.com/david-lev/pywa).

    POST   /{version}/{phone_number_id}/messages        send, mark read, typing indicator
    POST   /{version}/{phone_number_id}/media           upload (multipart: file, type, messaging_product)
    GET    /{version}/{media_id}                        media URL (valid 5 minutes), mime_type, sha256, size
    DELETE /{version}/{media_id}                        delete media
    GET    /{version}/{phone_number_id}                 the business number's profile
    GET    /{version}/{waba_id|phone_number_id}/message_templates
    GET    /whatsapp_business/attachments/?mid=…&hash=… the media bytes (bearer token required)

Handlers do little per request: the token check, one JSON parse, the validation and an append.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import BodyPartReader, web

from whatsagent.emulator.errors import GraphError, bad_token, invalid, unknown_object
from whatsagent.emulator.media import KIND_LIMITS, base_mime, kind_of
from whatsagent.emulator.validation import ReadReceipt, check_request

if TYPE_CHECKING:
    from whatsagent.emulator.server import Emulator

_VERSION = r"{version:v[0-9]+\.[0-9]+}"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(error: GraphError) -> web.Response:
    headers = {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'} if error.code == 190 else None
    return web.Response(
        body=orjson.dumps(error.body()),
        status=error.http_status,
        content_type="application/json",
        headers=headers,
    )


class GraphAPI:
    """Meta's Cloud API, as far as a bot uses it."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def register(self, app: web.Application) -> None:
        app.router.add_post(f"/{_VERSION}/{{node}}/messages", self.messages)
        app.router.add_post(f"/{_VERSION}/{{node}}/media", self.upload)
        app.router.add_get(f"/{_VERSION}/{{node}}/message_templates", self.message_templates)
        app.router.add_get(f"/{_VERSION}/{{node}}", self.get_node)
        app.router.add_delete(f"/{_VERSION}/{{node}}", self.delete_node)
        app.router.add_get("/whatsapp_business/attachments/", self.download)
        app.middlewares.append(self.unknown_paths)

    @web.middleware
    async def unknown_paths(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A path or method nothing here serves is answered as the platform answers it: Graph's JSON
        error (2500, unknown path; 100/33, unsupported method on a node), or Twilio's 20404 JSON under
        Twilio's paths; never aiohttp's text/plain 404. The chat page keeps its own answers."""
        refusal = request.match_info.http_exception
        if refusal is None or refusal.status not in (404, 405):
            return await handler(request)
        path = request.path
        if path.startswith(("/api/", "/static/")):
            return await handler(request)
        if path.startswith(("/2010-04-01/", "/v1/", "/v2/")):
            body = {
                "code": 20404,
                "message": f"The requested resource {path} was not found",
                "more_info": "https://www.twilio.com/docs/errors/20404",
                "status": 404,
            }
            return json_response(body, status=404)
        self.emu.record_request(request.method, path, None)
        parts = [p for p in path.split("/") if p]
        if refusal.status == 405 and len(parts) == 2:
            error = unknown_object(parts[1])
            error.message = error.message.replace("post request", f"{request.method.lower()} request")
            return error_response(error)
        shown = "/" + "/".join(parts[1:] if parts and re.fullmatch(r"v[0-9]+\.[0-9]+", parts[0]) else parts)
        return error_response(
            GraphError(
                400,
                2500,
                message=f"Unknown path components: {shown}",
                type_="OAuthException",
                whatsapp=False,
            )
        )

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else request.query.get("access_token", "")
        if token != self.emu.access_token:
            raise bad_token()

    def _phone_number(self, node: str) -> None:
        if node != self.emu.phone_number_id:
            raise unknown_object(node)

    async def _delay(self, media: bool = False) -> None:
        faults = self.emu.faults
        seconds = faults.send_latency + (faults.media_latency if media else 0.0)
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
            parse_error = True
        else:
            parse_error = False
        record = self.emu.record_request("POST", request.path, body)
        try:
            await self._delay()
            self._authorize(request)
            self._phone_number(request.match_info["node"])
            if parse_error:
                raise invalid("Request body is not valid JSON")
            checked = check_request(body, self.emu.templates)
            failure = self.emu.faults.send_failure(is_read=isinstance(checked, ReadReceipt))
            if failure is not None:
                raise GraphError(*failure)
            if isinstance(checked, ReadReceipt):
                self.emu.mark_read(checked.message_id, checked.typing)
                response = json_response({"success": True})
            else:
                response = json_response(self.emu.accept(checked))
        except GraphError as error:
            response = error_response(error)
            self._tell_page(body, error)
        if record is not None:
            record.status = response.status
        return response

    def _tell_page(self, body: Any, error: GraphError) -> None:
        """A refused send shows on the chat page, with its reason, instead of endless typing dots."""
        if not self.emu.hub.active or not isinstance(body, dict) or body.get("status") == "read":
            return
        to = str(body.get("recipient") or body.get("to") or "")
        user = self.emu.find_user(to) or self.emu.find_user("".join(c for c in to if c.isdigit()))
        if user is not None:
            retryable = error.http_status == 429 or error.http_status >= 500 or error.code in (130429, 131056)
            event = {"event": "refused", "user": user.key, "code": error.code, "title": error.message}
            self.emu.hub.publish({**event, "retryable": retryable})

    async def upload(self, request: web.Request) -> web.Response:
        record = self.emu.record_request("POST", request.path, None)
        try:
            await self._delay(media=True)
            self._authorize(request)
            self._phone_number(request.match_info["node"])
            response = json_response(await self._store_upload(request))
        except GraphError as error:
            response = error_response(error)
        if record is not None:
            record.status = response.status
        return response

    async def _store_upload(self, request: web.Request) -> dict[str, Any]:
        if not request.content_type.startswith("multipart/"):
            raise invalid("Upload media as multipart/form-data with fields file, type and messaging_product")
        fields: dict[str, str] = {}
        data: bytes | None = None
        file_type = filename = None
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise invalid("Nested multipart bodies are not supported")
            if part.name == "file":
                data = await part.read()
                file_type = part.headers.get("Content-Type")
                filename = part.filename
            elif part.name:
                fields[part.name] = (await part.read()).decode()
        if fields.get("messaging_product") != "whatsapp":
            raise GraphError(400, 100, "The parameter messaging_product is required.")
        if data is None:
            raise GraphError(400, 100, "The parameter file is required.")
        mime = fields.get("type") or file_type or ""
        kind = kind_of(mime)
        if kind is None:
            supported = sorted(t for types, _ in KIND_LIMITS.values() for t in types)
            raise GraphError(
                400,
                131053,
                f"Param file must be a file with one of the following types: {supported}. "
                f"Received file of type '{base_mime(mime)}'.",
            )
        limit = KIND_LIMITS[kind][1]
        if len(data) > limit:
            raise GraphError(400, 131053, f"{kind} files may be at most {limit} bytes; this one is {len(data)}")
        if not data:
            raise GraphError(400, 131053, "The uploaded file is empty")
        item = self.emu.media.put(data, mime, filename)
        return {"id": item.id}

    async def get_node(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        record = self.emu.record_request("GET", request.path, dict(request.query))
        try:
            await self._delay()
            self._authorize(request)
            if node == self.emu.phone_number_id:
                response = json_response(self._phone_profile())
            else:
                item = self.emu.media.get(node)
                guard = request.query.get("phone_number_id")
                if item is None or (guard is not None and guard != self.emu.phone_number_id):
                    raise unknown_object(node)
                response = json_response(
                    {
                        "messaging_product": "whatsapp",
                        "url": self.emu.media.issue_url(item, self.emu.base_url),
                        "mime_type": item.mime_type,
                        "sha256": item.sha256_hex,
                        "file_size": item.size,
                        "id": item.id,
                    }
                )
        except GraphError as error:
            response = error_response(error)
        if record is not None:
            record.status = response.status
        return response

    def _phone_profile(self) -> dict[str, Any]:
        digits = self.emu.display_phone_number
        return {
            "verified_name": self.emu.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": f"+{digits}",
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": self.emu.phone_number_id,
        }

    async def delete_node(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        record = self.emu.record_request("DELETE", request.path, dict(request.query))
        try:
            self._authorize(request)
            guard = request.query.get("phone_number_id")
            if (guard is not None and guard != self.emu.phone_number_id) or not self.emu.media.delete(node):
                raise unknown_object(node)
            response = json_response({"success": True})
        except GraphError as error:
            response = error_response(error)
        if record is not None:
            record.status = response.status
        return response

    async def message_templates(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        record = self.emu.record_request("GET", request.path, dict(request.query))
        try:
            self._authorize(request)
            if node not in (self.emu.waba_id, self.emu.phone_number_id):
                raise unknown_object(node)
            templates = [t.to_json() for t in self.emu.templates]
            name = request.query.get("name")
            if name:
                templates = [t for t in templates if name in t["name"]]
            status = request.query.get("status")
            if status:
                templates = [t for t in templates if t["status"] == status.upper()]
            response = json_response(
                {
                    "data": templates,
                    "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}},
                    "summary": {
                        "total_count": len(templates),
                        "message_template_count": len(self.emu.templates),
                        "message_template_limit": 250,
                        "are_translations_complete": True,
                    },
                }
            )
        except GraphError as error:
            response = error_response(error)
        if record is not None:
            record.status = response.status
        return response

    async def download(self, request: web.Request) -> web.Response:
        record = self.emu.record_request("GET", request.path, dict(request.query))
        await self._delay(media=True)
        header = request.headers.get("Authorization", "")
        if header[:7].lower() != "bearer " or header[7:] != self.emu.access_token:
            response = web.Response(status=401, text="Unauthorized: send the access token as a Bearer header")
        else:
            item = self.emu.media.resolve(request.query.get("hash", ""))
            if item is None or item.id != request.query.get("mid"):
                response = web.Response(status=404, text="Not Found: the media URL expired or was deleted")
            else:
                response = web.Response(body=item.data, headers={"Content-Type": item.mime_type})
        if record is not None:
            record.status = response.status
        return response
