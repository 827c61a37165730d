"""A local stand-in for OpenAI's HTTP API, for tests: an aiohttp server on loopback.

The real `openai` SDK and pydantic-ai's real OpenAI models talk to it, so a test exercises the same
serialization a production request goes through. It serves:

- ``POST /v1/chat/completions`` and ``POST /v1/responses`` (plain and streamed): the model's turns come
  from a script, in order: text, tool calls with arguments, errors, or a function of the request;
- ``POST /v1/images/generations`` and ``/v1/images/edits``: a real small PNG as ``b64_json``;
- ``POST /v1/audio/transcriptions``: a scripted transcript.

Every request is recorded (JSON bodies, multipart fields and files), so a test can assert what was
sent: that an image went as an ``image_url`` data URL, that a voice note went as ``input_audio`` with
format ``wav``.

    async with FakeOpenAI() as openai:
        openai.call_tool("get_weather", {"city": "Paris"})
        openai.reply("Sunny in Paris.")
        model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=openai.base_url, api_key="test"))
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def png(width: int = 64, height: int = 64, rgb: tuple[int, int, int] = (32, 160, 96)) -> bytes:
    """A valid solid-colour 8-bit RGB PNG, written without Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


# --- the script -----------------------------------------------------------------------------------


@dataclass
class ToolCall:
    """A function call the fake model makes. `arguments` is sent as JSON text, as OpenAI does."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    """One model turn: text, tool calls, or both."""

    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class Fault:
    """An HTTP error instead of a turn, in OpenAI's error shape."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None


Step = Reply | Fault | Callable[[dict[str, Any]], "Reply | Fault | str"]


@dataclass
class UploadedPart:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[UploadedPart]] = field(default_factory=dict)
    peer: str = ""
    """The client's address and port: one per connection."""


class FakeOpenAI:
    """``async with FakeOpenAI() as openai:``, then point a client at ``openai.base_url``."""

    def __init__(self, *, api_key: str | None = None, image: bytes | None = None) -> None:
        self.api_key = api_key
        """When set, requests without ``Authorization: Bearer <api_key>`` get 401."""
        self.image = image or png()
        """What the images endpoints return."""
        self.requests: list[Recorded] = []
        self.default: Reply | None = None
        """The turn to play when the script has run out; None answers 400, so a test fails loudly."""
        self.default_transcript = ""
        self._script: deque[Step] = deque()
        self._transcripts: deque[str | Fault] = deque()
        self._image_faults: deque[Fault] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> FakeOpenAI:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/images/edits", self._images)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- scripting ----------------------------------------------------------------------------------

    def reply(self, text: str) -> FakeOpenAI:
        """The model's next turn answers `text`."""
        self._script.append(Reply(text=text))
        return self

    def call_tool(
        self, name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None
    ) -> FakeOpenAI:
        """The model's next turn calls tool `name` with `arguments`."""
        self._script.append(Reply(tool_calls=[ToolCall(name, arguments or {}, id)]))
        return self

    def call_tools(self, *calls: ToolCall, text: str | None = None) -> FakeOpenAI:
        """The model's next turn calls several tools at once (parallel tool calls)."""
        self._script.append(Reply(text=text, tool_calls=list(calls)))
        return self

    def respond(self, step: Callable[[dict[str, Any]], Reply | Fault | str]) -> FakeOpenAI:
        """The model's next turn is computed from the request JSON: return a Reply, a Fault or text."""
        self._script.append(step)
        return self

    def fail(self, status: int = 500, message: str | None = None, *, code: str | None = None) -> FakeOpenAI:
        """The next model request gets an HTTP error (the SDK retries 429 and 5xx on its own)."""
        fault = Fault(
            status,
            message or Fault.message,
            "server_error" if status >= 500 else "invalid_request_error",
            code,
        )
        self._script.append(fault)
        return self

    def transcript(self, *texts: str) -> FakeOpenAI:
        """The next transcription requests return `texts`, in order."""
        self._transcripts.extend(texts)
        return self

    def fail_transcription(self, status: int = 500, message: str = "transcription failed") -> FakeOpenAI:
        self._transcripts.append(Fault(status, message))
        return self

    def fail_image(self, status: int = 400, message: str = "blocked", code: str = "moderation_blocked") -> FakeOpenAI:
        self._image_faults.append(Fault(status, message, "invalid_request_error", code))
        return self

    @property
    def pending(self) -> int:
        """Scripted turns not yet played."""
        return len(self._script)

    # -- what was sent ------------------------------------------------------------------------------

    def requests_to(self, path: str) -> list[Recorded]:
        """Requests to `path`, e.g. ``/v1/chat/completions``."""
        return [r for r in self.requests if r.path == path]

    @property
    def model_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat completions and responses request, in order."""
        return [
            r.json for r in self.requests if r.path in ("/v1/chat/completions", "/v1/responses") and r.json is not None
        ]

    @property
    def last_model_request(self) -> dict[str, Any]:
        requests = self.model_requests
        assert requests, "the fake OpenAI API received no model request"
        return requests[-1]

    def content_parts(self, request: dict[str, Any] | None = None, role: str = "user") -> list[dict[str, Any]]:
        """Every content part of `role` messages in a model request (default: the last), with text
        given as ``{"type": "text", "text": ...}``; works for both chat completions and responses."""
        request = request if request is not None else self.last_model_request
        messages = request.get("messages") or request.get("input") or []
        if isinstance(messages, str):
            return [{"type": "text", "text": messages}]
        parts: list[dict[str, Any]] = []
        for message in messages:
            if message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, str):
                parts.append({"type": "text", "text": content})
            elif isinstance(content, list):
                parts.extend(content)
        return parts

    # -- handlers -----------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        recorded = Recorded(request.method, request.path, dict(request.headers))
        recorded.peer = str(request.transport.get_extra_info("peername")) if request.transport else ""
        if request.content_type == "application/json":
            recorded.json = await request.json()
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part is None or not hasattr(part, "read"):
                    continue
                name = part.name or ""
                data = await part.read()  # type: ignore[union-attr]
                if part.filename:
                    content_type = part.headers.get("Content-Type")
                    recorded.files.setdefault(name, []).append(UploadedPart(part.filename, content_type, bytes(data)))
                else:
                    recorded.form.setdefault(name, []).append(bytes(data).decode("utf-8"))
        self.requests.append(recorded)
        return recorded

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(Fault(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        return None

    def _next_turn(self, body: dict[str, Any]) -> Reply | Fault:
        if not self._script:
            if self.default is not None:
                return self.default
            return Fault(400, "FakeOpenAI: no scripted turn left for this request", "invalid_request_error")
        step = self._script.popleft()
        if callable(step):
            step = step(body)
        return Reply(text=step) if isinstance(step, str) else step

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = recorded.json or {}
        turn = self._next_turn(body)
        if isinstance(turn, Fault):
            return _error(turn)
        model = body.get("model", "gpt-4o")
        calls = [(call.id or self._id("call"), call) for call in turn.tool_calls]
        usage = {"prompt_tokens": _tokens(body), "completion_tokens": 10, "total_tokens": _tokens(body) + 10}
        finish = "tool_calls" if calls else "stop"
        completion_id = self._id("chatcmpl")
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": turn.text, "refusal": None}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments_json},
                    }
                    for cid, c in calls
                ]
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        if turn.text:
            # Two deltas, so a streaming consumer really assembles the text.
            half = len(turn.text) // 2
            events += [chunk({"content": turn.text[:half]}), chunk({"content": turn.text[half:]})]
        for index, (cid, call) in enumerate(calls):
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": cid,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments_json},
                            }
                        ]
                    }
                )
            )
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk({}), "choices": [], "usage": usage})
        return await _sse(request, ((None, event) for event in events), done=True)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = recorded.json or {}
        turn = self._next_turn(body)
        if isinstance(turn, Fault):
            return _error(turn)
        output: list[dict[str, Any]] = []
        if turn.text is not None:
            output.append(
                {
                    "type": "message",
                    "id": self._id("msg"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
                }
            )
        for call in turn.tool_calls:
            output.append(
                {
                    "type": "function_call",
                    "id": self._id("fc"),
                    "call_id": call.id or self._id("call"),
                    "name": call.name,
                    "arguments": call.arguments_json,
                    "status": "completed",
                }
            )
        response = {
            "id": self._id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "gpt-4o"),
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "usage": {
                "input_tokens": _tokens(body),
                "output_tokens": 10,
                "total_tokens": _tokens(body) + 10,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
        if not body.get("stream"):
            return web.json_response(response)

        sequence = itertools.count()

        def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
            return kind, {"type": kind, "sequence_number": next(sequence), **fields}

        events = [event("response.created", response={**response, "status": "in_progress", "output": []})]
        for index, item in enumerate(output):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                empty = {**item, "status": "in_progress", "content": []}
                part = {"type": "output_text", "text": "", "annotations": []}
                events += [
                    event("response.output_item.added", output_index=index, item=empty),
                    event(
                        "response.content_part.added",
                        output_index=index,
                        item_id=item["id"],
                        content_index=0,
                        part=part,
                    ),
                    event(
                        "response.output_text.delta",
                        output_index=index,
                        item_id=item["id"],
                        content_index=0,
                        delta=text,
                        logprobs=[],
                    ),
                    event(
                        "response.output_text.done",
                        output_index=index,
                        item_id=item["id"],
                        content_index=0,
                        text=text,
                        logprobs=[],
                    ),
                    event(
                        "response.content_part.done",
                        output_index=index,
                        item_id=item["id"],
                        content_index=0,
                        part=item["content"][0],
                    ),
                    event("response.output_item.done", output_index=index, item=item),
                ]
            else:
                events += [
                    event(
                        "response.output_item.added",
                        output_index=index,
                        item={**item, "arguments": "", "status": "in_progress"},
                    ),
                    event(
                        "response.function_call_arguments.delta",
                        output_index=index,
                        item_id=item["id"],
                        delta=item["arguments"],
                    ),
                    event(
                        "response.function_call_arguments.done",
                        output_index=index,
                        item_id=item["id"],
                        name=item["name"],
                        arguments=item["arguments"],
                    ),
                    event("response.output_item.done", output_index=index, item=item),
                ]
        events.append(event("response.completed", response=response))
        return await _sse(request, iter(events), done=False)

    async def _images(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if self._image_faults:
            return _error(self._image_faults.popleft())
        params = recorded.json or {key: values[0] for key, values in recorded.form.items()}
        count = int(params.get("n") or 1)
        prompt = params.get("prompt", "")
        return web.json_response(
            {
                "created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(self.image).decode(), "revised_prompt": prompt}] * count,
                "output_format": "png",
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 100,
                    "total_tokens": 110,
                    "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
                },
            }
        )

    async def _transcriptions(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if "file" not in recorded.files:
            return _error(Fault(400, "you must provide a 'file'", "invalid_request_error"))
        result = self._transcripts.popleft() if self._transcripts else self.default_transcript
        if isinstance(result, Fault):
            return _error(result)
        if (recorded.form.get("response_format") or ["json"])[0] == "text":
            return web.Response(text=result)
        return web.json_response({"text": result})

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "fake"}],
            }
        )


def _tokens(body: dict[str, Any]) -> int:
    return max(1, len(json.dumps(body)) // 4)


def _error(fault: Fault) -> web.Response:
    return web.json_response(
        {"error": {"message": fault.message, "type": fault.type, "param": None, "code": fault.code}},
        status=fault.status,
    )


async def _sse(
    request: web.Request, events: Iterable[tuple[str | None, dict[str, Any]]], *, done: bool
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for kind, data in events:
        prefix = f"event: {kind}\n" if kind else ""
        await response.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
    if done:
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
