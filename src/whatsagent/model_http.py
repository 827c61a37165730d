"""One HTTP client for every model provider in the process.

pydantic-ai's providers, left to themselves, each create an HTTP client of their own: every agent (a team
has several) holds its own connection pool and TLS context, keeps at most 100 idle connections (so after a
burst of long model calls the rest reconnect, TLS handshake included) and sends over httpx's own
transport. whatsagent builds its agents' providers itself, once per agent, over one shared
`httpx2.AsyncClient` that is never closed while the process serves:

- its requests go over aiohttp (the openai SDK's own aiohttp transport, ``openai[aiohttp]``), which costs
  about a third less CPU per request than httpx's own transport; without it, httpx's transport is used;
- each event loop gets its own connection pool (a pool belongs to the loop that opened it), closed by
  `close_loop_pools` when the OS stops;
- the pool holds up to 1,000 connections, keeping every idle one for 60 s, so a burst of long model calls
  never waits for a connection and never reconnects.

OpenAI, OpenAI-compatible servers (``base_url=``), Anthropic, Google and every other provider whose class
takes an ``http_client`` go through it; providers that do not are built by pydantic-ai as before.

The openai SDK's ``chat.completions.create`` first walks the whole request (every message, every tool
schema) through its type-driven transform, about a fifth of the SDK's CPU per call. For Chat Completions
that walk changes nothing but dropping the arguments left out: no request parameter has an alias or a
format. `fast_chat_completions` gives a provider's client a ``create`` that drops them itself and posts
through the SDK's own request pipeline (headers, auth, retries, errors and response types unchanged).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2  # this module is imported when the first model is built, never at start-up

if TYPE_CHECKING:
    from pydantic_ai.models import Model
    from pydantic_ai.providers import Provider

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 1000
KEEPALIVE_SECONDS = 60.0

_lock = threading.Lock()
_client: httpx2.AsyncClient | None = None
_transport: _PerLoopTransport | None = None


def _transport_factory() -> Callable[[], Any]:
    """A function building one loop's transport: aiohttp when the openai SDK's aiohttp extra is there."""
    limits = httpx2.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS, keepalive_expiry=KEEPALIVE_SECONDS
    )
    try:
        import aiohttp  # noqa: F401  (the transport needs it)
        from openai._vendor.httpx_aiohttp.transport import AiohttpTransport
    except ImportError:
        return lambda: httpx2.AsyncHTTPTransport(limits=limits)
    ssl_context = httpx2.create_ssl_context()  # once: building one costs milliseconds
    return lambda: AiohttpTransport(verify=ssl_context, limits=limits)


class _PerLoopTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends through the current event loop's own pool."""

    def __init__(self) -> None:
        self._factory = _transport_factory()
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self.kind = type(self._factory()).__name__

    def pool(self) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = self._factory()
        return pool

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response: httpx2.Response = await self.pool().handle_async_request(request)
        return response

    async def aclose(self) -> None:
        await close_loop_pools()

    async def close_current(self) -> None:
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


def shared_http_client() -> httpx2.AsyncClient:
    """The process's HTTP client for model providers (pydantic-ai's timeouts and user agent)."""
    global _client, _transport
    with _lock:
        if _client is None:
            from pydantic_ai.models import create_async_httpx2_client

            _transport = _PerLoopTransport()
            _client = create_async_httpx2_client(transport=_transport)
            log.debug("model providers share one HTTP client over %s", _transport.kind)
        return _client


async def close_loop_pools() -> None:
    """Close the connections the current event loop opened to model providers (the OS calls it on stop)."""
    if _transport is not None:
        await _transport.close_current()


def fast_chat_completions(client: Any) -> None:
    """Give this openai SDK client the ``chat.completions.create`` without the request transform (above)."""
    from openai import AsyncOpenAI

    fast = _fast_completions_class()
    if isinstance(client, AsyncOpenAI) and not isinstance(client.chat.completions, fast):
        vars(client.chat)["completions"] = fast(client)  # the SDK's cached resource, on this client only


_fast_completions: type | None = None


def _fast_completions_class() -> type:
    """The class, built once on first use (the SDK is not imported at start-up)."""
    global _fast_completions
    if _fast_completions is None:
        from openai import AsyncStream, NotGiven, Omit
        from openai._base_client import make_request_options
        from openai.resources.chat.completions import AsyncCompletions
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        class FastCompletions(AsyncCompletions):
            """Chat Completions posted without the SDK's request transform (a no-op for this endpoint)."""

            async def create(self, **params: Any) -> Any:  # type: ignore[override]
                if params.get("stream") or not isinstance(params.get("response_format"), (dict, Omit, type(None))):
                    return await super().create(**params)  # streams, and response formats given as types
                options = make_request_options(
                    extra_headers=params.pop("extra_headers", None),
                    extra_query=params.pop("extra_query", None),
                    extra_body=params.pop("extra_body", None),
                    timeout=params.pop("timeout", NotGiven()),
                    security={"bearer_auth": True},
                )
                body = {k: v for k, v in params.items() if not isinstance(v, (Omit, NotGiven))}
                return await self._post(
                    "/chat/completions",
                    body=body,
                    options=options,
                    cast_to=ChatCompletion,
                    stream=False,
                    stream_cls=AsyncStream[ChatCompletionChunk],
                )

        _fast_completions = FastCompletions
    return _fast_completions


def provider(name: str, *, base_url: str | None = None, api_key: str | None = None) -> Provider[Any]:
    """pydantic-ai's provider `name` (``openai``, ``anthropic``, ``google``...) over the shared client. An
    agent builds its model, and so its provider, once; providers whose class takes no ``http_client``
    get their own, as pydantic-ai builds them."""
    from pydantic_ai.providers import infer_provider, infer_provider_class

    if name.startswith("gateway/") and base_url is None and api_key is None:
        return infer_provider(name)  # the Pydantic AI Gateway routes through its own provider
    provider_class: Any = infer_provider_class(name)
    kwargs: dict[str, Any] = {}
    if base_url is not None:
        kwargs["base_url"] = base_url
    if api_key is not None:
        kwargs["api_key"] = api_key
    if "http_client" in inspect.signature(provider_class).parameters:
        kwargs["http_client"] = shared_http_client()
    built: Provider[Any] = provider_class(**kwargs)
    fast_chat_completions(getattr(built, "client", None))
    return built


def build_model(model: str | Model, *, api_key: str | None = None) -> str | Model:
    """A model string as pydantic-ai's model, its provider built by `provider` (shared, once); a `Model`,
    ``"test"`` or a string pydantic-ai cannot place are returned as they are (pydantic-ai reports those)."""
    if not isinstance(model, str) or ":" not in model:
        return model
    from pydantic_ai.models import infer_model

    return infer_model(model, provider_factory=lambda name: provider(name, api_key=api_key))
