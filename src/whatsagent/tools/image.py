"""`ImageTools`: an agent generates images, or edits one the user sent, and sends them on WhatsApp.

    Agent(model=..., tools=[ImageTools()])                                  # OpenAI, gpt-image-1
    Agent(model=..., tools=[ImageTools("google:gemini-2.5-flash-image")])   # Gemini image generation

One interface over pydantic-ai's image generation models (OpenAI's Images API, Gemini image models, xAI):
a model string, or an `ImageGenerationModel` (e.g. `OpenAIImageGenerationModel` with its own provider).
`api_key` / `base_url` go to the model string's provider: an OpenAI-compatible images endpoint, or a Gemini API
endpoint (for Gemini, GOOGLE_API_KEY and GOOGLE_GEMINI_BASE_URL work too). The picture is kept in the media
store and sent as an image message with the turn's answer (the answer's text becomes its caption when short
enough); WhatsApp's limits are applied on the way out (PNG/JPEG ≤ 5 MB, converted when needed).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.messages import BinaryImage, ModelRequest, UserPromptPart
from pydantic_ai.toolsets import FunctionToolset

from whatsagent.agent import TurnContext
from whatsagent.media.references import parse_reference
from whatsagent.media.store import MediaNotFound
from whatsagent.outbound import MediaOut

if TYPE_CHECKING:
    from pydantic_ai.images import ImageGenerationModel

log = logging.getLogger("whatsagent.tools.image")

DEFAULT_MODEL = "openai:gpt-image-1"

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
        self._model: ImageGenerationModel | None = None
        self.add_function(self.generate_image, name="generate_image")
        if edits:
            self.add_function(self.edit_image, name="edit_image")

    @property
    def model(self) -> ImageGenerationModel:
        """The image generation model, built on first use (its provider SDK loads only then)."""
        if self._model is None:
            self._model = self._build()
        return self._model

    def _build(self) -> ImageGenerationModel:
        from pydantic_ai.images import infer_image_generation_model

        if not isinstance(self.model_spec, str):
            return self.model_spec
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
        from pydantic_ai.exceptions import ContentFilterError, ModelHTTPError, UnexpectedModelBehavior

        store = ctx.deps.media_store
        if store is None:
            return "No picture could be made: whatsagent has no media store configured."
        try:
            result = await self.model.generate(prompt, images=images, settings=self.settings)  # type: ignore[arg-type]
        except ContentFilterError as exc:
            return f"The image service refused this picture ({exc}). Tell the user, and offer something else."
        except (ModelHTTPError, UnexpectedModelBehavior) as exc:
            log.warning("image generation failed: %s", exc)
            return f"The image service failed ({exc}). Tell the user the picture could not be made."
        keys = []
        for image in result.images:
            stored = await store.put(image.content.data, image.content.media_type)
            ctx.deps.send(MediaOut(media_type="image", stored=stored.key, mime_type=stored.mime_type, caption=caption))
            keys.append(stored.key)
        return f"The picture is made and will be sent to the user (media key {', '.join(keys)})."


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
