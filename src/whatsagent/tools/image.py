"""`ImageTools`: an agent generates images, or edits one the user sent, and sends them on WhatsApp.

    Agent(model=..., tools=[ImageTools()])                                  # OpenAI, gpt-image-1
    Agent(model=..., tools=[ImageTools("google:gemini-2.5-flash-image")])   # Gemini image generation
    Agent(model=..., tools=[ImageTools("openai:dall-e-3")])                 # DALL·E 3 (2 edits too)

One interface over pydantic-ai's image generation models (OpenAI's GPT Image models, Gemini image models,
xAI) and OpenAI's DALL·E 2 and 3 (which pydantic-ai's adapter refuses; whatsagent calls the Images API for
them): a model string, or an `ImageGenerationModel` (e.g. `OpenAIImageGenerationModel` with its own provider).
The model is checked when the app starts (`check`): a name that is not an image model, or a missing key,
stops start-up with one line saying so, never a failure at the first picture.
`api_key` / `base_url` go to the model string's provider: an OpenAI-compatible images endpoint, or a Gemini API
endpoint (for Gemini, GOOGLE_API_KEY and GOOGLE_GEMINI_BASE_URL work too). The picture is kept in the media
store and sent as an image message with the turn's answer (the answer's text becomes its caption when short
enough); WhatsApp's limits are applied on the way out (PNG/JPEG ≤ 5 MB, converted when needed).
"""

from __future__ import annotations

import base64
import io
import logging
from typing import TYPE_CHECKING, Any

from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.messages import BinaryImage, ModelRequest, UserPromptPart
from pydantic_ai.toolsets import FunctionToolset

from whatsagent.agents.context import TurnContext
from whatsagent.errors import ConfigurationError
from whatsagent.media.references import parse_reference
from whatsagent.media.store import MediaNotFound
from whatsagent.messages.outbound import MediaOut

if TYPE_CHECKING:
    from pydantic_ai.images import ImageGenerationModel

log = logging.getLogger(__name__)

DEFAULT_MODEL = "openai:gpt-image-1"

OPENAI_IMAGE_MODELS = ("gpt-image", "chatgpt-image", "dall-e-2", "dall-e-3")
"""Name prefixes of OpenAI's image models (others, like gpt-4o, are refused by its Images API)."""

INSTRUCTIONS = """\
You can create pictures with `generate_image` and change a picture the user sent with `edit_image`; the
picture is sent to the user with your answer, and your answer becomes its caption, so keep it short."""


class ImageTools(FunctionToolset[TurnContext]):
    """Generate and edit images, sent to the current user."""

    def __init__(
        self,
        model: str | ImageGenerationModel = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: dict[str, Any] | None = None,
        edits: bool = True,
    ) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.model_spec = model
        self.api_key = api_key
        self.base_url = base_url
        self.settings = settings
        self._model: ImageGenerationModel | DallE | None = None
        self.add_function(self.generate_image, name="generate_image")
        if edits and not (isinstance(model, str) and model.endswith(":dall-e-3")):  # DALL·E 3 cannot edit
            self.add_function(self.edit_image, name="edit_image")

    def check(self) -> None:
        """Start-up check: the model is an image model whatsagent can call, and its key is at hand.
        Raises `ConfigurationError` with one line saying what to change."""
        spec = self.model_spec
        if isinstance(spec, str):
            provider, _, name = spec.partition(":")
            hint = "use e.g. openai:gpt-image-1, openai:dall-e-3 or google:gemini-2.5-flash-image"
            if provider == "openai" and not name.startswith(OPENAI_IMAGE_MODELS):
                raise ConfigurationError(f"ImageTools({spec!r}): {name} is not an OpenAI image model; {hint}")
            if provider in ("google", "google-gla", "google-vertex") and not ("image" in name or "imagen" in name):
                raise ConfigurationError(f"ImageTools({spec!r}): {name} is not a Gemini image model; {hint}")
        try:
            self.model  # noqa: B018 - builds it: an unknown provider or a missing key raises here
        except Exception as exc:
            raise ConfigurationError(f"ImageTools({spec!r}): {exc}") from exc

    @property
    def model(self) -> ImageGenerationModel | DallE:
        """The image generation model, built on first use (its provider SDK loads only then)."""
        if self._model is None:
            self._model = self._build()
        return self._model

    def _build(self) -> ImageGenerationModel | DallE:
        from pydantic_ai.images import infer_image_generation_model

        if not isinstance(self.model_spec, str):
            return self.model_spec
        provider_name, _, name = self.model_spec.partition(":")
        if provider_name == "openai" and name.startswith("dall-e"):
            return DallE(name, api_key=self.api_key, base_url=self.base_url)
        if self.api_key is None and self.base_url is None:
            return infer_image_generation_model(self.model_spec)
        api_key, base_url = self.api_key, self.base_url

        def provider(name: str) -> Any:
            from pydantic_ai.providers import infer_provider_class

            options: dict[str, Any] = {"api_key": api_key} if api_key else {}
            if base_url:
                options["base_url"] = base_url
            return infer_provider_class(name)(**options)

        return infer_image_generation_model(self.model_spec, provider_factory=provider)

    async def generate_image(self, ctx: RunContext[TurnContext], prompt: str, caption: str | None = None) -> str:
        """Create a picture from a description and send it to the user.

        Args:
            prompt: A detailed description of the picture.
            caption: Optional caption under the picture (≤ 1024 characters).
        """
        return await self._make(ctx, prompt, caption, images=None)

    async def edit_image(
        self, ctx: RunContext[TurnContext], prompt: str, image_key: str | None = None, caption: str | None = None
    ) -> str:
        """Change a picture the user sent (by default their latest one) and send the result.

        Args:
            prompt: What to change, e.g. "make the sky pink".
            image_key: The media key of the picture to edit; leave empty for the user's latest picture.
            caption: Optional caption under the picture (≤ 1024 characters).
        """
        store = ctx.deps.media_store
        key = image_key or _latest_image_key(ctx.deps)
        if store is None or key is None:
            raise ModelRetry("there is no picture from the user to edit; ask them to send one")
        try:
            data, stored = await store.get(key)
        except MediaNotFound as exc:
            raise ModelRetry(f"no picture is stored under {key!r}; leave image_key empty for the latest one") from exc
        return await self._make(ctx, prompt, caption, images=[BinaryImage(data=data, media_type=stored.mime_type)])

    async def _make(
        self, ctx: RunContext[TurnContext], prompt: str, caption: str | None, images: list[BinaryImage] | None
    ) -> str:
        from pydantic_ai.exceptions import ContentFilterError

        store = ctx.deps.media_store
        if store is None:
            return "No picture could be made: whatsagent has no media store configured."
        try:
            pictures = await self._generate(prompt, images)
        except ContentFilterError as exc:
            return f"The image service refused this picture ({exc}). Tell the user, and offer something else."
        except Exception as exc:
            # Whatever went wrong, the model is told why, and tells the user: never a failed turn.
            log.warning("image generation with %s failed: %r", self.model_spec, exc)
            return f"The image service failed ({exc}). Tell the user the picture could not be made."
        if not pictures:
            return "The image service returned no picture. Tell the user the picture could not be made."
        keys = []
        for data, mime_type in pictures:
            stored = await store.put(data, mime_type)
            ctx.deps.send(MediaOut(media_type="image", stored=stored.key, mime_type=stored.mime_type, caption=caption))
            keys.append(stored.key)
        return f"The picture is made and will be sent to the user (media key {', '.join(keys)})."

    async def _generate(self, prompt: str, images: list[BinaryImage] | None) -> list[tuple[bytes, str]]:
        model = self.model
        if isinstance(model, DallE):
            return await model.generate(prompt, images=images, settings=self.settings)
        result = await model.generate(prompt, images=images, settings=self.settings)  # type: ignore[arg-type]
        return [(image.content.data, image.content.media_type) for image in result.images]


class DallE:
    """OpenAI's DALL·E 2 and 3 through the Images API (pydantic-ai's image adapter takes only GPT Image
    models). Pictures come back as base64 PNG; DALL·E 2 also edits (the picture is sent as a square PNG,
    as the API requires); DALL·E 3 only generates."""

    def __init__(self, model_name: str, *, api_key: str | None = None, base_url: str | None = None) -> None:
        from pydantic_ai.providers.openai import OpenAIProvider

        if model_name not in ("dall-e-2", "dall-e-3"):
            raise ValueError(f"{model_name!r} is not a DALL·E model (dall-e-2 or dall-e-3)")
        self.model_name = model_name
        options: dict[str, Any] = {"api_key": api_key} if api_key else {}
        if base_url:
            options["base_url"] = base_url
        self.provider = OpenAIProvider(**options)  # no key anywhere: raises, naming OPENAI_API_KEY

    async def generate(
        self, prompt: str, images: list[BinaryImage] | None = None, settings: dict[str, Any] | None = None
    ) -> list[tuple[bytes, str]]:
        client = self.provider.client
        options: dict[str, Any] = {"size": "1024x1024", **(settings or {})}
        if images:
            if self.model_name != "dall-e-2":
                raise ValueError(f"{self.model_name} cannot edit pictures, only make new ones")
            response = await client.images.edit(
                model=self.model_name,
                image=("image.png", _square_png(images[-1].data), "image/png"),
                prompt=prompt[:1000],
                response_format="b64_json",
                **options,
            )
        else:
            response = await client.images.generate(
                model=self.model_name, prompt=prompt, n=1, response_format="b64_json", **options
            )
        return [(base64.b64decode(d.b64_json), "image/png") for d in response.data or [] if d.b64_json]


def _square_png(data: bytes) -> bytes:
    """The picture as a square RGBA PNG of at most 1024 px, as DALL·E 2's edits endpoint takes it."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        picture = opened.convert("RGBA")
        picture.thumbnail((1024, 1024))
        side = max(picture.size)
        square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    out = io.BytesIO()
    square.save(out, format="PNG")
    return out.getvalue()


def _latest_image_key(ctx: TurnContext) -> str | None:
    latest = ctx.latest_image()
    if latest is not None:
        return latest.key
    for message in reversed(ctx.history):
        if not isinstance(message, ModelRequest):
            continue
        for part in reversed(message.parts):
            if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                for item in reversed(list(part.content)):
                    found = parse_reference(item) if isinstance(item, str) else None
                    if found and found[1].startswith("image/"):
                        return found[0]
    return None
