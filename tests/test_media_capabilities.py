"""A medium the user sent reaches the model in a form its provider takes, or as words; never as an error.

The OpenAI cases run pydantic-ai's real OpenAI models against the local fake API, so what is asserted
is the JSON that would go over the wire.
"""

from __future__ import annotations

import base64
import io
import wave

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import BinaryContent, ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentedModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from fakes import media_files
from fakes.openai_api import FakeOpenAI
from whatsagent.media.capabilities import (
    ANY,
    CAPABILITIES,
    Capabilities,
    capabilities_for,
    capabilities_for_model,
    provider_of,
)
from whatsagent.media.limits import MB
from whatsagent.media.model_input import to_model_input
from whatsagent.media.transcribe import OpenAITranscriber, TranscriptionFailed

VOICE = "[The user sent a voice note (0:02)]"


@pytest.fixture
async def openai():
    async with FakeOpenAI(api_key="test") as fake:
        yield fake


def chat_model(fake: FakeOpenAI, name: str) -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=fake.base_url, api_key="test"))


def responses_model(fake: FakeOpenAI, name: str) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(name, provider=OpenAIProvider(base_url=fake.base_url, api_key="test"))


# --- voice notes ----------------------------------------------------------------------------------


async def test_a_voice_note_reaches_an_openai_audio_model_as_wav(openai: FakeOpenAI) -> None:
    content = await to_model_input(
        "openai-chat", "gpt-4o-audio-preview", "audio", media_files.voice_note(2.0), "audio/ogg", VOICE
    )
    assert isinstance(content, BinaryContent) and content.media_type == "audio/wav"

    openai.reply("I heard a rising tone.")
    result = await Agent(chat_model(openai, "gpt-4o-audio-preview")).run([VOICE, content])

    assert result.output == "I heard a rising tone."
    parts = openai.content_parts()
    assert [p["type"] for p in parts] == ["text", "input_audio"]
    sent = parts[1]["input_audio"]
    assert sent["format"] == "wav"
    with wave.open(io.BytesIO(base64.b64decode(sent["data"]))) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 16_000, 2)
        assert wav.getnframes() / wav.getframerate() == pytest.approx(2.0, abs=0.05)


async def test_a_model_that_cannot_listen_gets_the_description(openai: FakeOpenAI) -> None:
    content = await to_model_input("openai-chat", "gpt-4o", "audio", media_files.voice_note(), "audio/ogg", VOICE)
    assert content == f"{VOICE} (Its content is not available to you: openai-chat:gpt-4o cannot listen to audio.)"

    openai.reply("Could you type that?")
    await Agent(chat_model(openai, "gpt-4o")).run([content])
    assert [p["type"] for p in openai.content_parts()] == ["text"]


async def test_openai_model_strings_use_the_responses_api_which_takes_no_audio() -> None:
    # `openai:gpt-4o-audio-preview` is OpenAIResponsesModel in pydantic-ai 2.x: audio raises there.
    content = await to_model_input("openai", "gpt-4o-audio-preview", "audio", media_files.voice_note(), None, VOICE)
    assert isinstance(content, str) and "cannot listen to audio" in content


async def test_a_voice_note_is_transcribed_when_the_model_cannot_listen(openai: FakeOpenAI) -> None:
    openai.transcript("see you at five")
    transcriber = OpenAITranscriber(api_key="test", base_url=openai.base_url, model="whisper-1")
    voice = media_files.voice_note()

    content = await to_model_input(
        "anthropic", "claude-sonnet-4-5", "audio", voice, "audio/ogg", VOICE, transcriber=transcriber
    )

    assert content == f"{VOICE}\nTranscript of the recording: see you at five"
    (request,) = openai.requests_to("/v1/audio/transcriptions")
    (upload,) = request.files["file"]
    assert (upload.filename, upload.content_type, upload.data) == ("voice.ogg", "audio/ogg", voice)
    assert request.form["model"] == ["whisper-1"]


async def test_a_failed_transcription_still_reaches_the_model_as_words(openai: FakeOpenAI) -> None:
    openai.fail_transcription(503, "overloaded")
    transcriber = OpenAITranscriber(api_key="test", base_url=openai.base_url)
    content = await to_model_input(
        "groq", "llama-3.3-70b", "audio", media_files.voice_note(), None, VOICE, transcriber=transcriber
    )
    assert isinstance(content, str) and content.startswith(f"{VOICE} (It could not be transcribed:")
    assert "HTTP 503" in content
    with pytest.raises(TranscriptionFailed, match="HTTP 503"):
        openai.fail_transcription(503, "overloaded")
        await transcriber.transcribe(media_files.voice_note(), "audio/ogg")


async def test_gemini_hears_the_voice_note_as_it_is() -> None:
    voice = media_files.voice_note()
    content = await to_model_input("google-gla", "gemini-2.5-flash", "audio", voice, "audio/ogg", VOICE)
    assert isinstance(content, BinaryContent)
    assert (content.media_type, content.data) == ("audio/ogg", voice)


async def test_an_unreadable_voice_note_becomes_words_not_an_error() -> None:
    content = await to_model_input("openai-chat", "gpt-audio", "audio", b"OggS" + b"\x00" * 100, "audio/ogg", VOICE)
    assert isinstance(content, str) and content.startswith(f"{VOICE} (The audio could not be opened")


# --- what pydantic-ai's adapters do, which the table follows ------------------------------------------


async def test_pydantic_ai_refuses_ogg_audio_for_openai_chat_so_it_is_converted(openai: FakeOpenAI) -> None:
    ogg = BinaryContent(media_files.voice_note(), media_type="audio/ogg")
    with pytest.raises(AssertionError):
        await Agent(chat_model(openai, "gpt-4o-audio-preview")).run([VOICE, ogg])


async def test_pydantic_ai_refuses_any_audio_for_openai_responses(openai: FakeOpenAI) -> None:
    wav = BinaryContent(media_files.wav_tone(0.2), media_type="audio/wav")
    with pytest.raises(NotImplementedError):
        await Agent(responses_model(openai, "gpt-4o")).run([VOICE, wav])


# --- images, stickers, documents, video -------------------------------------------------------------


@pytest.mark.parametrize("make_model", [chat_model, responses_model])
async def test_an_image_reaches_openai_as_a_data_url(openai: FakeOpenAI, make_model) -> None:
    jpeg = media_files.image_bytes("JPEG")
    content = await to_model_input("openai", "gpt-4o", "image", jpeg, "image/jpeg", "[The user sent an image]")
    assert isinstance(content, BinaryContent) and content.data == jpeg

    openai.reply("A yellow circle.")
    await Agent(make_model(openai, "gpt-4o")).run(["What is this?", content])

    (image,) = [p for p in openai.content_parts() if p["type"] in ("image_url", "input_image")]
    url = image["image_url"]["url"] if image["type"] == "image_url" else image["image_url"]
    assert url == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


async def test_a_sticker_becomes_a_png_for_a_model_that_does_not_read_webp() -> None:
    sticker = media_files.image_bytes("WEBP", 512, 512, mode="RGBA")
    content = await to_model_input("xai", "grok-4", "sticker", sticker, "image/webp", "[A sticker]")
    assert isinstance(content, BinaryContent) and content.media_type == "image/png"
    kept = await to_model_input("anthropic", "claude-sonnet-4-5", "sticker", sticker, "image/webp", "[A sticker]")
    assert isinstance(kept, BinaryContent) and kept.media_type == "image/webp"


async def test_an_image_too_big_for_anthropic_is_shrunk_to_fit() -> None:
    noisy = media_files.noise_png(1500, 1300)
    assert len(noisy) > 5 * MB
    content = await to_model_input("anthropic", "claude-sonnet-4-5", "image", noisy, "image/png", "[An image]")
    assert isinstance(content, BinaryContent)
    assert content.media_type == "image/jpeg" and len(content.data) <= 5 * MB


async def test_a_text_only_model_gets_the_description_of_an_image() -> None:
    content = await to_model_input(
        "groq", "llama-3.3-70b-versatile", "image", media_files.image_bytes("PNG"), None, "[An image]"
    )
    assert (
        content == "[An image] (Its content is not available to you: groq:llama-3.3-70b-versatile cannot see images.)"
    )
    vision = await to_model_input(
        "groq",
        "meta-llama/llama-4-scout-17b-16e-instruct",
        "image",
        media_files.image_bytes("PNG"),
        None,
        "[An image]",
    )
    assert isinstance(vision, BinaryContent)


async def test_a_pdf_reaches_openai_as_a_file_part(openai: FakeOpenAI) -> None:
    pdf = media_files.pdf()
    content = await to_model_input("openai-chat", "gpt-4o", "document", pdf, "application/pdf", "[report.pdf]")
    assert isinstance(content, BinaryContent) and content.media_type == "application/pdf"

    openai.reply("It says Hello.")
    await Agent(chat_model(openai, "gpt-4o")).run(["Summarise", content])
    (file,) = [p for p in openai.content_parts() if p["type"] == "file"]
    assert file["file"]["file_data"].startswith("data:application/pdf;base64,")


async def test_text_and_word_documents_reach_any_model_as_text() -> None:
    csv = await to_model_input(
        "groq",
        "llama-3.3-70b",
        "document",
        b"name,age\nAda,36\n",
        "text/csv",
        "[people.csv]",
        filename="people.csv",
    )
    assert csv == "[people.csv]\n<document people.csv>\nname,age\nAda,36\n\n</document>"

    word = media_files.docx("Dear Ada,", "See you &amp; Charles at five.")
    text = await to_model_input("openai", "gpt-4o", "document", word, None, "[letter.docx]")
    assert text == "[letter.docx]\n<document>\nDear Ada,\nSee you & Charles at five.\n</document>"

    # Bedrock's Converse API reads Word files itself.
    native = await to_model_input(
        "bedrock", "us.anthropic.claude-sonnet-4-5-v1:0", "document", word, None, "[letter.docx]"
    )
    assert isinstance(native, BinaryContent) and native.media_type.endswith("wordprocessingml.document")


async def test_video_reaches_gemini_and_becomes_words_for_openai() -> None:
    mp4 = media_files.video("libx264", seconds=0.5)
    gemini = await to_model_input("google", "gemini-2.5-pro", "video", mp4, "video/mp4", "[A video]")
    assert isinstance(gemini, BinaryContent) and gemini.media_type == "video/mp4"
    openai = await to_model_input("openai", "gpt-4o", "video", mp4, "video/mp4", "[A video]")
    assert openai == "[A video] (Its content is not available to you: openai:gpt-4o cannot watch video.)"


async def test_a_medium_over_the_providers_limit_is_described_with_its_size() -> None:
    huge = media_files.pdf() + b"\x00" * (40 * MB)
    content = await to_model_input("anthropic", "claude-sonnet-4-5", "document", huge, "application/pdf", "[big.pdf]")
    assert content == "[big.pdf] (Its content is not available to you: it is 40.0 MB, over the 24 MB this model takes.)"


async def test_an_unknown_provider_gets_words_only() -> None:
    content = await to_model_input("someday-ai", "x-1", "image", media_files.image_bytes("PNG"), None, "[An image]")
    assert content == "[An image] (Its content is not available to you: someday-ai:x-1 cannot see images.)"


# --- function and test models ------------------------------------------------------------------------


async def test_a_function_model_receives_the_medium_unchanged() -> None:
    seen: list[BinaryContent] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        for message in messages:
            for part in message.parts:
                if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                    seen.extend(item for item in part.content if isinstance(item, BinaryContent))
        return ModelResponse(parts=[TextPart("ok")])

    function_model = FunctionModel(model)
    provider, name = provider_of(function_model)
    voice = media_files.voice_note()
    content = await to_model_input(provider, name, "audio", voice, "audio/ogg", VOICE)
    await Agent(function_model).run([VOICE, content])
    assert [(item.media_type, item.data) for item in seen] == [("audio/ogg", voice)]


# --- the table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "kind", "expected"),
    [
        ("openai", "gpt-4o", "image", True),
        ("openai", "gpt-4o", "audio", False),
        ("openai", "gpt-4o", "document", True),
        ("openai", "gpt-3.5-turbo", "image", False),
        ("openai-chat", "gpt-4o-audio-preview", "audio", True),
        ("openai-chat", "gpt-4.1", "audio", False),
        ("azure", "gpt-4o", "document", False),
        ("anthropic", "claude-sonnet-4-5", "image", True),
        ("anthropic", "claude-sonnet-4-5", "document", True),
        ("anthropic", "claude-sonnet-4-5", "audio", False),
        ("anthropic", "claude-sonnet-4-5", "video", False),
        ("google-gla", "gemini-2.5-flash", "audio", True),
        ("google-vertex", "gemini-2.5-flash", "video", True),
        ("google", "gemini-2.5-flash-image", "video", False),
        ("groq", "llama-3.3-70b-versatile", "image", False),
        ("mistral", "pixtral-large-latest", "image", True),
        ("mistral", "mistral-large-latest", "document", True),
        ("mistral", "mistral-large-latest", "audio", False),
        ("bedrock", "us.amazon.nova-pro-v1:0", "video", True),
        ("bedrock", "us.amazon.nova-micro-v1:0", "image", False),
        ("bedrock", "anthropic.claude-3-5-sonnet", "audio", False),
        ("ollama", "llava:13b", "image", True),
        ("ollama", "llama3.1:8b", "image", False),
        ("openai-compatible", "qwen2.5vl:7b", "audio", False),
        ("test", "", "video", True),
        ("function", "", "audio", True),
    ],
)
def test_the_capability_table(provider, model, kind, expected) -> None:
    assert capabilities_for(provider, model).accepts(kind) is expected


def test_models_are_looked_up_by_their_pydantic_ai_class() -> None:
    provider = OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key="test")
    chat = OpenAIChatModel("gpt-4o-audio-preview", provider=provider)
    responses = OpenAIResponsesModel("gpt-4o", provider=provider)

    assert provider_of(chat) == ("openai-chat", "gpt-4o-audio-preview")
    assert provider_of(responses) == ("openai-responses", "gpt-4o")
    assert provider_of("anthropic:claude-sonnet-4-5") == ("anthropic", "claude-sonnet-4-5")
    assert provider_of("test") == ("test", "")
    assert capabilities_for_model(InstrumentedModel(chat)).audio == ("audio/wav", "audio/mpeg")
    assert capabilities_for_model(FunctionModel(lambda m, i: ModelResponse(parts=[]))).audio == ANY
    # A fallback chain only gets what every model in it takes.
    both = capabilities_for_model(FallbackModel(chat, responses))
    assert both.audio == () and both.images == ()  # the audio model sees no images


def test_the_table_can_be_taught_a_new_provider(monkeypatch) -> None:
    monkeypatch.setitem(CAPABILITIES, "acme", lambda name: Capabilities(images=("image/png",)))
    assert capabilities_for("acme", "vision-1").accepts("image", "image/png")
    assert not capabilities_for("acme", "vision-1").accepts("image", "image/jpeg")
