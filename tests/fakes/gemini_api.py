"""A local stand-in for the Gemini API's image generation, for tests: an aiohttp server on loopback.

The real `google-genai` SDK, through pydantic-ai's `GoogleImageGenerationModel` and `GoogleProvider`,
talks to it, so a test exercises the request a production call makes. It serves
``POST /v1beta/models/{model}:generateContent`` and answers with a real PNG (made with Pillow) as an
``inlineData`` part, or with a blocked prompt, or with an HTTP error in Google's shape.

Every request is recorded, and its image request parsed: the prompt text and the images sent along
(decoded), so a test can assert that the user's own picture went to an edit.

    async with FakeGemini() as gemini:
        model = GoogleImageGenerationModel(
            "gemini-2.5-flash-image", provider=GoogleProvider(api_key="test", base_url=gemini.base_url)
        )
"""

from __future__ import annotations

import base64
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fakes import media_files


@dataclass
class InlineImage:
    """An image sent inline in a request (``inlineData``), decoded."""

    mime_type: str
    data: bytes


@dataclass
class ImageRequest:
    """One ``generateContent`` request, parsed: what the model was asked to draw, from which pictures."""

    model: str
    prompt: str
    images: list[InlineImage]
    response_modalities: list[str]
    api_key: str | None
    body: dict[str, Any]


@dataclass
class Fault:
    """An HTTP error instead of an image, in Google's error shape."""

    status: int = 500
    message: str = "An internal error has occurred."
    reason: str = "INTERNAL"


@dataclass
class Block:
    """No image: the prompt is blocked for content moderation (``promptFeedback.blockReason``)."""

    reason: str = "SAFETY"


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None


class FakeGemini:
    """``async with FakeGemini() as gemini:``, then point a `GoogleProvider` at ``gemini.base_url``."""

    def __init__(self, *, api_key: str | None = None, image: bytes | None = None) -> None:
        self.api_key = api_key
        """When set, requests without ``x-goog-api-key: <api_key>`` get 400, as Google answers a bad key."""
        self.image = image or media_files.image_bytes("PNG", 64, 48)
        """What ``generateContent`` returns as the generated picture."""
        self.requests: list[Recorded] = []
        self.image_requests: list[ImageRequest] = []
        self._outcomes: deque[Fault | Block] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> FakeGemini:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/{version}/models/{model:[^/:]+}:generateContent", self._generate_content)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGemini:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- scripting ----------------------------------------------------------------------------------

    def fail(self, status: int = 500, message: str = Fault.message, reason: str = Fault.reason) -> FakeGemini:
        """The next request gets an HTTP error (google-genai does not retry unless told to)."""
        self._outcomes.append(Fault(status, message, reason))
        return self

    def block(self, reason: str = "SAFETY") -> FakeGemini:
        """The next prompt is blocked: no candidates, ``promptFeedback.blockReason`` set."""
        self._outcomes.append(Block(reason))
        return self

    # -- handlers -----------------------------------------------------------------------------------

    async def _generate_content(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        api_key = request.headers.get("x-goog-api-key")
        self.image_requests.append(_parse(request.match_info["model"], body, api_key))
        if self.api_key is not None and api_key != self.api_key:
            return _error(Fault(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"))
        outcome = self._outcomes.popleft() if self._outcomes else None
        if isinstance(outcome, Fault):
            return _error(outcome)
        if isinstance(outcome, Block):
            usage = {"promptTokenCount": 12, "totalTokenCount": 12}
            return web.json_response(
                {"promptFeedback": {"blockReason": outcome.reason}, "usageMetadata": usage, "modelVersion": "fake"}
            )
        part = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(self.image).decode()}}
        return web.json_response(
            {
                "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1290, "totalTokenCount": 1302},
                "modelVersion": request.match_info["model"],
                "responseId": f"fake-{next(self._ids)}",
            }
        )


def _parse(model: str, body: dict[str, Any], api_key: str | None) -> ImageRequest:
    texts: list[str] = []
    images: list[InlineImage] = []
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            # Protobuf JSON takes a field by its camelCase or its proto name, and google-genai sends both:
            # ``inlineData`` holding ``mime_type``.
            inline = _field(part, "inlineData", "inline_data")
            if "text" in part:
                texts.append(part["text"])
            elif inline is not None:
                images.append(InlineImage(_field(inline, "mimeType", "mime_type") or "", _decode(inline["data"])))
    config = _field(body, "generationConfig", "generation_config") or {}
    modalities = _field(config, "responseModalities", "response_modalities") or []
    return ImageRequest(model, "\n".join(texts), images, modalities, api_key, body)


def _field(message: dict[str, Any], camel: str, proto: str) -> Any:
    return message[camel] if camel in message else message.get(proto)


def _decode(data: str) -> bytes:
    """Base64 as protobuf JSON takes it: the standard or the URL-safe alphabet (google-genai sends the latter)."""
    return base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)


def _error(fault: Fault) -> web.Response:
    return web.json_response(
        {"error": {"code": fault.status, "message": fault.message, "status": fault.reason}}, status=fault.status
    )
