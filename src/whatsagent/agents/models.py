"""Which model answers: a pydantic-ai model string, a pydantic-ai `Model`, an OpenAI-compatible endpoint,
or — when nothing is configured — the offline model.

    Agent(model="openai:gpt-4o")                                   # key from OPENAI_API_KEY
    Agent(model="anthropic:claude-sonnet-4-5")                     # ANTHROPIC_API_KEY
    Agent(model="google:gemini-2.5-flash")                         # GOOGLE_API_KEY (google-gla: works too)
    Agent(model="llama3.2", base_url="http://localhost:11434/v1")  # Ollama, vLLM, LM Studio, OpenRouter...
    Agent()                                                        # WHATSAGENT_MODEL, a key in the
                                                                   # environment, else the offline model

Neither pydantic-ai nor a provider SDK is imported before the server is ready: a model string stays a
string, and a model built from arguments (``base_url=``, the offline model) is built on first use — by
the warm-up right after ready (`warm_up`, in a thread) or by the first turn, whichever comes first.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

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


class ResolvedModel:
    """What an agent will run on, and what media that model takes.

    `model`: a pydantic-ai model string (built by pydantic-ai on the first turn) or a `Model`; or, with
    `build`, None: `build` makes the `Model` the first time `model` is read (from any thread, once).
    `provider`: the provider's name as in the capability table (``openai-chat``, ``google``,
    ``function``...). `offline`: the offline model, not an AI, labelled as such in every answer.
    """

    def __init__(
        self,
        model: str | Model | None,
        provider: str,
        name: str,
        capabilities: Capabilities,
        offline: bool = False,
        *,
        build: Callable[[], Model] | None = None,
    ) -> None:
        if (model is None) == (build is None):
            raise ValueError("give a model or a function building it, not both")
        self._model = model
        self._build = build
        self._lock = threading.Lock()
        self.provider = provider
        self.name = name
        self.capabilities = capabilities
        self.offline = offline

    @property
    def model(self) -> str | Model:
        """The model string or `Model`; building a deferred one imports pydantic-ai and its provider SDK."""
        if self._model is None:
            with self._lock:  # the warm-up thread and the first turn may both ask
                if self._model is None:
                    assert self._build is not None
                    self._model = self._build()
        return self._model

    @property
    def deferred(self) -> bool:
        """Built from whatsagent's own arguments on first use (it carries its key, or needs none)."""
        return self._build is not None

    @property
    def label(self) -> str:
        return "offline (no AI model configured)" if self.offline else f"{self.provider}:{self.name}"

    def __repr__(self) -> str:
        what = self._model if self._model is not None else "(built on first use)"
        return f"ResolvedModel({what!r}, {self.provider!r}, {self.name!r}, offline={self.offline})"


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
            return ResolvedModel(
                None, "function", OFFLINE_NAME, capabilities_for("function"), offline=True, build=offline
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
    # "openai-chat:gpt-4o" and "gpt-4o" both mean the model name on that server.
    prefix, _, rest = model.partition(":")
    name = rest if rest and prefix in ("openai", "openai-chat", "openai-compatible") else model
    # Local servers (Ollama, LM Studio) accept any key; the SDK insists on one.
    key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"

    def build() -> Model:
        from pydantic_ai.models.openai import OpenAIChatModel

        from whatsagent import model_http

        # The provider (and its HTTP client) is shared and built once: see whatsagent.model_http.
        return OpenAIChatModel(name, provider=model_http.provider("openai", base_url=base_url, api_key=key))

    # What a model takes depends on the model, not on who serves it: gpt-4o behind a proxy or a
    # fake still reads PDFs, gpt-4o-audio-preview still hears.
    family = "openai-chat" if "api.openai.com" in base_url or is_openai_model(name) else "openai-compatible"
    return ResolvedModel(None, family, name, capabilities or capabilities_for(family, name), build=build)


OFFLINE_NAME = "whatsagent-offline"


def offline() -> Model:
    """The offline model (`whatsagent.agents.offline`), which imports pydantic-ai: built on first use."""
    from whatsagent.agents.offline import offline_model

    return offline_model()


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
    if resolved.deferred or not isinstance(resolved.model, str):
        return None
    names = PROVIDER_KEYS.get(resolved.provider, ())
    if not names or any(os.environ.get(n) for n in names):
        return None
    return " or ".join(names)


def _with_key(provider: str, name: str, api_key: str, capabilities: Capabilities | None) -> ResolvedModel:
    def build() -> Model:
        from pydantic_ai.models import infer_model

        from whatsagent import model_http

        return infer_model(
            f"{provider}:{name}", provider_factory=lambda _name: model_http.provider(provider, api_key=api_key)
        )

    return ResolvedModel(None, provider, name, capabilities or capabilities_for(provider, name), build=build)


WARM_MODULES = ("pydantic_ai", "whatsagent.turn_details")
"""What every pydantic-ai turn needs loaded: the agent and its run loop, and the turn details' recorder
(OpenTelemetry is loaded only for `TraceExport`, by its first turn)."""


def warm_up(models: Iterable[ResolvedModel]) -> None:
    """Load what the first turn would otherwise load on the event loop, holding up every webhook for a
    second or more: pydantic-ai, and each model with its provider SDK (a deferred model is built and
    kept; for a model string, a throwaway one is built, which imports its SDK). Meant for a thread
    started once the server is ready; whatever fails here is left for the first turn to report.

    Turns wait for it (`AgentOS`): two threads loading pydantic-ai's modules at once can trip Python's
    import deadlock detection on their circular imports. (It is not run holding the interpreter's import
    lock, which would hang, undetected, a thread caught halfway through an import of its own.)"""
    for module in WARM_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:
            log.debug("warm-up: %s not loaded: %r", module, exc)
    try:  # the history's serializer is built at its first use (~30 ms): here, not in the first turn
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        ModelMessagesTypeAdapter.dump_json([])
    except Exception as exc:
        log.debug("warm-up: the history serializer not built: %r", exc)
    for resolved in models:
        try:
            model: Any = resolved.model
            if isinstance(model, str):
                from whatsagent.model_http import build_model

                build_model(model)
        except Exception as exc:
            log.debug("warm-up: %s not built: %r", resolved.label, exc)
