"""Deterministic models for tests: `scripted_model(...)` answers each model request with the next step,
text or `tool_call(...)`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel


@dataclass(frozen=True)
class _ToolCall:
    name: str
    args: dict[str, Any]


def tool_call(name: str, **args: Any) -> _ToolCall:
    """A scripted model step that calls the tool `name` with `args`; the next step sees its result."""
    return _ToolCall(name, args)


Step = str | _ToolCall | Sequence[_ToolCall] | Callable[[list[ModelMessage], AgentInfo], ModelResponse]


class ScriptedModel(FunctionModel):
    """A pydantic-ai model that answers with the given steps, in order, one per model request.

    `prompts` records the user's text of every request (what the bot passed to the model), `requests`
    the full message lists. Running out of steps fails the test with what was asked."""

    def __init__(self, steps: Sequence[Step], *, repeat_last: bool = False) -> None:
        self.steps = list(steps)
        self.repeat_last = repeat_last
        self.prompts: list[str] = []
        self.requests: list[list[ModelMessage]] = []
        self._next = 0
        super().__init__(self._answer, model_name="scripted")

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        last = messages[-1] if messages else None
        if isinstance(last, ModelRequest) and any(isinstance(p, UserPromptPart) for p in last.parts):
            self.prompts.append(_prompt_text(last))
        if self._next >= len(self.steps):
            if self.repeat_last and self.steps:
                step = self.steps[-1]
            else:
                raise AssertionError(
                    f"scripted_model has {len(self.steps)} step(s) and was asked for another; "
                    f"prompts so far: {self.prompts}"
                )
        else:
            step = self.steps[self._next]
            self._next += 1
        if isinstance(step, str):
            return ModelResponse(parts=[TextPart(step)])
        if isinstance(step, _ToolCall):
            return ModelResponse(parts=[ToolCallPart(step.name, step.args)])
        if callable(step):
            return step(messages, info)
        return ModelResponse(parts=[ToolCallPart(c.name, c.args) for c in step])


def scripted_model(*steps: Step, repeat_last: bool = False) -> ScriptedModel:
    """A deterministic model for tests: each step answers one model request, in order.

        model = scripted_model("Hi! What is your name?", tool_call("remember", fact="name is Ana"), "Noted.")
        Agent(model=model)

    A step is the answer's text, a `tool_call(...)` (or a list of them, called together), or a function
    ``(messages, info) -> ModelResponse`` for anything else. `repeat_last=True` keeps answering with
    the last step once the script is used up."""
    return ScriptedModel(steps, repeat_last=repeat_last)


def _prompt_text(request: ModelRequest) -> str:
    texts = []
    for part in request.parts:
        if isinstance(part, UserPromptPart):
            if isinstance(part.content, str):
                texts.append(part.content)
            else:
                texts.extend(c if isinstance(c, str) else f"[{type(c).__name__}]" for c in part.content)
    return "\n".join(texts)
