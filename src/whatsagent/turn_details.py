"""The pydantic-ai capability that records a turn's agent runs, model requests and tool calls.

`whatsagent.tracing.TracedResponder` opens a `TurnRecorder` for the turn (in a context variable, so
concurrent turns never mix); this capability, attached to every pydantic-ai run of the turn (see
`run_capabilities`), adds a row per agent run (``invoke_agent <agent>``), model request (``chat
<model>``) and tool call (``execute_tool <tool>``): its name, start and end in seconds from the turn's
start, its depth (a member agent's run nests under the tool that asked it) and a short detail (models,
token counts, tool name and call id), never the messages' content. A run outside a recorded turn passes
straight through.

It reads no OpenTelemetry and builds no span attributes: a few dictionaries per turn. Imported with
pydantic-ai, on the first turn (not at start-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_ai.capabilities import AbstractCapability, CapabilityOrdering
from pydantic_ai.exceptions import (
    ApprovalRequired,
    CallDeferred,
    ModelRetry,
    SkipToolExecution,
    ToolFailedError,
    ToolRetryError,
)

from whatsagent.tracing import MAX_SPANS, RECORDER

if TYPE_CHECKING:
    from pydantic_ai.capabilities.abstract import (
        RawToolArgs,
        ValidatedToolArgs,
        WrapModelRequestHandler,
        WrapRunHandler,
        WrapToolExecuteHandler,
    )
    from pydantic_ai.messages import ModelResponse, ToolCallPart
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.tools import RunContext, ToolDefinition

_DEPTH: ContextVar[int] = ContextVar("whatsagent_turn_detail_depth", default=0)
"""How deep the current step is in the turn: 0 for the turn's agent run, 1 for its model requests and
tool calls, 2 for the run of a member agent a tool asked, and so on."""

_NOT_ERRORS = (CallDeferred, ApprovalRequired, SkipToolExecution)
"""A tool call that is deferred, waits for approval or is skipped did not fail."""


def _open(rows: list[dict[str, Any]], origin: float, name: str, depth: int, detail: str) -> dict[str, Any]:
    row = {"name": name, "start": perf_counter() - origin, "end": None, "depth": depth, "detail": detail, "error": None}
    if len(rows) < MAX_SPANS:
        rows.append(row)
    return row


def error_text(exc: BaseException) -> str:
    """What went wrong, short, without the data it went wrong on (a validation error lists its inputs)."""
    if isinstance(exc, ToolRetryError):
        content = exc.tool_retry.content
        if isinstance(content, list):
            return f"retry: {_errors(len(content))}"
        return f"retry: {exc}"[:200]
    if isinstance(exc, ModelRetry):
        return f"retry: {exc.message}"[:200]
    if isinstance(exc, ToolFailedError):
        return f"failed: {exc}"[:200]
    if isinstance(exc, ValidationError):
        return f"ValidationError: {_errors(exc.error_count())}"
    message = str(exc)
    return f"{type(exc).__name__}: {message}"[:200] if message else type(exc).__name__


def _errors(count: int) -> str:
    return f"{count} validation error{'s' if count != 1 else ''}"


@dataclass
class TurnDetails(AbstractCapability[Any]):
    """Records, into the turn's `TurnRecorder`, each agent run, model request and tool call (outermost,
    so a row times everything the other capabilities add). One instance serves every run: its state is
    the turn's recorder and the current depth, both context variables."""

    def get_ordering(self) -> CapabilityOrdering:
        return CapabilityOrdering(position="outermost")

    async def wrap_run(self, ctx: RunContext[Any], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        recorder = RECORDER.get()
        if recorder is None:
            return await handler()
        depth = _DEPTH.get()
        name = (ctx.agent.name if ctx.agent is not None else None) or "agent"
        row = _open(recorder.rows, recorder.origin, f"invoke_agent {name}", depth, "")
        token = _DEPTH.set(depth + 1)
        try:
            return await handler()
        except BaseException as exc:
            row["error"] = error_text(exc)
            raise
        finally:
            row["end"] = perf_counter() - recorder.origin
            _DEPTH.reset(token)

    async def wrap_model_request(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, handler: WrapModelRequestHandler
    ) -> ModelResponse:
        recorder = RECORDER.get()
        if recorder is None:
            return await handler(request_context)
        model = request_context.model.model_name
        row = _open(recorder.rows, recorder.origin, f"chat {model}", _DEPTH.get(), f"request.model={model}")
        try:
            response = await handler(request_context)
        except BaseException as exc:
            row["error"] = error_text(exc)
            raise
        finally:
            row["end"] = perf_counter() - recorder.origin
        usage = response.usage
        detail = f"request.model={model}"
        if response.model_name:
            detail += f", response.model={response.model_name}"
        row["detail"] = f"{detail}, input_tokens={usage.input_tokens}, output_tokens={usage.output_tokens}"
        return response

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        recorder = RECORDER.get()
        if recorder is None:
            return await handler(args)
        depth = _DEPTH.get()
        detail = f"tool.name={call.tool_name}, call.id={call.tool_call_id}"
        row = _open(recorder.rows, recorder.origin, f"execute_tool {call.tool_name}", depth, detail)
        token = _DEPTH.set(depth + 1)
        try:
            return await handler(args)
        except _NOT_ERRORS:
            raise
        except BaseException as exc:
            row["error"] = error_text(exc)
            raise
        finally:
            row["end"] = perf_counter() - recorder.origin
            _DEPTH.reset(token)

    async def on_tool_validate_error(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: RawToolArgs,
        error: ValidationError | ModelRetry,
    ) -> ValidatedToolArgs:
        """A tool call the model got wrong never runs: a row says so (as pydantic-ai's span does)."""
        recorder = RECORDER.get()
        if recorder is not None:
            detail = f"tool.name={call.tool_name}, call.id={call.tool_call_id}"
            row = _open(recorder.rows, recorder.origin, f"execute_tool {call.tool_name}", _DEPTH.get(), detail)
            row["end"] = row["start"]
            row["error"] = (
                f"invalid arguments: {_errors(error.error_count())}"
                if isinstance(error, ValidationError)
                else error_text(error)
            )
        raise error


TURN_DETAILS = TurnDetails()


def run_capabilities() -> Sequence[AbstractCapability[Any]] | None:
    """What a pydantic-ai run of the current turn is given: the recorder's capability while a turn is
    recorded, nothing otherwise (``AgentOS(turn_details=False)``, a run outside a turn)."""
    return (TURN_DETAILS,) if RECORDER.get() is not None else None
