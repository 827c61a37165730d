"""Which model answers: a pydantic-ai model string, a pydantic-ai `Model`, an OpenAI-compatible endpoint,
or — when nothing is configured — the offline model.

    Agent(model="openai:gpt-4o")                                   # key from OPENAI_API_KEY
    Agent(model="anthropic:claude-sonnet-4-5")                     # ANTHROPIC_API_KEY
    Agent(model="google:gemini-2.5-flash")                         # GOOGLE_API_KEY (google-gla: works too)
    Agent(model="llama3.2", base_url="http://localhost:11434/v1")  # Ollama, vLLM, LM Studio, OpenRouter...
    Agent()                                                        # WHATSAGENT_MODEL, a key in the
                                                                   # environment, else the offline model

Provider SDKs are imported only when a model of theirs is built (the first turn), never at start-up:
a model string stays a string until then.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from whatsagent.media.capabilities import Capabilities, capabilities_for, capabilities_for_model, provider_of

if TYPE_CHECKING:
    from pydantic_ai.models import Model

log = logging.getLogger(__name__)

# pydantic-ai 2.x renamed Google's providers; the old names are what most tutorials still show.
ALIASES = {"google-gla": "google", "google-vertex": "google-cloud"}

# With no model given, the first key found in the environment picks a sensible default model.
DEFAULTS_BY_KEY = (
    ("OPENAI_API_KEY", "openai:gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"),
    ("GOOGLE_API_KEY", "google:gemini-2.5-flash"),
    ("GEMINI_API_KEY", "google:gemini-2.5-flash"),
    ("GROQ_API_KEY", "groq:llama-3.3-70b-versatile"),
    ("MISTRAL_API_KEY", "mistral:mistral-small-latest"),
)


@dataclass(frozen=True)
class ResolvedModel:
    """What an agent will run on, and what media that model takes."""

    model: str | Model
    """A pydantic-ai model string (built lazily by pydantic-ai) or a `Model`."""
    provider: str
    """Provider name as in the capability table (``openai-chat``, ``google``, ``function``...)."""
    name: str
    capabilities: Capabilities
    offline: bool = False
    """True for the offline model: not an AI, labelled as such in every answer."""

    @property
    def label(self) -> str:
        return "offline (no AI model configured)" if self.offline else f"{self.provider}:{self.name}"


def model_in_environment() -> str | None:
    """The model ``Agent()`` picks with no model given: ``WHATSAGENT_MODEL``, else the default model of the
    first provider key found in the environment, else None (the offline model)."""
    return os.environ.get("WHATSAGENT_MODEL") or next(
        (default for env, default in DEFAULTS_BY_KEY if os.environ.get(env)), None
    )


def resolve_model(
    model: str | Model | None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    capabilities: Capabilities | None = None,
) -> ResolvedModel:
    """The model for `whatsagent.Agent`'s arguments. Never imports a provider SDK for a plain string."""
    if base_url is not None:
        return _openai_compatible(model, base_url, api_key, capabilities)
    if model is None:
        model = model_in_environment()
        if model is None:
            from whatsagent.agents.offline import offline_model

            return ResolvedModel(
                offline_model(), "function", "whatsagent-offline", capabilities_for("function"), offline=True
            )
        log.info("no model given; using %s (found its key in the environment)", model)
    if isinstance(model, str):
        provider, _, name = model.partition(":")
        if not name:
            if model == "test":
                return ResolvedModel(model, "test", "", capabilities or capabilities_for("test"))
            raise ValueError(
                f"model {model!r} needs a provider prefix, e.g. 'openai:gpt-4o', 'anthropic:claude-sonnet-4-5', "
                "'google:gemini-2.5-flash', or pass base_url= for an OpenAI-compatible server"
            )
        provider = ALIASES.get(provider, provider)
        if api_key is not None:
            return _with_key(provider, name, api_key, capabilities)
        return ResolvedModel(f"{provider}:{name}", provider, name, capabilities or capabilities_for(provider, name))
    provider, name = provider_of(model)
    return ResolvedModel(model, provider, name, capabilities or capabilities_for_model(model))


def _openai_compatible(
    model: str | Model | None, base_url: str, api_key: str | None, capabilities: Capabilities | None
) -> ResolvedModel:
    if not isinstance(model, str) or not model:
        raise ValueError("with base_url=, give the model's name as the server knows it, e.g. model='llama3.2'")
    from pydantic_ai.models.openai import OpenAIChatModel

    from whatsagent import model_http

    # "openai-chat:gpt-4o" and "gpt-4o" both mean the model name on that server.
    prefix, _, rest = model.partition(":")
    name = rest if rest and prefix in ("openai", "openai-chat", "openai-compatible") else model
    # Local servers (Ollama, LM Studio) accept any key; the SDK insists on one.
    key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    # The provider (and its HTTP client) is shared and built once: see whatsagent.model_http.
    built = OpenAIChatModel(name, provider=model_http.provider("openai", base_url=base_url, api_key=key))
    # What a model takes depends on the model, not on who serves it: gpt-4o behind a proxy or a
    # fake still reads PDFs, gpt-4o-audio-preview still hears.
    family = "openai-chat" if "api.openai.com" in base_url or is_openai_model(name) else "openai-compatible"
    return ResolvedModel(built, family, name, capabilities or capabilities_for(family, name))


_OPENAI_NAMES = re.compile(r"(gpt-|chatgpt-|o[1-9](-|$)|whisper)")


def is_openai_model(name: str) -> bool:
    """Whether `name` is one of OpenAI's models (gpt-4o, o3-mini...), whoever serves it."""
    return _OPENAI_NAMES.match(name.lower()) is not None


PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "openai-chat": ("OPENAI_API_KEY",),
    "openai-responses": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "cohere": ("CO_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "grok": ("XAI_API_KEY",),
}
"""The environment variable(s) holding each provider's API key, as pydantic-ai's providers read them."""


def missing_key(resolved: ResolvedModel) -> str | None:
    """The environment variable a model string needs and does not have, or None (a built `Model` carries
    its own key; providers not listed here are not checked)."""
    if not isinstance(resolved.model, str):
        return None
    names = PROVIDER_KEYS.get(resolved.provider, ())
    if not names or any(os.environ.get(n) for n in names):
        return None
    return " or ".join(names)


def _with_key(provider: str, name: str, api_key: str, capabilities: Capabilities | None) -> ResolvedModel:
    from pydantic_ai.models import infer_model

    from whatsagent import model_http

    built = infer_model(
        f"{provider}:{name}", provider_factory=lambda _name: model_http.provider(provider, api_key=api_key)
    )
    return ResolvedModel(built, provider, name, capabilities or capabilities_for(provider, name))
